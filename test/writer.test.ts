import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Logger, LogLevel, Metric } from "effect"
import * as Metrics from "../src/observability/Metrics.js"
import { decodePayload } from "../src/position/decode.js"
import { migrate } from "../src/postgres/Migrations.js"
import { Pg } from "../src/postgres/Pg.js"
import { RowEncoder } from "../src/writer/copyBinary.js"
import { makeWrite, type WritePath } from "../src/writer/Writer.js"
import { countRows, forkWorker, pendingCount, type TestEnvironment, testEnvironment, waitUntil } from "./support/Integration.js"
import { position } from "./support/MemoryConsumer.js"
import { configLayer } from "./support/testConfig.js"

const iso = (second: number) => new Date(Date.UTC(2026, 4, 1, 10, 0, second)).toISOString()

/** A wire payload for (device, second), with fields overridden. */
const payload = (deviceId: string, second: number, extra: Record<string, unknown> = {}) => position(deviceId, iso(second), extra)

/** A migrated test database and the writer on it, telling which path each write took. */
const setup = (env: Record<string, string | number> = {}) =>
  Effect.gen(function*() {
    const t = yield* testEnvironment
    const config = configLayer({ ...t.env, ...env })
    const context = yield* Layer.build(Pg.layer.pipe(Layer.provide(config)))
    yield* migrate.pipe(Effect.provide(context), Effect.provide(Logger.minimumLogLevel(LogLevel.Error)))
    const paths: Array<WritePath> = []
    const write = makeWrite(Context.get(context, Pg), (path) => paths.push(path))
    const encoder = new RowEncoder()
    const rows = (...payloads: ReadonlyArray<object>) =>
      payloads.map((p) => {
        const decoded = decodePayload(JSON.stringify(p))
        if (Either.isLeft(decoded)) throw new Error(decoded.left)
        return encoder.encode(decoded.right.position, decoded.right.attributesJson)
      })
    /** Writes the payloads as one batch; the outcomes' tags and the paths it took. */
    const writeTags = (...payloads: ReadonlyArray<object>) =>
      Effect.gen(function*() {
        paths.length = 0
        const outcomes = yield* write(rows(...payloads))
        return { tags: outcomes.map((o) => o._tag), outcomes, paths: [...paths] }
      })
    return { t, write, rows, writeTags }
  })

const stored = (t: TestEnvironment, deviceId: string) =>
  Effect.promise(() =>
    t.pool.query(
      `SELECT latitude, event_id, attributes::text AS attributes FROM positions WHERE device_id = $1 ORDER BY ts`,
      [deviceId]
    )
  ).pipe(Effect.map((r) => r.rows))

describe("Writer: duplicate or conflict", () => {
  it.scopedLive("a record equal to the stored row is a duplicate; one that differs in any column is a conflict", () =>
    Effect.gen(function*() {
      const { t, writeTags } = yield* setup()
      const attributes = { name: "x", io: 1, "16": 5, "78": { __bigint: "18446744073709551615" } }
      const original = payload("d1", 1, { latitude: 54.1, event_id: 7, attributes })
      expect(yield* writeTags(original)).toMatchObject({ tags: ["Inserted"], paths: ["direct"] })

      const result = yield* writeTags(
        original,
        // The same attributes in another order: equal as jsonb.
        payload("d1", 1, { latitude: 54.1, event_id: 7, attributes: { "78": { __bigint: "18446744073709551615" }, io: 1, "16": 5, name: "x" } }),
        payload("d1", 1, { latitude: 54.1, event_id: 7, attributes: { ...attributes, io: 2 } }),
        payload("d1", 1, { latitude: 54.10000000000001, event_id: 7, attributes }),
        payload("d1", 1, { latitude: 54.1, event_id: 8, attributes }),
        // Equal as doubles, not as numbers: jsonb compares as numeric.
        payload("d1", 1, { latitude: 54.1, event_id: 7, attributes: { ...attributes, "78": { __bigint: "18446744073709551614" } } }),
        payload("d1", 2, { latitude: 54.1, event_id: 7, attributes })
      )
      expect(result.tags).toEqual(["Duplicate", "Duplicate", "Conflict", "Conflict", "Conflict", "Conflict", "Inserted"])
      expect(result.paths).toEqual(["staged"])
      // The stored row is the first one, untouched.
      const rows = yield* stored(t, "d1")
      expect(rows).toHaveLength(2)
      expect(rows[0]).toEqual({ latitude: 54.1, event_id: 7, attributes: '{"16": 5, "78": 18446744073709551615, "io": 1, "name": "x"}' })
    }), 60_000)

  it.scopedLive("within one batch: the first record with a key is inserted, a later equal one is a duplicate, a later different one a conflict", () =>
    Effect.gen(function*() {
      const { t, writeTags } = yield* setup()
      const result = yield* writeTags(
        payload("a", 1),
        payload("a", 1),
        payload("b", 1, { speed: 1 }),
        payload("b", 1, { speed: 2 }),
        payload("c", 1, { angle: 10 }),
        payload("c", 1, { angle: 10 }),
        payload("c", 1, { angle: 11 }),
        payload("c", 1, { angle: 10 })
      )
      expect(result.tags).toEqual(["Inserted", "Duplicate", "Inserted", "Conflict", "Inserted", "Duplicate", "Conflict", "Duplicate"])
      expect(result.paths).toEqual(["staged"])
      const rows = yield* Effect.promise(() => t.pool.query("SELECT device_id, speed, angle FROM positions ORDER BY device_id"))
      expect(rows.rows.map((r) => [r.device_id, r.speed, r.angle])).toEqual([["a", 43.5, 270], ["b", 1, 270], ["c", 43.5, 10]])
      // Across batches too: the stored "b" is speed 1.
      expect((yield* writeTags(payload("b", 1, { speed: 2 }), payload("b", 1, { speed: 1 }))).tags).toEqual(["Conflict", "Duplicate"])
    }), 60_000)
})

