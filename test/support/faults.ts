import { readdir, readFile, readlink } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { expect } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { Redis as IORedis } from "ioredis"
import pg from "pg"
import { decodePayload } from "../../src/position/decode.js"
import { generatePayloads } from "../../src/simulate/Generator.js"
import { publish } from "../../src/simulate/Publish.js"
import {
  adminQuery,
  type ChildWorker,
  groupLag,
  pendingCount,
  spawnWorker,
  type TestEnvironment,
  waitForLog
} from "./Integration.js"

// Helpers for the fault-injection suite: realistic payloads with some invalid ones among them, a producer
// that keeps publishing while faults happen, the faults themselves, and the end-of-scenario check of the
// promise (every valid record exactly once, every invalid one dead-lettered, nothing pending, no lag).

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url))

/** Payloads the decoder refuses, each for another reason. */
export const INVALID_PAYLOADS: ReadonlyArray<string> = [
  "{not json",
  JSON.stringify({ device_id: "356307040000001", timestamp: "2026-05-01T00:00:00.000Z" }),
  JSON.stringify({
    device_id: "356307040000002", timestamp: "2026-05-01T00:00:00.000Z", latitude: 200, longitude: 25,
    altitude: 100, angle: 0, speed: 0, satellites: 8, priority: 0, event_id: 0, attributes: {}
  }),
  JSON.stringify({
    device_id: "356307040000003", timestamp: "2026-02-30T00:00:00.000Z", latitude: 54, longitude: 25,
    altitude: 100, angle: 0, speed: 0, satellites: 8, priority: 0, event_id: 0, attributes: {}
  }),
  "[]"
]

/**
 * `count` generated payloads (with resends and late bursts, as devices send them) and, every `invalidEvery`
 * records, one of INVALID_PAYLOADS.
 */
export const makePayloads = (count: number, seed: number, invalidEvery = 5_000): Array<string> => {
  const valid = generatePayloads({ count, devices: 250, seed, duplicates: 0.01, late: 0.02 })
  const out: Array<string> = []
  for (let i = 0; i < valid.length; i++) {
    if (i > 0 && i % invalidEvery === 0) out.push(INVALID_PAYLOADS[(i / invalidEvery) % INVALID_PAYLOADS.length]!)
    out.push(valid[i]!)
  }
  return out
}

/** Replaces fields of a generated payload (to make one the database or a trigger refuses). */
export const withFields = (payload: string, fields: Record<string, unknown>): string =>
  JSON.stringify({ ...(JSON.parse(payload) as object), ...fields })

export const publishAll = (redis: IORedis, stream: string, payloads: ReadonlyArray<string>) =>
  publish(redis, stream, payloads).pipe(Effect.orDie)

/** An entry without a payload field: dead-lettered with "no payload field". */
export const publishWithoutPayload = (redis: IORedis, stream: string) =>
  Effect.promise(() => redis.xadd(stream, "*", "data", "no payload here"))

/**
 * Publishes `payloads` in slices of `perTick` every `tickMs` in a background fiber, as a live fleet does,
 * so that faults hit a worker that is reading, writing and acknowledging at the same time.
 */
export const startProducer = (redis: IORedis, stream: string, payloads: ReadonlyArray<string>, perTick: number, tickMs = 100) =>
  Effect.gen(function*() {
    let sent = 0
    const fiber = yield* Effect.forkScoped(Effect.gen(function*() {
      while (sent < payloads.length) {
        const slice = payloads.slice(sent, sent + perTick)
        yield* publishAll(redis, stream, slice)
        sent += slice.length
        if (sent < payloads.length) yield* Effect.sleep(tickMs)
      }
    }))
    return { sent: () => sent, done: Fiber.join(fiber) }
  })

// ---------------------------------------------------------------------------------------------------------
// Workers

/** Settings for a worker under test: no HTTP port clash between workers, logs at Info to see what they did. */
export const workerEnv = (t: TestEnvironment, extra: Record<string, string | number> = {}): Record<string, string | number> => ({
  ...t.env,
  HTTP_PORT: 0,
  LOG_LEVEL: "Info",
  ...extra
})

/** A child worker, once it reads its stream ("processor ready"). */
export const startWorker = (env: Record<string, string | number>, timeout = 60_000) =>
  Effect.gen(function*() {
    const worker = yield* spawnWorker(env)
    yield* waitForLog(worker, "processor ready", timeout).pipe(
      Effect.catchAllDefect((defect) => Effect.dieMessage(`${String(defect)}; output so far:\n${worker.output()}`))
    )
    return worker
  })

export const isRunning = (worker: ChildWorker) => worker.process.exitCode === null && worker.process.signalCode === null

export const kill9 = (worker: ChildWorker) =>
  Effect.promise(async () => {
    worker.process.kill("SIGKILL")
    return worker.exited
  })

