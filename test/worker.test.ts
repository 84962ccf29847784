import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import type pg from "pg"
import type { Position } from "../src/position/Position.js"
import { Pg } from "../src/postgres/Pg.js"
import { DeviceState } from "../src/state/DeviceState.js"
import { LatestPositions } from "../src/state/LatestPositions.js"
import { RowEncoder } from "../src/writer/copyBinary.js"
import { attributesJson } from "../src/position/attributesJson.js"
import { type Outcome, Writer } from "../src/writer/Writer.js"
import { generatePayloads } from "../src/simulate/Generator.js"
import { publish } from "../src/simulate/Publish.js"
import {
  countRows,
  groupLag,
  pendingCount,
  forkWorker,
  streamLength,
  type TestEnvironment,
  testEnvironment,
  waitUntil
} from "./support/Integration.js"
import { position } from "./support/MemoryConsumer.js"
import { configLayer } from "./support/testConfig.js"

/** A position as the decoder returns it. */
const decoded = (deviceId: string, iso: string, extra: Partial<Position> = {}): Position => ({
  device_id: deviceId,
  timestamp: new Date(iso),
  latitude: 54,
  longitude: 25,
  altitude: 100,
  angle: 0,
  speed: 1,
  satellites: 9,
  priority: 0,
  event_id: 0,
  attributes: {},
  ...extra
})

const drained = (t: TestEnvironment, rows: number) =>
  waitUntil(
    `${rows} rows and an empty pending list`,
    Effect.all([countRows(t.pool), pendingCount(t.redis, t.stream, t.group), groupLag(t.redis, t.stream, t.group)]).pipe(
      Effect.map(([n, pending, lag]) => n === rows && pending === 0 && lag === 0)
    ),
    60_000
  )

interface StoredRow {
  device_id: string
  ts_ms: string
  latitude: number
  longitude: number
  altitude: number
  angle: number
  speed: number
  satellites: number
  priority: number
  event_id: number
  attributes: Array<[string, string, string]>
}

// Each stored row as text, attributes as (key, jsonb type, text) so that exactness is checked in SQL terms.
const storedRows = (pool: pg.Pool) =>
  Effect.promise(() =>
    pool.query<StoredRow>(`
      SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint::text AS ts_ms, latitude, longitude, altitude, angle,
             speed, satellites, priority, event_id,
             (SELECT coalesce(json_agg(json_build_array(key, jsonb_typeof(value), value #>> '{}')), '[]')
                FROM jsonb_each(attributes)) AS attributes
        FROM positions`)
  ).pipe(Effect.map((r) => new Map(r.rows.map((row) => [`${row.device_id}|${row.ts_ms}`, row]))))

// What the row must hold for a payload, worked out from the wire JSON alone (not with the worker's code).
const expectRowMatches = (payload: string, row: StoredRow | undefined) => {
  const p = JSON.parse(payload)
  expect(row, payload).toBeDefined()
  expect(row!.ts_ms).toBe(String(Date.parse(p.timestamp)))
  for (const field of ["latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority"] as const) {
    expect(row![field]).toBe(p[field])
  }
  expect(row!.event_id).toBe(p.event_id ?? 0)
  const stored = new Map(row!.attributes.map(([key, type, text]) => [key, { type, text }]))
  expect(stored.size).toBe(Object.keys(p.attributes ?? {}).length)
  for (const [key, value] of Object.entries<unknown>(p.attributes ?? {})) {
    const got = stored.get(key)!
    if (typeof value === "object" && value !== null && "__bigint" in value) {
      expect(got).toEqual({ type: "number", text: (value as { __bigint: string }).__bigint })
    } else if (typeof value === "object" && value !== null && "__bytes" in value) {
      const hex = Buffer.from((value as { __bytes: string }).__bytes, "base64").toString("hex")
      expect(got).toEqual({ type: "string", text: hex })
    } else if (typeof value === "number") {
      expect(got.type).toBe("number")
      expect(Number(got.text)).toBe(value)
    } else {
      expect(got).toEqual({ type: typeof value, text: String(value) })
    }
  }
}