describe("Writer: direct COPY and its fallback", () => {
  it.scopedLive("writes a batch of new keys straight into the table, and the same rows through the staging table when a key is stored", () =>
    Effect.gen(function*() {
      const { t, writeTags } = yield* setup()
      const batch = (device: string) =>
        Array.from({ length: 20 }, (_, i) =>
          payload(device, i, { latitude: 54 + i / 7, event_id: 2_147_483_647 - i, attributes: { n: i, big: { __bigint: String(2n ** 64n + BigInt(i)) }, raw: { __bytes: "AQID" } } }))
      const direct = yield* writeTags(...batch("x"))
      expect(direct.paths).toEqual(["direct"])
      // The same positions for device "y", plus one key already stored: the staging path.
      const staged = yield* writeTags(...batch("y"), batch("x")[3]!)
      expect(staged.paths).toEqual(["staged"])
      expect(staged.tags).toEqual([...direct.tags, "Duplicate"])
      expect(direct.tags).toEqual(Array(20).fill("Inserted"))
      const rows = (device: string) =>
        Effect.promise(() =>
          t.pool.query(
            `SELECT ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id, attributes::text AS attributes
               FROM positions WHERE device_id = $1 ORDER BY ts`,
            [device]
          )
        ).pipe(Effect.map((r) => r.rows))
      const x = yield* rows("x")
      expect(x).toHaveLength(20)
      expect(yield* rows("y")).toEqual(x)
      expect(x[19]).toMatchObject({ event_id: 2_147_483_628, attributes: '{"n": 19, "big": 18446744073709551635, "raw": "010203"}' })
    }), 60_000)

  it.scopedLive("refuses an event_id too large for the column on the direct path, naming the value; the rest of the batch is written", () =>
    Effect.gen(function*() {
      const { t, writeTags } = yield* setup()
      const result = yield* writeTags(payload("e", 1), payload("e", 2, { event_id: 3_000_000_000 }), payload("e", 3, { event_id: 2_147_483_647 }))
      expect(result.tags).toEqual(["Inserted", "Failed", "Inserted"])
      expect(result.paths).toEqual(["direct"])
      expect(result.outcomes[1]).toEqual({
        _tag: "Failed",
        permanent: true,
        reason: "write batch: event_id: value \"3000000000\" is out of range for type integer (SQLSTATE 22003)"
      })
      // Only refused records: no statement at all.
      expect(yield* writeTags(payload("e", 4, { event_id: 2_147_483_648 }))).toMatchObject({ tags: ["Failed"], paths: [] })
      expect(yield* countRows(t.pool)).toBe(2)
    }), 60_000)
})

