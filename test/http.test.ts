import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, LogLevel, Redacted } from "effect"
import { bearerMatches, deviceJson } from "../src/http/Http.js"
import { attributesJson } from "../src/position/attributesJson.js"
import type { LastPosition } from "../src/state/LastPosition.js"
import { generatePayloads } from "../src/simulate/Generator.js"
import { publish } from "../src/simulate/Publish.js"
import * as Worker from "../src/Worker.js"
import {
  adminQuery,
  countRows,
  lockPositions,
  groupLag,
  pendingCount,
  spawnWorker,
  streamLength,
  type TestEnvironment,
  testEnvironment,
  waitForLog,
  waitUntil
} from "./support/Integration.js"
import { position } from "./support/MemoryConsumer.js"
import { configLayer } from "./support/testConfig.js"

// ---- helpers ------------------------------------------------------------------------------------------------

/**
 * The worker in this process with HTTP_PORT=0; the port is read from its "http listening on port N" line.
 * Warnings and errors are printed; the worker fiber is returned for tests that stop it themselves.
 */
const startWorker = (env: Record<string, string | number>) =>
  Effect.gen(function*() {
    const port = yield* Deferred.make<number>()
    const logs: Array<{ level: string; text: string }> = []
    const logger = Logger.make((options) => {
      const message = options.message
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      const m = /^http listening on port (\d+)$/.exec(text)
      if (m !== null) Deferred.unsafeDone(port, Exit.succeed(Number(m[1])))
      if (LogLevel.greaterThanEqual(options.logLevel, LogLevel.Warning)) {
        logs.push({ level: options.logLevel.label, text })
        Logger.prettyLoggerDefault.log(options)
      }
    })
    const fiber = yield* Effect.forkScoped(Worker.run.pipe(
      Effect.provide(configLayer({ ...env, HTTP_PORT: 0 })),
      Effect.provide(Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.Info)))
    ))
    const listening = yield* Effect.raceFirst(
      Deferred.await(port),
      Effect.flatMap(Fiber.await(fiber), (exit) => Effect.dieMessage(`the worker ended before listening: ${String(exit)}`))
    ).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("no 'http listening on port' line within 60 s") }), Effect.orDie)
    return { port: listening, fiber, logs }
  })

interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

const get = (port: number, path: string, headers: Record<string, string> = {}) =>
  Effect.promise(async (): Promise<Reply> => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: AbortSignal.timeout(10_000) })
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

const json = (reply: Reply) => JSON.parse(reply.body) as Record<string, unknown>

