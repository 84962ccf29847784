import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import pg from "pg"
import { decodePayload } from "../src/position/decode.js"
import { testEnvironment, waitUntil } from "./support/Integration.js"
import { awaitExit, countLogs, errorsIn, makePayloads, startWorker, verifyPromise, workerEnv } from "./support/faults.js"

// SIGTERM while a batch is being written: the worker finishes that batch (commit, then XACK) and exits 0.

describe("shutdown", () => {
  it.scopedLive("SIGTERM with a write in flight: the batch is committed and acknowledged, exit code 0", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* startWorker(workerEnv(t))

      // Hold positions locked so that the worker's INSERT waits, in a transaction of the test's own. EXCLUSIVE,
      // not ACCESS EXCLUSIVE: the device-state lookup (a SELECT on positions) must pass, only the write wait.
      const locker = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const client = new pg.Client({ connectionString: t.db.url })
          client.on("error", () => {})
          await client.connect()
          await client.query("BEGIN")
          await client.query("LOCK TABLE positions IN EXCLUSIVE MODE")
          return client
        }),
        (client) => Effect.promise(() => client.end())
      )

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
           WHERE datname = $1 AND application_name = 'processor' AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO positions%'`,
          [t.db.name]
        )
      ).pipe(Effect.map((r) => r.rows[0]!.n > 0))
      yield* waitUntil("the worker's INSERT waiting for the lock", waiting, 30_000)
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
})