describe("Writer: a refused record among others", () => {
  it.scopedLive("is isolated on either path; the parts of a batch that fell back to the staging table stay there", () =>
    Effect.gen(function*() {
      const { t, writeTags } = yield* setup()
      // A row trigger: COPY then checks row by row, so a stored key fails the COPY where it stands.
      yield* Effect.promise(() =>
        t.pool.query(`
          CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.speed >= 1000 THEN RAISE EXCEPTION 'implausible speed' USING ERRCODE = 'P0001'; END IF;
            RETURN NEW;
          END $$;
          CREATE TRIGGER refuse BEFORE INSERT ON positions FOR EACH ROW EXECUTE FUNCTION refuse();`)
      )
      const news = (device: string) => Array.from({ length: 8 }, (_, i) => payload(device, i))
      const direct = yield* writeTags(...news("a").slice(0, 4), payload("a", 99, { speed: 5000 }), ...news("a").slice(4))
      expect(direct.tags).toEqual([...Array(4).fill("Inserted"), "Failed", ...Array(4).fill("Inserted")])
      expect(direct.outcomes[4]).toMatchObject({ permanent: false, reason: expect.stringContaining("SQLSTATE P0001") })
      expect(direct.paths).toEqual(Array(direct.paths.length).fill("direct"))
      // A stored key first in the batch: the first try falls back, and so does every part after it.
      const staged = yield* writeTags(payload("a", 0), ...news("b").slice(0, 4), payload("b", 99, { speed: 5000 }), ...news("b").slice(4))
      expect(staged.tags).toEqual(["Duplicate", ...Array(4).fill("Inserted"), "Failed", ...Array(4).fill("Inserted")])
      expect(staged.paths.length).toBeGreaterThan(1)
      expect(staged.paths).toEqual(Array(staged.paths.length).fill("staged"))
      expect(yield* countRows(t.pool)).toBe(16)
    }), 60_000)
})

describe("Writer: a statement that always times out", () => {
  it.scopedLive("is retried a few times, then isolated: the other records are written, the slow one stays pending", () =>
    Effect.gen(function*() {
      const { t, writeTags } = yield* setup({ PG_STATEMENT_TIMEOUT_MS: 200, RETRY_MAX_BACKOFF_MS: 50 })
      yield* Effect.promise(() =>
        t.pool.query(`
          CREATE FUNCTION slow_device() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            PERFORM pg_sleep(30);
            RETURN NEW;
          END $$;
          CREATE TRIGGER slow_device BEFORE INSERT ON positions FOR EACH ROW
            WHEN (NEW.device_id = 'slow') EXECUTE FUNCTION slow_device();`)
      )
      const payloads = Array.from({ length: 60 }, (_, i) => payload(i === 37 ? "slow" : `dev-${i}`, i))
      const started = Date.now()
      const result = yield* writeTags(...payloads)
      const seconds = (Date.now() - started) / 1000
      expect(result.tags).toEqual(payloads.map((_, i) => (i === 37 ? "Failed" : "Inserted")))
      expect(result.outcomes[37]).toMatchObject({ permanent: false, reason: expect.stringContaining("SQLSTATE 57014") })
      expect(yield* countRows(t.pool)).toBe(59)
      // 3 tries of the batch, then one failing piece per level (60 → 8 → 3 → 1): 6 timeouts of 0.2 s, plus backoff.
      expect(seconds).toBeLessThan(10)
    }), 60_000)
})

describe("Pipeline: a conflict", () => {
  it.scopedLive("is dead-lettered with its reason, acknowledged and counted; an identical record is a silent duplicate", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const before = (yield* Metric.value(Metrics.conflict)).count
      const duplicatesBefore = (yield* Metric.value(Metrics.duplicate)).count
      yield* forkWorker({ ...t.env, LOG_LEVEL: "error" })
      const first = JSON.stringify(payload("tracker-1", 5, { event_id: 1 }))
      yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "payload", first))
      yield* waitUntil("the first row", Effect.map(countRows(t.pool), (n) => n === 1))
      const other = JSON.stringify(payload("tracker-1", 5, { event_id: 2 }))
      const conflictId = yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "payload", other, "source", "tcp-ingestion"))
      yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "payload", first))
      yield* waitUntil(
        "a dead letter and nothing pending",
        Effect.zipWith(
          Effect.promise(() => t.redis.xlen(t.dlq)),
          pendingCount(t.redis, t.stream, t.group),
          (letters, pending) => letters === 1 && pending === 0
        )
      )
      const [[, fields]] = (yield* Effect.promise(() => t.redis.xrange(t.dlq, "-", "+"))) as [[string, Array<string>]]
      const letter = new Map<string, string>()
      for (let i = 0; i < fields!.length; i += 2) letter.set(fields![i]!, fields![i + 1]!)
      expect(letter.get("reason")).toBe("conflict")
      expect(letter.get("error")).toBe(`conflict: a different position is stored for device "tracker-1" at ${iso(5)}`)
      expect(letter.get("payload")).toBe(other)
      expect(letter.get("source")).toBe("tcp-ingestion")
      expect(letter.get("source_id")).toBe(conflictId)
      expect((yield* Metric.value(Metrics.conflict)).count - before).toBe(1)
      expect((yield* Metric.value(Metrics.duplicate)).count - duplicatesBefore).toBe(1)
      expect(yield* stored(t, "tracker-1")).toMatchObject([{ event_id: 1 }])
    }), 60_000)
})

