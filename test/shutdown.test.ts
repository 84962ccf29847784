import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { decodePayload } from "../src/position/decode.js"
import { countRows, lockPositions, pendingCount, type TestEnvironment, testEnvironment, waitUntil } from "./support/Integration.js"
import {
  awaitExit,
  consumerPending,
  countLogs,
  errorsIn,
  logLines,
  makePayloads,
  startWorker,
  verifyPromise,
  workerEnv
} from "./support/faults.js"

// SIGTERM while a batch is being written: the worker finishes that batch (commit, then XACK) and exits 0.

describe("shutdown", () => {
  it.scopedLive("SIGTERM with a write in flight: the batch is committed and acknowledged, exit code 0", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* startWorker(workerEnv(t))

      // Hold positions locked so that the worker's INSERT waits, in a transaction of the test's own. EXCLUSIVE,
      // not ACCESS EXCLUSIVE: the device-state lookup (a SELECT on positions) must pass, only the write wait.
      const locker = yield* lockPositions(t.db.url, "EXCLUSIVE")

      // One MULTI: the worker's blocked read wakes once, with every entry, so they form one batch.
      const payloads = makePayloads(300, 9, 100)
      yield* Effect.promise(async () => {
        const tx = t.redis.multi()
        for (const payload of payloads) tx.xadd(t.stream, "*", "payload", payload)
        await tx.exec()
      })
      const waiting = Effect.promise(() =>
        t.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = $1 AND application_name = 'processor' AND wait_event_type = 'Lock'
             AND (query LIKE 'COPY positions%' OR query LIKE 'INSERT INTO positions%')`,
          [t.db.name]
        )
      ).pipe(Effect.map((r) => r.rows[0]!.n > 0))
      yield* waitUntil("the worker's write waiting for the lock", waiting, 30_000)
      const inFlight = Number(((yield* Effect.promise(() => t.redis.xpending(t.stream, t.group))) as [number])[0])
      // Every valid entry is in that write (the invalid ones are dead-lettered on the way).
      expect(inFlight).toBe(payloads.filter((p) => decodePayload(p)._tag === "Right").length)

      worker.process.kill("SIGTERM")
      // The write cannot finish while the lock is held: the worker is draining, not gone.
      expect(yield* waiting).toBe(true)
      expect(worker.process.exitCode).toBe(null)
      yield* Effect.promise(() => locker.query("COMMIT"))

      expect(yield* awaitExit(worker)).toEqual({ code: 0, signal: null })
      expect(countLogs(worker.output(), "processor stopped")).toBe(1)
      expect(errorsIn(worker.output())).toEqual([])
      yield* verifyPromise(t, "SIGTERM with a write in flight")
    }), 60_000)

  // Another connection holds positions in ACCESS EXCLUSIVE mode: every statement of the worker on the table
  // waits, so the records read are stuck in the write stage, with more read behind them.
  const lockAll = (t: TestEnvironment) => lockPositions(t.db.url, "ACCESS EXCLUSIVE")

  const statementWaiting = (t: TestEnvironment) =>
    Effect.promise(() =>
      t.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND application_name = 'processor' AND wait_event_type = 'Lock'`,
        [t.db.name]
      )
    ).pipe(Effect.map((r) => r.rows[0]!.n > 0))

  const readyz = (port: number) =>
    Effect.promise(async () => {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5_000) })
      return { status: response.status, body: (await response.json()) as { checks: { consumer: string } } }
    })

  it.scopedLive("SIGTERM with records stuck behind a lock: every entry read is written and acknowledged before exit 0; /readyz says draining", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* startWorker(workerEnv(t))
      const port = Number(/http listening on port (\d+)/.exec(worker.output())?.[1])
      const locker = yield* lockAll(t)

      const payloads = makePayloads(500, 21, 100)
      yield* Effect.promise(async () => {
        const tx = t.redis.multi()
        for (const payload of payloads) tx.xadd(t.stream, "*", "payload", payload)
        await tx.exec()
      })
      yield* waitUntil("a statement waiting for the lock", statementWaiting(t), 30_000)
      const read = yield* consumerPending(t.redis, t.stream, t.group, "worker-1")
      expect(read).toBeGreaterThan(0)

      worker.process.kill("SIGTERM")
      yield* waitUntil("readiness to say draining", Effect.map(readyz(port), (r) => r.status === 503 && r.body.checks.consumer === "draining"), 10_000)
      // Repeated signals (a process-group kill, Ctrl-C twice) do not cut the drain short.
      worker.process.kill("SIGTERM")
      worker.process.kill("SIGINT")
      // Still stuck behind the lock, entries still pending: the worker is draining, not gone.
      expect(yield* statementWaiting(t)).toBe(true)
      expect(worker.process.exitCode).toBe(null)
      yield* Effect.sleep("2 seconds")
      yield* Effect.promise(() => locker.query("COMMIT"))

      expect(yield* awaitExit(worker)).toEqual({ code: 0, signal: null })
      expect(yield* pendingCount(t.redis, t.stream, t.group)).toBe(0)
      expect(countLogs(worker.output(), "processor stopped")).toBe(1)
      expect(errorsIn(worker.output())).toEqual([])
      // What was read was written; what was not read yet is left for the next worker, unread, not pending.
      expect(yield* countRows(t.pool)).toBeGreaterThan(0)
    }), 60_000)

  it.scopedLive("a drain longer than SHUTDOWN_TIMEOUT_MS exits 1 with one line giving the pending count", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* startWorker(workerEnv(t, { SHUTDOWN_TIMEOUT_MS: 1500 }))
      yield* lockAll(t)
      yield* Effect.promise(async () => {
        const tx = t.redis.multi()
        for (const payload of makePayloads(200, 22, 1000)) tx.xadd(t.stream, "*", "payload", payload)
        await tx.exec()
      })
      yield* waitUntil("a statement waiting for the lock", statementWaiting(t), 30_000)
      const pending = yield* consumerPending(t.redis, t.stream, t.group, "worker-1")
      expect(pending).toBeGreaterThan(0)

      const started = Date.now()
      worker.process.kill("SIGTERM")
      expect(yield* awaitExit(worker, 15_000)).toEqual({ code: 1, signal: null })
      // The drain deadline, plus the bounded releases (a second for Redis, two for the pool).
      expect(Date.now() - started).toBeLessThan(1500 + 6_000)
      const fatal = logLines(worker.output()).lines.filter((l) => l.logLevel === "FATAL")
      expect(fatal.map((l) => l.message)).toEqual([expect.stringContaining(`${pending} entries stay pending`)])
      expect(fatal[0]!.message).toContain("SHUTDOWN_TIMEOUT_MS (1500 ms)")
      expect(logLines(worker.output()).other).toEqual([])
      expect(yield* consumerPending(t.redis, t.stream, t.group, "worker-1")).toBe(pending)
    }), 60_000)
})