/** The worker's exit, within `timeout`. */
export const awaitExit = (worker: ChildWorker, timeout = 30_000) =>
  Effect.promise(() => worker.exited).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`worker did not exit within ${timeout} ms`) }),
    Effect.orDie
  )

/** SIGTERM, and the exit it led to. */
export const stopWorker = (worker: ChildWorker, timeout = 30_000) =>
  Effect.promise(async () => {
    worker.process.kill("SIGTERM")
    return worker.exited
  }).pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`worker did not exit within ${timeout} ms after SIGTERM`) }),
    Effect.orDie
  )

export interface LogLine {
  readonly message: string
  readonly logLevel: string
}

/** The worker's output as log lines; anything that is not a JSON log line (a stack trace…) is returned apart. */
export const logLines = (output: string): { lines: Array<LogLine>; other: Array<string> } => {
  const lines: Array<LogLine> = []
  const other: Array<string> = []
  for (const text of output.split("\n")) {
    if (text.trim() === "") continue
    try {
      const parsed = JSON.parse(text) as { message?: unknown; logLevel?: unknown }
      const message = Array.isArray(parsed.message) ? parsed.message.join(" ") : String(parsed.message)
      lines.push({ message, logLevel: String(parsed.logLevel) })
    } catch {
      other.push(text)
    }
  }
  return { lines, other }
}

export const countLogs = (output: string, text: string) =>
  logLines(output).lines.filter((l) => l.message.includes(text)).length

/** Lines at ERROR or FATAL, and lines that are no log at all. */
export const errorsIn = (output: string): Array<string> => {
  const { lines, other } = logLines(output)
  return [...lines.filter((l) => l.logLevel === "ERROR" || l.logLevel === "FATAL").map((l) => l.message), ...other]
}

/** Resident set size of a process, in MB. */
export const rssMb = (pid: number) =>
  Effect.promise(async () => {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "")
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)
    return kb ? Number(kb[1]) / 1024 : Number.NaN
  })

// ---------------------------------------------------------------------------------------------------------
// Faults