/** Sample lines of an exposition as "name{labels}" → value. */
const samples = (exposition: string): Map<string, number> => {
  const out = new Map<string, number>()
  for (const line of exposition.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const at = line.lastIndexOf(" ")
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

const scrape = (port: number) => Effect.map(get(port, "/metrics"), (r) => samples(r.body))

const drained = (t: TestEnvironment, rows: number) =>
  waitUntil(
    `${rows} rows, nothing pending, no lag`,
    Effect.map(
      Effect.all([countRows(t.pool), pendingCount(t.redis, t.stream, t.group), groupLag(t.redis, t.stream, t.group)]),
      ([n, pending, lag]) => n === rows && pending === 0 && lag === 0
    ),
    60_000
  )


const INVALID = [
  "{not json",
  "[]",
  JSON.stringify({ device_id: "356307049999991", timestamp: "2026-05-01T00:00:00.000Z" }),
  JSON.stringify(position("356307049999992", "2026-05-01T00:00:00.000Z", { latitude: 200 })),
  JSON.stringify(position("356307049999993", "2026-02-30T00:00:00.000Z")),
  JSON.stringify(position("", "2026-05-01T00:00:00.000Z")),
  JSON.stringify(position("356307049999994", "yesterday")),
  JSON.stringify(position("356307049999995", "2026-05-01T00:00:00.000Z", { satellites: 1.5 })),
  JSON.stringify(position("356307049999996", "2026-05-01T00:00:00.000Z", { attributes: { "1": { __bigint: "x" } } })),
  JSON.stringify(position("356307049999997", "2026-05-01T00:00:00.000Z", { speed: -1 }))
]

// ---- pure parts ---------------------------------------------------------------------------------------------

describe("bearer token check", () => {
  const token = Redacted.make("s3cret-token")
  it("accepts exactly the configured token, with the scheme in any case", () => {
    expect(bearerMatches("Bearer s3cret-token", token)).toBe(true)
    expect(bearerMatches("bearer s3cret-token", token)).toBe(true)
    expect(bearerMatches(undefined, token)).toBe(false)
    expect(bearerMatches("", token)).toBe(false)
    expect(bearerMatches("Bearer", token)).toBe(false)
    expect(bearerMatches("Bearer ", token)).toBe(false)
    expect(bearerMatches("Bearer s3cret-toke", token)).toBe(false)
    expect(bearerMatches("Bearer s3cret-token2", token)).toBe(false)
    expect(bearerMatches("Basic s3cret-token", token)).toBe(false)
    expect(bearerMatches("s3cret-token", token)).toBe(false)
    expect(bearerMatches("Bearer s3cret-token extra", token)).toBe(false)
  })
})

describe("device JSON", () => {
  it("has an ISO timestamp, bigints as decimal strings and bytes as hex", () => {
    const p: LastPosition = {
      device_id: "dev-1",
      timestamp: new Date("2026-05-01T10:00:03.000Z"),
      latitude: 54.1,
      longitude: 25.2,
      altitude: 100,
      angle: 90,
      speed: 12.5,
      satellites: 9,
      priority: 1,
      event_id: 0,
      attributesJson: attributesJson({ "16": 123, "78": 18446744073709551615n, "385": new Uint8Array([1, 2, 255]), "1": true, "256": "VIN" })
    }
    const out = deviceJson("dev-1", { last_position: p, last_seen_at: new Date("2026-05-01T10:00:04.000Z"), position_count_session: 3 })
    expect(JSON.parse(out)).toEqual({
      device_id: "dev-1",
      source: "memory",
      last_position: {
        timestamp: "2026-05-01T10:00:03.000Z",
        latitude: 54.1,
        longitude: 25.2,
        altitude: 100,
        angle: 90,
        speed: 12.5,
        satellites: 9,
        priority: 1,
        event_id: 0,
        attributes: { "16": 123, "78": 18446744073709552000, "385": "0102ff", "1": true, "256": "VIN" }
      },
      last_seen_at: "2026-05-01T10:00:04.000Z",
      position_count_session: 3
    })
    // The text keeps every digit: the attributes are spliced in as stored.
    expect(out).toContain(`"attributes":{"1":true,"16":123,"78":18446744073709551615,"256":"VIN","385":"0102ff"}}`)
    expect(JSON.parse(deviceJson("d", { last_position: undefined, last_seen_at: new Date(0), position_count_session: 0 })).last_position).toBeNull()
  })
})

// ---- against real Redis and PostgreSQL ----------------------------------------------------------------------

describe("HTTP endpoints of a running worker", () => {
  it.scopedLive("/metrics counts exactly what a known workload did", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const valid = generatePayloads({ devices: 20, seed: 23, count: 200 })
      const deviceIds = [...new Set(valid.map((p) => (JSON.parse(p) as { device_id: string }).device_id))]
      const { port } = yield* startWorker(t.env)
      // Effect metrics are global to the process: compare against what the counters held before.
      const before = yield* scrape(port)
      const delta = (after: Map<string, number>, series: string) => after.get(series)! - (before.get(series) ?? 0)

      yield* publish(t.redis, t.stream, [...valid.slice(0, 100), ...INVALID, ...valid.slice(100)])
      yield* drained(t, 200)
      yield* publish(t.redis, t.stream, valid.slice(0, 50))
      yield* drained(t, 200)
      yield* waitUntil("10 dead letters", Effect.map(streamLength(t.redis, t.dlq), (n) => n === 10))

      // The counters are updated right after the acknowledgement; wait until they have caught up, then
      // require the exact figures (a count too high fails here).
      const inserted = "processor_records_total{outcome=\"inserted\"}"
      const duplicate = "processor_records_total{outcome=\"duplicate\"}"
      const invalid = "processor_dead_letters_total{reason=\"invalid\"}"
      yield* waitUntil(
        "the counters to catch up",
        Effect.map(scrape(port), (m) => delta(m, inserted) >= 200 && delta(m, duplicate) >= 50 && delta(m, invalid) >= 10)
      )
      const after = yield* scrape(port)
      expect(delta(after, inserted)).toBe(200)
      expect(delta(after, duplicate)).toBe(50)
      expect(delta(after, invalid)).toBe(10)
      expect(delta(after, "processor_records_total{outcome=\"failed\"}")).toBe(0)
      expect(delta(after, "processor_dead_letters_total{reason=\"rejected\"}")).toBe(0)
      expect(delta(after, "processor_records_consumed_total")).toBe(260)
      expect(after.get("processor_device_state_devices")).toBe(deviceIds.length)
      expect(delta(after, "processor_write_duration_seconds_count")).toBeGreaterThanOrEqual(2)
      expect(delta(after, "processor_lag_seconds_count")).toBe(200)

      // The sampled gauges: the group, once sampled after the reads, and the pool.
      yield* waitUntil(
        "the group gauges to show an empty group",
        Effect.map(scrape(port), (m) => m.get("processor_group_pending_entries") === 0 && m.get("processor_group_lag_entries") === 0),
        15_000
      )
      const gauges = yield* scrape(port)
      expect(gauges.get("processor_pg_pool_connections{state=\"idle\"}")).toBeGreaterThanOrEqual(0)
      expect(gauges.get("processor_pg_pool_connections{state=\"in_use\"}")).toBeGreaterThanOrEqual(0)
      expect(gauges.get("processor_pg_pool_waiting_requests")).toBe(0)

      const exposition = (yield* get(port, "/metrics"))
      expect(exposition.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
      expect(exposition.body).toContain("# TYPE processor_records_total counter")
      expect(exposition.body).toContain("# TYPE processor_dead_letters_total counter")
      expect(exposition.body).toContain("# TYPE processor_write_duration_seconds histogram")
      expect(exposition.body).toMatch(/^processor_write_duration_seconds_bucket\{le="\+Inf"\} \d+$/m)

      // The open endpoints reveal no device.
      for (const path of ["/metrics", "/healthz", "/readyz"]) {
        const body = (yield* get(port, path)).body
        for (const id of deviceIds) expect(body, path).not.toContain(id)
      }
    }))

  it.scopedLive("/healthz answers 200; /readyz 200 when all is up, 503 naming postgres while it refuses connections", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const { port } = yield* startWorker(t.env)
      yield* waitUntil("ready", Effect.map(get(port, "/readyz"), (r) => r.status === 200))
      expect(json(yield* get(port, "/readyz"))).toEqual({ ready: true, checks: { redis: "ok", postgres: "ok", consumer: "ok" } })
      expect(yield* get(port, "/healthz")).toMatchObject({ status: 200 })

      yield* Effect.acquireRelease(
        Effect.zipRight(
          adminQuery(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS false`),
          // The worker's connections only (application_name), not the test's own pool.
          adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                       WHERE datname = '${t.db.name}' AND application_name = 'processor'`)
        ),
        () => adminQuery(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`).pipe(Effect.ignore)
      )
      yield* waitUntil("not ready", Effect.map(get(port, "/readyz"), (r) => r.status === 503))
      const refused = json(yield* get(port, "/readyz"))
      expect(refused).toMatchObject({ ready: false, checks: { redis: "ok", consumer: "ok" } })
      expect((refused["checks"] as { postgres: string }).postgres).toMatch(/^error: /)
      expect(yield* get(port, "/healthz")).toMatchObject({ status: 200 })

      yield* adminQuery(`ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`)
      yield* waitUntil("ready again", Effect.map(get(port, "/readyz"), (r) => r.status === 200))
      expect(json(yield* get(port, "/readyz"))).toEqual({ ready: true, checks: { redis: "ok", postgres: "ok", consumer: "ok" } })
    }))

  it.scopedLive("/readyz names PostgreSQL refusing a running worker (28000), logged at error once; ready again once allowed", () =>
    Effect.gen(function*() {
      const role = `processor_role_${Date.now().toString(36)}`
      // Acquired before the database, so released after it is dropped (the role owns it).
      yield* Effect.acquireRelease(adminQuery(`CREATE ROLE ${role} LOGIN`), () => adminQuery(`DROP ROLE IF EXISTS ${role}`).pipe(Effect.ignore))
      const t = yield* testEnvironment
      yield* adminQuery(`ALTER DATABASE ${t.db.name} OWNER TO ${role}`)
      const url = new URL(t.db.url)
      url.username = role
      const { logs, port } = yield* startWorker({ ...t.env, POSTGRES_URL: url.toString() })
      yield* waitUntil("ready", Effect.map(get(port, "/readyz"), (r) => r.status === 200))

      yield* Effect.acquireRelease(
        Effect.zipRight(
          adminQuery(`ALTER ROLE ${role} NOLOGIN`),
          adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}'`)
        ),
        () => adminQuery(`ALTER ROLE ${role} LOGIN`).pipe(Effect.ignore)
      )
      yield* waitUntil("not ready", Effect.map(get(port, "/readyz"), (r) => r.status === 503))
      for (let i = 0; i < 3; i++) {
        const checks = json(yield* get(port, "/readyz"))["checks"] as { postgres: string }
        expect(checks.postgres).toMatch(/^error: SELECT 1: .*not permitted to log in.*\(SQLSTATE 28000\)/)
      }
      expect(logs.filter((l) => l.level === "ERROR" && l.text.startsWith("PostgreSQL refuses the worker"))).toHaveLength(1)
      expect(yield* get(port, "/healthz")).toMatchObject({ status: 200 })

      yield* adminQuery(`ALTER ROLE ${role} LOGIN`)
      yield* waitUntil("ready again", Effect.map(get(port, "/readyz"), (r) => r.status === 200))
    }))

  it.scopedLive("/devices/:id returns the newest position (after out-of-order input) with the token, 401 without, 404 when unknown", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const token = "tok-3f9a2c"
      const { port } = yield* startWorker({ ...t.env, HTTP_AUTH_TOKEN: token })
      const t1 = "2026-05-01T10:00:01.000Z"
      const t2 = "2026-05-01T10:00:02.000Z"
      const t3 = "2026-05-01T10:00:03.000Z"
      yield* publish(t.redis, t.stream, [
        JSON.stringify(position("dev-ooo", t3)),
        JSON.stringify(position("dev-ooo", t1)),
        JSON.stringify(position("dev-ooo", t2)),
        JSON.stringify(position("dev-other", t1))
      ])
      yield* drained(t, 4)

      const auth = { authorization: `Bearer ${token}` }
      const found = yield* get(port, "/devices/dev-ooo", auth)
      expect(found.status).toBe(200)
      expect(found.headers.get("content-type")).toMatch(/^application\/json/)
      const device = json(found) as {
        device_id: string
        last_position: { timestamp: string; attributes: Record<string, unknown> }
        last_seen_at: string
        position_count_session: number
      }
      expect(device.device_id).toBe("dev-ooo")
      expect(device.last_position.timestamp).toBe(t3)
      expect(device.position_count_session).toBe(3)
      expect(new Date(device.last_seen_at).toISOString()).toBe(device.last_seen_at)
      // position(): "78" is {"__bigint":"18446744073709551615"} and "385" is {"__bytes":"AQID"} on the wire.
      expect(found.body).toContain(`"attributes":{"16":123456,"78":18446744073709551615,"385":"010203"}`)

      const refused = yield* get(port, "/devices/dev-ooo")
      expect(refused.status).toBe(401)
      expect(refused.headers.get("www-authenticate")).toBe("Bearer")
      expect(refused.body).not.toContain("dev-ooo")
      for (const authorization of [`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, token, "Bearer "]) {
        expect((yield* get(port, "/devices/dev-ooo", { authorization })).status, authorization).toBe(401)
      }
      // Unauthorized even for a device that does not exist: the answer does not tell which ids are known.
      expect((yield* get(port, "/devices/nobody")).status).toBe(401)
      expect((yield* get(port, "/devices/nobody", auth)).status).toBe(404)
      // An id no stored position can have is simply unknown, not a database error.
      expect((yield* get(port, "/devices/v10%00x", auth)).status).toBe(404)
      expect((yield* get(port, "/devices/dev-other", auth)).status).toBe(200)
      expect(json(yield* get(port, "/devices/dev-ooo", auth))).toMatchObject({ source: "memory" })

      // A device this process has not seen (as after a restart) is answered from its newest stored row.
      yield* Effect.promise(() =>
        t.pool.query(`INSERT INTO positions (device_id, ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id, attributes)
                      VALUES ('dev-stored', '2026-05-01T09:00:00Z', 1, 2, 3, 4, 5, 6, 0, 0, '{"9": 18446744073709551615}'),
                             ('dev-stored', '2026-05-01T08:00:00Z', 1, 2, 3, 4, 5, 6, 0, 0, '{}')`)
      )
      const stored = yield* get(port, "/devices/dev-stored", auth)
      expect(stored.status).toBe(200)
      expect(json(stored)).toMatchObject({
        device_id: "dev-stored",
        source: "table",
        last_position: { timestamp: "2026-05-01T09:00:00.000Z", speed: 5 },
        last_seen_at: null,
        position_count_session: 0
      })
      expect(stored.body).toContain(`"attributes":{"9": 18446744073709551615}`)
    }))

  it.scopedLive("/devices/:id is 404 for every device when no token is configured", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const { port } = yield* startWorker(t.env)
      yield* publish(t.redis, t.stream, [JSON.stringify(position("dev-known", "2026-05-01T10:00:00.000Z"))])
      yield* drained(t, 1)
      for (const headers of [{}, { authorization: "Bearer " }, { authorization: "Bearer anything" }]) {
        const reply = yield* get(port, "/devices/dev-known", headers)
        expect(reply.status).toBe(404)
        expect(reply.body).not.toContain("dev-known")
      }
      expect((yield* get(port, "/nowhere")).status).toBe(404)
    }))

  it.scopedLive("on shutdown /readyz turns 503 \"draining\" while a batch finishes, then the server closes", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const { fiber, port } = yield* startWorker(t.env)
      yield* publish(t.redis, t.stream, [JSON.stringify(position("dev-drain", "2026-05-01T10:00:00.000Z"))])
      yield* drained(t, 1)

      // A lock holds the next write inside its (uninterruptible) batch. The device is already in memory, so
      // the record goes straight to the write.
      const locker = yield* lockPositions(t.db.url, "ACCESS EXCLUSIVE")
      yield* publish(t.redis, t.stream, [JSON.stringify(position("dev-drain", "2026-05-01T10:00:01.000Z"))])
      yield* waitUntil(
        "the batch to wait for the lock",
        Effect.promise(() =>
          locker.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'processor' AND wait_event_type = 'Lock'`
          )
        ).pipe(Effect.map((r) => r.rows[0]!.n > 0))
      )

      // What SIGTERM does to the main fiber.
      const stopping = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* waitUntil("readiness to say draining", Effect.map(get(port, "/readyz"), (r) => r.status === 503))
      expect(json(yield* get(port, "/readyz"))).toEqual({ ready: false, checks: { redis: "ok", postgres: "ok", consumer: "draining" } })
      expect((yield* get(port, "/healthz")).status).toBe(200)
      expect(fiber.unsafePoll()).toBeNull()

      yield* Effect.promise(() => locker.query("ROLLBACK"))
      yield* Fiber.join(stopping).pipe(Effect.timeout("30 seconds"))
      // The batch in flight was finished and acknowledged before the worker stopped.
      expect(yield* countRows(t.pool)).toBe(2)
      expect(yield* pendingCount(t.redis, t.stream, t.group)).toBe(0)
      const closed = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5_000) }).then(() => false, () => true)
      )
      expect(closed).toBe(true)
    }))
})