describe("worker against real Redis and PostgreSQL", () => {
  it.scopedLive("writes 10,000 published positions as 10,000 rows, every field as published", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const payloads = generatePayloads({ devices: 200, seed: 7, count: 10_000 })
      yield* publish(t.redis, t.stream, payloads, 2_000)
      yield* forkWorker(t.env)
      yield* drained(t, 10_000)

      const rows = yield* storedRows(t.pool)
      expect(rows.size).toBe(10_000)
      for (const payload of payloads) {
        const p = JSON.parse(payload)
        expectRowMatches(payload, rows.get(`${p.device_id}|${Date.parse(p.timestamp)}`))
      }
      expect(yield* streamLength(t.redis, t.dlq)).toBe(0)
    }))

  it.scopedLive("re-published duplicates add no rows and are all acknowledged", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const payloads = generatePayloads({ devices: 20, seed: 11, count: 1_000 })
      yield* publish(t.redis, t.stream, payloads)
      yield* forkWorker(t.env)
      yield* drained(t, 1_000)
      const before = yield* Effect.promise(() => t.pool.query("SELECT max(ingested_at) AS at FROM positions"))

      // The same records again, and a batch that repeats a key inside itself.
      yield* publish(t.redis, t.stream, [...payloads, ...payloads.slice(0, 50)])
      yield* waitUntil(
        "the duplicates to be acknowledged",
        Effect.map(
          Effect.all([pendingCount(t.redis, t.stream, t.group), groupLag(t.redis, t.stream, t.group)]),
          ([pending, lag]) => pending === 0 && lag === 0
        )
      )
      expect(yield* countRows(t.pool)).toBe(1_000)
      const after = yield* Effect.promise(() => t.pool.query("SELECT max(ingested_at) AS at FROM positions"))
      expect(after.rows[0].at).toEqual(before.rows[0].at)
      expect(yield* streamLength(t.redis, t.dlq)).toBe(0)
    }))

  it.scopedLive("copies invalid entries to the dead-letter stream with a reason naming the field, and acknowledges them", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const invalid = [
        JSON.stringify(position("dev-a", "2026-05-01T10:00:00.000Z", { latitude: 95 })),
        JSON.stringify(position("dev-b", "yesterday")),
        JSON.stringify(position("dev-c", "2026-05-01T10:00:00.000Z", { attributes: { "78": { __bigint: "12x" } } })),
        "{this is not json"
      ]
      const valid = [JSON.stringify(position("dev-d", "2026-05-01T10:00:00.000Z"))]
      yield* publish(t.redis, t.stream, [...invalid, ...valid])
      yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "other", "no payload field"))
      yield* forkWorker(t.env)
      yield* drained(t, 1)
      yield* waitUntil("5 dead letters", Effect.map(streamLength(t.redis, t.dlq), (n) => n === 5))

      const letters = (yield* Effect.promise(() => t.redis.xrange(t.dlq, "-", "+"))).map(([, fields]) => {
        const record: Record<string, string> = {}
        for (let i = 0; i < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!
        return record
      })
      expect(letters.map((l) => l["error"]!.split(":")[0])).toEqual(["latitude", "timestamp", "attributes.78", "payload", "payload"])
      expect(letters.slice(0, 4).map((l) => l["payload"])).toEqual(invalid)
      for (const l of letters) {
        expect(l["source_id"]).toMatch(/^\d+-\d+$/)
        expect(l["consumer"]).toBe("worker-1")
        expect(Number.isNaN(Date.parse(l["failed_at"]!))).toBe(false)
      }
    }))

  it.scopedLive("a write failure leaves the entries pending and the worker running; they are written once the database accepts them", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* forkWorker({ ...t.env, CLAIM_IDLE_MS: 500, CLAIM_INTERVAL_MS: 200, MAX_DELIVERIES: 1000 })
      yield* waitUntil("the table to exist", Effect.map(countRows(t.pool), (n) => n === 0))
      // A schema problem, neither transient nor the data's fault: the write fails, nothing is acknowledged.
      yield* Effect.promise(() => t.pool.query("ALTER TABLE positions RENAME TO positions_away"))
      const payloads = generatePayloads({ devices: 5, seed: 3, count: 100 })
      yield* publish(t.redis, t.stream, payloads)
      yield* waitUntil("100 pending entries", Effect.map(pendingCount(t.redis, t.stream, t.group), (n) => n === 100))
      yield* waitUntil(
        "a redelivery",
        Effect.promise(async () => {
          const [[, , , deliveries]] = (await t.redis.xpending(t.stream, t.group, "-", "+", 1)) as [[string, string, number, number]]
          return deliveries >= 2
        })
      )
      expect(yield* Fiber.poll(worker)).toEqual(Option.none())
      expect(yield* streamLength(t.redis, t.dlq)).toBe(0)

      yield* Effect.promise(() => t.pool.query("ALTER TABLE positions_away RENAME TO positions"))
      yield* drained(t, 100)
      expect(yield* Fiber.poll(worker)).toEqual(Option.none())
    }))
})

