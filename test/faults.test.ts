import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnWorker, testEnvironment, waitForLog, waitUntil } from "./support/Integration.js"
import {
  allowConnections,
  awaitCompletion,
  consumerPending,
  countLogs,
  errorsIn,
  isRunning,
  kill9,
  killRedisConnections,
  logLines,
  makePayloads,
  migrationFiles,
  publishAll,
  publishWithoutPayload,
  rowCount,
  rssMb,
  startProducer,
  startWorker,
  stopWorker,
  terminateConnections,
  tolerateDisconnects,
  verifyPromise,
  waitUntilRows,
  withFields,
  workerEnv
} from "./support/faults.js"

// Fault injection against the real Redis and PostgreSQL, workers as child processes. The promise checked at
// the end of every scenario: each valid record exactly once in positions, each invalid one dead-lettered with
// a reason, the group's pending list empty and its lag 0. Heavy scenarios run one after the other.

describe.sequential("faults", () => {
  it.scopedLive("kill -9 in the middle of a 50,000-record backlog, restart under the same name: complete, exactly once", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      yield* publishWithoutPayload(t.redis, t.stream)
      const payloads = makePayloads(50_000, 1)
      yield* publishAll(t.redis, t.stream, payloads)
      // Default claim settings (30 s idle): the restarted worker completes by replaying its own pending entries.
      const env = workerEnv(t)

      const first = yield* startWorker(env)
      const start = Date.now()
      yield* waitUntilRows(t.pool, 10_000)
      yield* kill9(first)
      const atKill = yield* rowCount(t.pool)
      const pendingAtKill = yield* consumerPending(t.redis, t.stream, t.group, "worker-1")
      console.log(`kill -9 after ${Date.now() - start} ms: ${atKill} rows, ${pendingAtKill} pending`)
      // The kill hit mid-run: work was left and entries were delivered but not acknowledged.
      expect(atKill).toBeLessThan(45_000)
      expect(pendingAtKill).toBeGreaterThan(0)

      const second = yield* startWorker(env)
      yield* awaitCompletion(t)
      expect(countLogs(second.output(), "own pending entries replayed")).toBe(1)
      expect(yield* stopWorker(second)).toEqual({ code: 0, signal: null })
      expect(errorsIn(second.output())).toEqual([])
      yield* verifyPromise(t, "kill -9 mid-backlog + restart")
    }), 180_000)

  it.scopedLive("three workers, one killed with SIGKILL: the two others reclaim its entries", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const env = (name: string) => workerEnv(t, { REDIS_CONSUMER: name, CLAIM_IDLE_MS: 2_000, CLAIM_INTERVAL_MS: 500 })
      const [a, b, victim] = yield* Effect.all([startWorker(env("worker-a")), startWorker(env("worker-b")), startWorker(env("worker-c"))], {
        concurrency: "unbounded"
      })
      // The backlog arrives once all three read: published before, it could be drained by the first worker up
      // before the others started.
      yield* publishWithoutPayload(t.redis, t.stream)
      yield* publishAll(t.redis, t.stream, makePayloads(40_000, 2))
      yield* waitUntil("worker-c holding pending entries with work left", Effect.gen(function*() {
        const rows = yield* rowCount(t.pool)
        return rows >= 5_000 && (yield* consumerPending(t.redis, t.stream, t.group, "worker-c")) > 0
      }), 60_000, 10)
      yield* kill9(victim)
      const orphaned = yield* consumerPending(t.redis, t.stream, t.group, "worker-c")
      const atKill = yield* rowCount(t.pool)
      console.log(`worker-c killed with ${orphaned} pending entries, ${atKill} rows written`)
      expect(orphaned).toBeGreaterThan(0)
      expect(atKill).toBeLessThan(38_000)

      yield* awaitCompletion(t)
      expect(yield* consumerPending(t.redis, t.stream, t.group, "worker-c")).toBe(0)
      // The orphaned entries went to the survivors through XAUTOCLAIM.
      expect(countLogs(a.output(), "reclaimed") + countLogs(b.output(), "reclaimed")).toBeGreaterThan(0)
      for (const w of [a, b]) {
        expect(isRunning(w)).toBe(true)
        expect(yield* stopWorker(w)).toEqual({ code: 0, signal: null })
        expect(errorsIn(w.output())).toEqual([])
      }
      yield* verifyPromise(t, "3 workers, 1 SIGKILLed")
    }), 180_000)

  it.scopedLive("three workers started at the same moment on an empty database: one migration run, no errors", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const workers = yield* Effect.all(
        ["worker-a", "worker-b", "worker-c"].map((name) => spawnWorker(workerEnv(t, { REDIS_CONSUMER: name }))),
        { concurrency: "unbounded" }
      )
      yield* Effect.forEach(workers, (w) => waitForLog(w, "processor ready", 60_000), { concurrency: "unbounded" })
      const files = yield* migrationFiles
      const recorded = (yield* Effect.promise(() => t.pool.query<{ name: string; n: number }>(
        "SELECT name, count(*)::int AS n FROM processor_migrations GROUP BY name ORDER BY name"
      ))).rows
      expect(recorded).toEqual(files.map((name) => ({ name, n: 1 })))
      // One of them applied the files, the two others found them recorded.
      const outputs = workers.map((w) => w.output())
      expect(outputs.map((o) => countLogs(o, `migrations applied: ${files.join(", ")}`)).sort()).toEqual([0, 0, 1])
      expect(outputs.map((o) => countLogs(o, "migrations applied: none pending"))).toEqual(
        outputs.map((o) => 1 - countLogs(o, `migrations applied: ${files.join(", ")}`))
      )

      yield* publishWithoutPayload(t.redis, t.stream)
      yield* publishAll(t.redis, t.stream, makePayloads(6_000, 3, 1_000))
      yield* awaitCompletion(t)
      for (const w of workers) {
        expect(yield* stopWorker(w)).toEqual({ code: 0, signal: null })
        expect(errorsIn(w.output())).toEqual([])
      }
      yield* verifyPromise(t, "3 workers migrating at once")
    }), 120_000)

  it.scopedLive("PostgreSQL connections terminated, then the database refusing connections for 10 s: same process completes", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      yield* tolerateDisconnects(t.pool)
      const worker = yield* startWorker(workerEnv(t, { CLAIM_IDLE_MS: 5_000, CLAIM_INTERVAL_MS: 1_000, RETRY_MAX_BACKOFF_MS: 1_000 }))
      const pid = worker.process.pid!
      yield* publishWithoutPayload(t.redis, t.stream)
      const producer = yield* startProducer(t.redis, t.stream, makePayloads(60_000, 4), 300)

      // 1. Every connection terminated while batches are being written.
      yield* waitUntilRows(t.pool, 3_000)
      const terminated = yield* terminateConnections(t.db.name)
      const afterTerminate = yield* rowCount(t.pool)
      yield* waitUntilRows(t.pool, afterTerminate + 3_000)
      // Writes in flight failed (outage logged) or none was (nothing logged); either way the end is logged too.
      yield* waitUntil("the end of the first outage logged", Effect.sync(() =>
        countLogs(worker.output(), "PostgreSQL available again") === countLogs(worker.output(), "PostgreSQL unavailable")
      ), 30_000)
      const firstPhase = worker.output()
      expect(countLogs(firstPhase, "PostgreSQL unavailable")).toBeLessThanOrEqual(1)

      // 2. The database refuses connections for 10 s; the worker waits (and its memory stays flat) meanwhile.
      yield* allowConnections(t.db.name, false)
      yield* terminateConnections(t.db.name)
      const outageStart = Date.now()
      const rss: Array<number> = []
      // Entries this worker has read and not acknowledged, through the outage: they stop growing once the
      // pipeline is full (reading is pulled), while the backlog piles up in Redis.
      const held: Array<number> = []
      while (Date.now() - outageStart < 10_000) {
        rss.push(yield* rssMb(pid))
        held.push(yield* consumerPending(t.redis, t.stream, t.group, "worker-1"))
        expect(isRunning(worker), worker.output().slice(-4_000)).toBe(true)
        yield* Effect.sleep(250)
      }
      const duringOutage = countLogs(worker.output().slice(firstPhase.length), "PostgreSQL unavailable")
      yield* allowConnections(t.db.name, true)
      yield* producer.done
      yield* awaitCompletion(t, {}, 120_000)
      const after = yield* rssMb(pid)
      console.log(`terminated ${terminated} connections; RSS during the outage (MB): ${rss.map((m) => m.toFixed(0)).join(" ")}; after catching up: ${after.toFixed(0)}`)

      expect(isRunning(worker)).toBe(true)
      expect(worker.process.pid).toBe(pid)
      yield* waitUntil("the end of the refusal logged", Effect.sync(() =>
        countLogs(worker.output().slice(firstPhase.length), "PostgreSQL available again") > 0
      ), 10_000)
      const secondPhase = worker.output().slice(firstPhase.length)
      const pgLines = logLines(worker.output()).lines.filter((l) => l.message.includes("PostgreSQL")).map((l) => l.message).join("\n")
      expect(duringOutage, pgLines).toBe(1)
      expect(countLogs(secondPhase, "PostgreSQL unavailable"), pgLines).toBe(1)
      expect(countLogs(secondPhase, "PostgreSQL available again"), pgLines).toBe(1)
      expect(Math.max(...rss)).toBeLessThan(400)
      // Bounded, not growing with the backlog that piles up in Redis meanwhile: the second half of the outage
      // reads nothing more (what is held is what the first half read), and memory follows (V8's heap still grows
      // lazily towards its next collection, hence the slack).
      const half = held.length >> 1
      expect(new Set(held.slice(half)).size, `held: ${held.join(" ")}`).toBe(1)
      expect(rss[rss.length - 1]! - rss[half]!).toBeLessThan(48)
      expect(yield* stopWorker(worker)).toEqual({ code: 0, signal: null })
      yield* verifyPromise(t, "PostgreSQL terminated + refusing connections 10 s")
    }), 180_000)

  it.scopedLive("the worker's Redis connections killed mid-run (CLIENT KILL ID), three times: complete", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* startWorker(workerEnv(t, { CLAIM_IDLE_MS: 3_000, CLAIM_INTERVAL_MS: 500 }))
      yield* publishWithoutPayload(t.redis, t.stream)
      const producer = yield* startProducer(t.redis, t.stream, makePayloads(40_000, 5), 400)
      const killed: Array<ReadonlyArray<string>> = []
      for (const rows of [4_000, 12_000, 20_000]) {
        yield* waitUntilRows(t.pool, rows)
        killed.push(yield* killRedisConnections(t.redis, worker.process.pid!))
      }
      console.log(`killed the worker's Redis connections: ${killed.map((k) => k.join("+")).join(", ")}`)
      // Both connections, each time; reconnected in between (CLIENT SETNAME names them again).
      expect(killed).toEqual([0, 1, 2].map(() => ["processor:commands", "processor:reads"]))
      yield* producer.done
      yield* awaitCompletion(t)
      expect(isRunning(worker)).toBe(true)
      expect(countLogs(worker.output(), "Redis connection lost")).toBeGreaterThanOrEqual(3)
      expect(yield* stopWorker(worker)).toEqual({ code: 0, signal: null })
      expect(errorsIn(worker.output())).toEqual([])
      yield* verifyPromise(t, "Redis connections killed x3")
    }), 120_000)

  it.scopedLive("a row the database rejects (event_id 3000000000) among valid rows: only it is dead-lettered", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const payloads = makePayloads(5_000, 6, 1_000)
      // Valid for the decoder (a safe integer), out of range for the integer column: SQLSTATE 22003.
      const rejected = new Set([1_234, 1_235, 3_777].map((i) => (payloads[i] = withFields(payloads[i]!, { event_id: 3_000_000_000 }))))
      yield* publishAll(t.redis, t.stream, payloads)
      const worker = yield* startWorker(workerEnv(t))
      const expectations = { refused: (payload: string) => (rejected.has(payload) ? /rejected by the database.*SQLSTATE 22003/ : undefined) }
      yield* awaitCompletion(t, expectations)
      expect(countLogs(worker.output(), "rejected by the database dead-lettered")).toBeGreaterThan(0)
      expect(yield* stopWorker(worker)).toEqual({ code: 0, signal: null })
      yield* verifyPromise(t, "rows rejected by the database (22003)", expectations)
    }), 120_000)

  it.scopedLive("an entry that keeps failing (trigger raising P0001) is dead-lettered after MAX_DELIVERIES; its batch-mates are written", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      // Claims run between reads: a short READ_BLOCK_MS lets them come every CLAIM_INTERVAL_MS.
      const worker = yield* startWorker(workerEnv(t, { MAX_DELIVERIES: 3, CLAIM_IDLE_MS: 500, CLAIM_INTERVAL_MS: 200, READ_BLOCK_MS: 200 }))
      // Not a data error (class 22/23) nor a transient one: the writer calls it "other" and leaves it pending.
      yield* Effect.promise(() => t.pool.query(`
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.device_id = 'poison-device' THEN
            RAISE EXCEPTION 'poison record for %', NEW.device_id USING ERRCODE = 'P0001';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison BEFORE INSERT ON positions FOR EACH ROW EXECUTE FUNCTION refuse_poison();`))
      const payloads = makePayloads(3_000, 7, 1_000)
      const poison = withFields(payloads[1_500]!, { device_id: "poison-device" })
      payloads.splice(1_500, 0, poison)
      // All at once: the poisoned record shares its batch with hundreds of good ones.
      yield* publishAll(t.redis, t.stream, payloads)
      const expectations = { refused: (payload: string) => (payload === poison ? /^failed \d+ times without being written \(MAX_DELIVERIES=3\)/ : undefined) }
      yield* awaitCompletion(t, expectations, 60_000)
      expect(countLogs(worker.output(), "over MAX_DELIVERIES")).toBe(1)
      expect(yield* stopWorker(worker)).toEqual({ code: 0, signal: null })
      yield* verifyPromise(t, "poisoned entry (P0001 trigger), MAX_DELIVERIES=3", expectations)
    }), 120_000)
})