describe("the worker process", () => {
  it.scopedLive("logs its port, puts trace ids on log lines in spans, exports those spans over OTLP, and exits on SIGTERM", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const posts: Array<{ url: string; body: string }> = []
      const sink = yield* Effect.acquireRelease(
        Effect.async<ReturnType<typeof createServer>>((resume) => {
          const server = createServer((req, res) => {
            let body = ""
            req.on("data", (d) => (body += d))
            req.on("end", () => {
              posts.push({ url: req.url ?? "", body })
              res.writeHead(200, { "content-type": "application/json" }).end("{}")
            })
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const worker = yield* spawnWorker({
        ...t.env,
        HTTP_PORT: 0,
        HTTP_HOST: "127.0.0.1",
        LOG_LEVEL: "debug",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`,
        OTEL_SERVICE_NAME: "processor-http-test"
      })
      yield* waitForLog(worker, "processor ready", 60_000)
      const port = Number(/"http listening on port (\d+)"/.exec(worker.output())?.[1])
      expect(port).toBeGreaterThan(0)
      // HTTP_HOST: bound to that address only.
      const listening = worker.output().split("\n").find((l) => l.includes("http listening on port"))!
      expect(JSON.parse(listening)).toMatchObject({ annotations: { host: "127.0.0.1" } })
      expect((yield* get(port, "/healthz")).status).toBe(200)

      yield* publish(t.redis, t.stream, [JSON.stringify(position("dev-traced", "2026-05-01T10:00:00.000Z"))])
      yield* waitForLog(worker, "batch: 1 consumed")
      const line = worker.output().split("\n").find((l) => l.includes("batch: 1 consumed"))!
      const { annotations } = JSON.parse(line) as { annotations: Record<string, string> }
      expect(annotations["trace_id"]).toMatch(/^[0-9a-f]{32}$/)
      expect(annotations["span_id"]).toMatch(/^[0-9a-f]{16}$/)
      // Every line carries the stream, group and consumer as fields; the start says how many entries it replayed.
      expect(annotations).toMatchObject({ stream: t.stream, group: t.group })
      expect(typeof annotations["consumer"]).toBe("string")
      const replay = worker.output().split("\n").find((l) => l.includes("own pending entries replayed"))!
      expect(JSON.parse(replay)).toMatchObject({ message: "0 own pending entries replayed; reading new entries", annotations: { replayed: 0 } })

      worker.process.kill("SIGTERM")
      const exit = yield* Effect.promise(() => worker.exited)
      expect(exit).toEqual({ code: 0, signal: null })
      // The span of that batch, flushed at shutdown at the latest, under the same trace id as the log line.
      const traces = posts.filter((p) => p.url === "/v1/traces").map((p) => p.body).join("\n")
      expect(traces).toContain("Pipeline.batch")
      expect(traces).toContain("processor-http-test")
      expect(traces).toContain(annotations["trace_id"])
    }))
})