describe("DeviceState on a real database", () => {
  const observed = (deviceId: string, iso: string) => {
    const position = decoded(deviceId, iso)
    return { position, attributesJson: attributesJson(position.attributes) }
  }
  const stateWith = (t: TestEnvironment, capacity: number) =>
    Effect.gen(function*() {
      let queries = 0
      const counting = Layer.effect(
        LatestPositions,
        Effect.map(LatestPositions, (inner) =>
          LatestPositions.of({ latest: (ids) => Effect.suspend(() => (queries++, inner.latest(ids))) }))
      ).pipe(Layer.provide(LatestPositions.layer))
      // Built in the test's scope, so the pool lives as long as the test.
      const context = yield* Layer.build(counting.pipe(Layer.provide(Pg.layer), Layer.provide(configLayer(t.env))))
      const state = yield* DeviceState.make(capacity).pipe(Effect.provide(context))
      return { state, queries: () => queries }
    })

  it.scopedLive("keeps the newest position under out-of-order input, hydrates new devices with one query when read, evicts beyond capacity", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      // The worker's migration creates the table; then a stored row for dev-1 that is newer than anything sent.
      const fiber = yield* forkWorker(t.env)
      yield* waitUntil("the table to exist", Effect.map(countRows(t.pool), (n) => n === 0))
      yield* Fiber.interrupt(fiber)
      yield* Effect.promise(() =>
        t.pool.query(`INSERT INTO positions (device_id, ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id)
                      VALUES ('dev-1', '2026-05-01T12:00:00Z', 1, 2, 3, 4, 5, 6, 0, 0)`)
      )
      const { queries, state } = yield* stateWith(t, 3)

      const summary = yield* state.update([
        observed("dev-1", "2026-05-01T10:00:00Z"),
        observed("dev-2", "2026-05-01T10:00:03Z"),
        observed("dev-2", "2026-05-01T10:00:01Z"),
        observed("dev-2", "2026-05-01T10:00:02Z")
      ])
      // The write path never queries the table.
      expect(queries()).toBe(0)
      expect(summary.late).toBe(2)
      yield* state.hydrate(["dev-1", "dev-2"])
      expect(queries()).toBe(1)
      const dev1 = Option.getOrThrow(yield* state.get("dev-1"))
      expect(dev1.last_position?.timestamp.toISOString()).toBe("2026-05-01T12:00:00.000Z")
      // Hydrated from the table in the same form as live records: the attributes' stored JSON.
      expect(dev1.last_position?.attributesJson).toBe("{}")
      expect(dev1.position_count_session).toBe(1)
      const dev2 = Option.getOrThrow(yield* state.get("dev-2"))
      expect(dev2.last_position?.timestamp.toISOString()).toBe("2026-05-01T10:00:03.000Z")
      expect(dev2.position_count_session).toBe(3)
      // Hydrated devices cost no query again.
      expect(queries()).toBe(1)

      // dev-3 and dev-4 push the least recently seen (dev-1) out.
      yield* state.update([observed("dev-2", "2026-05-01T10:00:04Z")])
      yield* state.update([observed("dev-3", "2026-05-01T10:00:00Z"), observed("dev-4", "2026-05-01T10:00:00Z")])
      expect(queries()).toBe(1)
      expect(yield* state.size).toBe(3)
      expect(Option.isNone(yield* state.get("dev-1"))).toBe(true)
      expect(Option.isSome(yield* state.get("dev-2"))).toBe(true)
    }))
})

describe("Writer on a real database", () => {
  it.scopedLive("tells inserted from duplicate per record, inside a batch and across batches, and isolates a refused row", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const fiber = yield* forkWorker(t.env)
      yield* waitUntil("the table to exist", Effect.map(countRows(t.pool), (n) => n === 0))
      yield* Fiber.interrupt(fiber)
      const context = yield* Layer.build(Writer.layer.pipe(Layer.provide(Pg.layer), Layer.provide(configLayer(t.env))))
      const writer = Context.get(context, Writer)
      const encoder = new RowEncoder()
      const encode = (p: Position) => encoder.encode(p, attributesJson(p.attributes))
      const at = (deviceId: string, second: number, event_id = 0) =>
        encode(decoded(deviceId, new Date(Date.UTC(2026, 4, 1, 10, 0, second)).toISOString(), {
          event_id,
          attributes: { "78": 18446744073709551615n, "385": new Uint8Array([1, 2, 3]) }
        }))
      const tags = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((o) => o._tag)

      expect(tags(yield* writer.write([at("a", 1), at("b", 1)]))).toEqual(["Inserted", "Inserted"])
      // a/1 is stored already; c/1 comes twice in one batch: the first copy is inserted, the second is not.
      expect(tags(yield* writer.write([at("a", 1), at("c", 1), at("c", 1), at("d", 1)]))).toEqual(["Duplicate", "Inserted", "Duplicate", "Inserted"])
      const mixed = yield* writer.write([at("e", 1), at("f", 1, 3_000_000_000), at("a", 1)])
      expect(tags(mixed)).toEqual(["Inserted", "Failed", "Duplicate"])
      expect(mixed[1]).toMatchObject({ permanent: true, reason: expect.stringContaining("22003") })
      expect(yield* countRows(t.pool)).toBe(5)
      const [row] = (yield* Effect.promise(() => t.pool.query("SELECT attributes::text AS a FROM positions WHERE device_id = 'e'"))).rows
      expect(row.a).toBe('{"78": 18446744073709551615, "385": "010203"}')
    }))
})