/** Terminates every connection to the database (the test's own pool must tolerate it: see tolerateDisconnects). */
export const terminateConnections = (db: string) =>
  adminQuery(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = '${db}' AND pid <> pg_backend_pid()`)
    .pipe(Effect.map((r) => Number((r.rows[0] as { n: number }).n)))

export const allowConnections = (db: string, allow: boolean) => adminQuery(`ALTER DATABASE ${db} ALLOW_CONNECTIONS ${allow}`)

/** A pg pool emits "error" for an idle client whose connection is terminated; without a listener that throws. */
export const tolerateDisconnects = (pool: pg.Pool) => Effect.sync(() => pool.on("error", () => {}))

/** Local TCP ports of the sockets a process holds open (from /proc), to tell its Redis connections from others. */
const localPortsOf = async (pid: number): Promise<Set<number>> => {
  const inodes = new Set<string>()
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")
    const m = /^socket:\[(\d+)\]$/.exec(link)
    if (m) inodes.add(m[1]!)
  }
  const ports = new Set<number>()
  for (const table of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    const text = await readFile(table, "utf8").catch(() => "")
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length > 9 && inodes.has(cols[9]!)) ports.add(parseInt(cols[1]!.split(":")[1]!, 16))
    }
  }
  return ports
}

/**
 * Kills the Redis connections of one worker process: those named processor:* (CLIENT SETNAME) whose client
 * port belongs to that process. Other workers and the test's own connections are left alone.
 */
export const killRedisConnections = (redis: IORedis, pid: number) =>
  Effect.promise(async () => {
    const ports = await localPortsOf(pid)
    const list = (await redis.call("CLIENT", "LIST", "TYPE", "normal")) as string
    const victims: Array<{ id: string; name: string }> = []
    for (const line of list.split("\n")) {
      const fields = new Map(line.trim().split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]))
      const name = fields.get("name") ?? ""
      const port = Number((fields.get("addr") ?? "").split(":").pop())
      if (name.startsWith("processor:") && ports.has(port)) victims.push({ id: fields.get("id")!, name })
    }
    for (const v of victims) await redis.call("CLIENT", "KILL", "ID", v.id)
    return victims.map((v) => v.name).sort()
  })

// ---------------------------------------------------------------------------------------------------------
// Observations

export interface ConsumerInfo {
  readonly name: string
  readonly pending: number
}

export const consumers = (redis: IORedis, stream: string, group: string) =>
  Effect.promise(async () => {
    const raw = (await redis.xinfo("CONSUMERS", stream, group).catch(() => [])) as Array<Array<unknown>>
    return raw.map((c): ConsumerInfo => {
      const info = new Map<unknown, unknown>()
      for (let i = 0; i < c.length; i += 2) info.set(c[i], c[i + 1])
      return { name: String(info.get("name")), pending: Number(info.get("pending")) }
    })
  })

export const consumerPending = (redis: IORedis, stream: string, group: string, name: string) =>
  Effect.map(consumers(redis, stream, group), (all) => all.find((c) => c.name === name)?.pending ?? 0)

/** Rows in positions, or -1 while the table is missing or the database unreachable. */
export const rowCount = (pool: pg.Pool) =>
  Effect.promise(() => pool.query<{ n: string }>("SELECT count(*) AS n FROM positions").then((r) => Number(r.rows[0]!.n), () => -1))

/** Waits (with a deadline) until positions holds at least `n` rows. */
export const waitUntilRows = (pool: pg.Pool, n: number, timeout = 60_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeout
    while ((yield* rowCount(pool)) < n) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`fewer than ${n} rows after ${timeout} ms`)
      yield* Effect.sleep(20)
    }
  })

interface Entry {
  readonly id: string
  readonly fields: Map<string, string>
}

const readAll = (redis: IORedis, key: string) =>
  Effect.promise(async () => {
    const out: Array<Entry> = []
    let start = "-"
    while (true) {
      const page = await redis.xrange(key, start, "+", "COUNT", 10_000)
      for (const [id, fields] of page) {
        const map = new Map<string, string>()
        for (let i = 0; i < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!)
        out.push({ id, fields: map })
      }
      if (page.length < 10_000) return out
      start = `(${page[page.length - 1]![0]}`
    }
  })

export interface Expectations {
  /** Valid payloads the database refuses, with the reason their dead letter must give (matched against the error). */
  readonly refused?: (payload: string) => RegExp | undefined
}

interface Plan {
  readonly sent: number
  /** Payloads that must be in positions (resends included: they collapse into one row). */
  readonly valid: Array<string>
  readonly distinct: number
  /** Stream entry id → pattern its dead letter's reason must match. */
  readonly deadLetters: Map<string, RegExp>
  /** Stream entry id → its payload field (undefined when it has none), which its dead letter must carry (or lack). */
  readonly payloads: Map<string, string | undefined>
}

const ANY_REASON = /\S/

/** What the stream holds and therefore what the database and the dead-letter stream must end up with. */
export const plan = (t: TestEnvironment, expectations: Expectations = {}) =>
  Effect.map(readAll(t.redis, t.stream), (entries): Plan => {
    const valid: Array<string> = []
    const keys = new Set<string>()
    const deadLetters = new Map<string, RegExp>()
    // A dead letter keeps the entry's fields as they are: no payload field in, none out.
    const payloads = new Map<string, string | undefined>()
    for (const { id, fields } of entries) {
      const payload = fields.get("payload")
      payloads.set(id, payload)
      const decoded = decodePayload(payload)
      if (decoded._tag === "Left") {
        deadLetters.set(id, ANY_REASON)
        continue
      }
      const refused = expectations.refused?.(payload!)
      if (refused !== undefined) {
        deadLetters.set(id, refused)
        continue
      }
      valid.push(payload!)
      keys.add(`${decoded.right.position.device_id}|${decoded.right.position.timestamp.getTime()}`)
    }
    return { sent: entries.length, valid, distinct: keys.size, deadLetters, payloads }
  })

export interface Figures {
  readonly sent: number
  readonly stored: number
  readonly deadLettered: number
  readonly pending: number
  readonly lag: number
}

// Pending and lag first: rows are committed and dead letters added before their entries are acknowledged,
// so once nothing is pending and nothing unread, the counts read afterwards are final.
const figures = (t: TestEnvironment, sent: number) =>
  Effect.gen(function*() {
    const pending = yield* pendingCount(t.redis, t.stream, t.group)
    const lag = yield* groupLag(t.redis, t.stream, t.group)
    const stored = yield* rowCount(t.pool)
    const deadLettered = yield* Effect.promise(() => t.redis.xlen(t.dlq))
    return { sent, stored, deadLettered, pending, lag }
  })

const show = (f: Figures) => `sent=${f.sent} stored=${f.stored} dead-lettered=${f.deadLettered} pending=${f.pending} lag=${f.lag}`

/**
 * Waits (with a deadline) until the group has caught up: as many rows as distinct valid records, as many dead
 * letters as expected, nothing pending, no lag. Call it once everything has been published.
 */
export const awaitCompletion = (t: TestEnvironment, expectations: Expectations = {}, timeout = 90_000) =>
  Effect.gen(function*() {
    const p = yield* plan(t, expectations)
    const deadline = Date.now() + timeout
    while (true) {
      const f = yield* figures(t, p.sent)
      const settled = f.pending === 0 && f.lag === 0
      if (settled && f.stored === p.distinct && f.deadLettered === p.deadLetters.size) return p
      // Everything acknowledged yet the counts differ: nothing will change any more.
      if (settled || Date.now() > deadline) {
        return yield* Effect.dieMessage(
          `${settled ? "settled" : `not complete after ${timeout} ms`}: ${show(f)}; expected stored=${p.distinct} dead-lettered=${p.deadLetters.size}`
        )
      }
      yield* Effect.sleep(100)
    }
  })

/**
 * The promise, checked in full: every valid record exactly once in positions with its content, every entry
 * that must be dead-lettered there exactly once with its reason and nothing else, pending 0, lag 0.
 * Prints one "FAULT:" line with the figures.
 */
export const verifyPromise = (t: TestEnvironment, label: string, expectations: Expectations = {}) =>
  Effect.gen(function*() {
    const p = yield* plan(t, expectations)
    const client = t.pool
    // The expected rows computed by PostgreSQL from the payload JSON itself, independently of the worker's
    // COPY encoding, then joined with positions column by column.
    yield* Effect.promise(async () => {
      await client.query("DROP TABLE IF EXISTS fault_expected")
      await client.query("CREATE TABLE fault_expected (payload jsonb NOT NULL)")
      for (let i = 0; i < p.valid.length; i += 20_000) {
        await client.query("INSERT INTO fault_expected SELECT unnest($1::text[])::jsonb", [p.valid.slice(i, i + 20_000)])
      }
    })
    const [check] = (yield* Effect.promise(() =>
      client.query<{ stored: number; distinct_stored: number; expected: number; matching: number }>(`
        WITH e AS (
          SELECT DISTINCT ON (device_id, ts) device_id, ts, p
          FROM (SELECT payload->>'device_id' AS device_id, (payload->>'timestamp')::timestamptz AS ts, payload AS p FROM fault_expected) x
        )
        SELECT
          (SELECT count(*) FROM positions)::int AS stored,
          (SELECT count(DISTINCT (device_id, ts)) FROM positions)::int AS distinct_stored,
          (SELECT count(*) FROM e)::int AS expected,
          (SELECT count(*) FROM e JOIN positions t USING (device_id, ts)
            WHERE t.latitude = (e.p->>'latitude')::float8
              AND t.longitude = (e.p->>'longitude')::float8
              AND t.altitude = (e.p->>'altitude')::float8
              AND t.angle = (e.p->>'angle')::float8
              AND t.speed = (e.p->>'speed')::float8
              AND t.satellites = (e.p->>'satellites')::int
              AND t.priority = (e.p->>'priority')::int
              AND t.event_id = coalesce((e.p->>'event_id')::bigint, 0)
              AND (SELECT count(*) FROM jsonb_object_keys(t.attributes)) = (SELECT count(*) FROM jsonb_object_keys(e.p->'attributes'))
              AND (t.attributes->>'16')::numeric IS NOT DISTINCT FROM (e.p->'attributes'->>'16')::numeric
              AND (t.attributes->>'78')::numeric IS NOT DISTINCT FROM (e.p->'attributes'->'78'->>'__bigint')::numeric
              AND t.attributes->>'385' IS NOT DISTINCT FROM encode(decode(e.p->'attributes'->'385'->>'__bytes', 'base64'), 'hex')
          )::int AS matching`)
    )).rows
    yield* Effect.promise(() => client.query("DROP TABLE fault_expected"))

    const letters = yield* readAll(t.redis, t.dlq)
    const f = yield* figures(t, p.sent)
    console.log(`FAULT: ${label}: ${show(f)} (expected stored=${p.distinct} dead-lettered=${p.deadLetters.size})`)

    // Exactly once, with the content that was sent.
    expect(check).toEqual({ stored: p.distinct, distinct_stored: p.distinct, expected: p.distinct, matching: p.distinct })
    // Dead letters: exactly the expected entries, each once, each with its reason.
    const bySource = new Map<string, Array<string>>()
    for (const l of letters) {
      const source = l.fields.get("source_id") ?? ""
      bySource.set(source, [...(bySource.get(source) ?? []), l.fields.get("error") ?? ""])
      // Whether the worker held the payload (invalid) or the copy took it from the stream (refused, poison).
      expect(l.fields.get("payload"), `payload of the dead letter of ${source}`).toBe(p.payloads.get(source))
    }
    expect([...bySource.keys()].sort()).toEqual([...p.deadLetters.keys()].sort())
    for (const [source, errors] of bySource) {
      expect(errors, `dead letters of ${source}`).toHaveLength(1)
      expect(errors[0], `reason of ${source}`).toMatch(p.deadLetters.get(source)!)
    }
    expect(f.pending).toBe(0)
    expect(f.lag).toBe(0)
    return f
  })

/** Names of the migration files, which processor_migrations must hold once each. */
export const migrationFiles = Effect.promise(async () => (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort())
