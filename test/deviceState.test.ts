import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option } from "effect"
import type pg from "pg"
import { migrate } from "../src/postgres/Migrations.js"
import { Pg, PgError } from "../src/postgres/Pg.js"
import { DeviceState } from "../src/state/DeviceState.js"
import { LatestPositions } from "../src/state/LatestPositions.js"
import { freshDatabase, testPool } from "./support/Integration.js"
import { configLayer } from "./support/testConfig.js"
import { observed, stored } from "./support/DeviceRecords.js"

const newest = (state: DeviceState["Type"], id: string) =>
  Effect.map(state.get(id), (d) => Option.getOrThrow(d).last_position)

/** A database with the worker's schema, a pool on it, and DeviceState on the real LatestPositions. */
const onDatabase = (capacity: number, skew: Duration.DurationInput = Duration.zero) =>
  Effect.gen(function*() {
    const db = yield* freshDatabase
    const pool = yield* testPool(db.url)
    const infrastructure = Pg.layer.pipe(Layer.provide(configLayer({ POSTGRES_URL: db.url })))
    const context = yield* Layer.build(LatestPositions.layer.pipe(Layer.provideMerge(infrastructure)))
    yield* migrate.pipe(Effect.provide(context))
    const state = yield* DeviceState.make(capacity, skew).pipe(Effect.provide(context))
    const another = (otherSkew: Duration.DurationInput) => DeviceState.make(capacity, otherSkew).pipe(Effect.provide(context))
    return { another, pool, state }
  })

const insert = (pool: pg.Pool, deviceId: string, iso: string, speed: number) =>
  Effect.promise(() =>
    pool.query(
      `INSERT INTO positions (device_id, ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id)
       VALUES ($1, $2, 54, 25, 100, 90, $3, 9, 0, 0)`,
      [deviceId, iso, speed]
    )
  )

describe("DeviceState", () => {
  it.scopedLive("update never queries; hydrate merges the newest stored rows, a failing device does not degrade the others, and is tried again", () =>
    Effect.gen(function*() {
      let failing = true
      const queried: Array<ReadonlyArray<string>> = []
      // The table: dev-ok's newest stored row is 10:05, dev-bad's is 11:00.
      const rows = new Map([["dev-ok", stored("dev-ok", "2026-05-01T10:05:00Z")], ["dev-bad", stored("dev-bad", "2026-05-01T11:00:00Z")]])
      const latest = LatestPositions.of({
        latest: (ids) =>
          Effect.suspend(() => {
            queried.push(ids)
            if (failing && ids.includes("dev-bad")) {
              return Effect.fail(new PgError({ op: "hydrate device state", cause: Object.assign(new Error("invalid byte sequence"), { code: "22021" }) }))
            }
            return Effect.succeed(new Map(ids.flatMap((id) => (rows.has(id) ? [[id, rows.get(id)!] as const] : []))))
          })
      })
      const state = yield* DeviceState.make(10).pipe(Effect.provide(Layer.succeed(LatestPositions, latest)))
      const newestOf = (id: string) =>
        Effect.map(state.get(id), (d) => Option.getOrThrow(d).last_position?.timestamp.toISOString())

      const first = yield* state.update([observed("dev-ok", "2026-05-01T10:01:00Z"), observed("dev-bad", "2026-05-01T10:30:00Z"), observed("dev-new", "2026-05-01T10:00:00Z")])
      // The write path waits for no query: the records are what the state knows, none late.
      expect(queried).toEqual([])
      expect(first.late).toBe(0)

      // One query for every device not hydrated yet (dev-x is not in memory: not asked); dev-bad's fails.
      yield* state.hydrate(["dev-ok", "dev-bad", "dev-new", "dev-x"])
      expect(queried[0]).toEqual(["dev-ok", "dev-bad", "dev-new"])
      // dev-ok took its stored 10:05, newer than its 10:01 record.
      expect(yield* newestOf("dev-ok")).toBe("2026-05-01T10:05:00.000Z")
      expect(yield* newestOf("dev-new")).toBe("2026-05-01T10:00:00.000Z")
      // dev-bad could not be read: it holds what it was sent (get tried it once more, and failed again).
      queried.length = 0
      expect(yield* newestOf("dev-bad")).toBe("2026-05-01T10:30:00.000Z")
      expect(queried).toEqual([["dev-bad"]])

      failing = false
      queried.length = 0
      const summary = yield* state.update([observed("dev-bad", "2026-05-01T10:40:00Z"), observed("dev-ok", "2026-05-01T10:04:00Z")])
      // dev-ok is hydrated: its 10:04 is older than the stored 10:05 it knows, so late.
      expect(summary.late).toBe(1)
      yield* state.hydrate(["dev-bad", "dev-ok"])
      // Only dev-bad is hydrated again; its stored 11:00 is newer than anything it was sent.
      expect(queried).toEqual([["dev-bad"]])
      expect(yield* newestOf("dev-bad")).toBe("2026-05-01T11:00:00.000Z")
      expect(yield* newestOf("dev-ok")).toBe("2026-05-01T10:05:00.000Z")
      // Every device hydrated: reading costs no query.
      queried.length = 0
      yield* state.hydrate(["dev-ok", "dev-bad", "dev-new"])
      yield* state.get("dev-new")
      expect(queried).toEqual([])
    }))

  it.scopedLive("two records with one key: whichever the table keeps, reconcile makes the state's newest that stored row", () =>
    Effect.gen(function*() {
      const { pool, state } = yield* onDatabase(10)
      const ts = "2026-05-01T10:00:00Z"
      // A arrives first and becomes the newest; B (same key, other speed) is not newer.
      yield* state.update([observed("dev-1", ts, 11), observed("dev-1", ts, 22)])
      expect((yield* newest(state, "dev-1"))?.speed).toBe(11)
      // The write of B committed first (another write slot): the table holds B; A's write is a conflict.
      yield* insert(pool, "dev-1", ts, 22)
      yield* state.reconcile([{ deviceId: "dev-1", ms: Date.parse(ts) }])
      expect((yield* newest(state, "dev-1"))?.speed).toBe(22)

      // A key that is not the device's newest leaves it alone; so does a device not in memory.
      yield* state.update([observed("dev-1", "2026-05-01T10:00:01Z", 33)])
      yield* state.reconcile([{ deviceId: "dev-1", ms: Date.parse(ts) }, { deviceId: "dev-x", ms: Date.parse(ts) }])
      expect((yield* newest(state, "dev-1"))?.speed).toBe(33)
      expect(Option.isNone(yield* state.get("dev-x"))).toBe(true)

      // A refused newest record with nothing stored for the device leaves no newest position at all.
      yield* state.update([observed("dev-2", ts, 5)])
      yield* state.reconcile([{ deviceId: "dev-2", ms: Date.parse(ts) }])
      expect(yield* newest(state, "dev-2")).toBeUndefined()
    }))

  it.scopedLive("hydration ignores stored rows further ahead of now than MAX_FUTURE_SKEW", () =>
    Effect.gen(function*() {
      const { another, pool, state } = yield* onDatabase(10, Duration.hours(24))
      yield* insert(pool, "dev-1", "2026-05-01T10:00:00Z", 1)
      yield* insert(pool, "dev-1", "2080-01-01T00:00:00Z", 2)
      yield* state.update([observed("dev-1", "2026-05-01T09:00:00Z")])
      yield* state.hydrate(["dev-1"])
      expect((yield* newest(state, "dev-1"))?.timestamp.toISOString()).toBe("2026-05-01T10:00:00.000Z")

      // With the check off (zero), the far-future row is the newest.
      const unchecked = yield* another(Duration.zero)
      yield* unchecked.update([observed("dev-1", "2026-05-01T09:00:00Z")])
      yield* unchecked.hydrate(["dev-1"])
      expect((yield* newest(unchecked, "dev-1"))?.timestamp.toISOString()).toBe("2080-01-01T00:00:00.000Z")
    }))

  it.effect("holds at most about DEVICE_STATE_MAX_BYTES: devices with large attributes are fewer, not bigger", () =>
    Effect.gen(function*() {
      const none = Layer.succeed(LatestPositions, LatestPositions.of({ latest: () => Effect.succeed(new Map()) }))
      const state = yield* DeviceState.make(10_000, Duration.zero, 1024 * 1024).pipe(Effect.provide(none))
      const big = "y".repeat(60_000)
      const large = (id: string) => {
        const o = observed(id, "2026-05-01T10:00:00Z")
        return { ...o, attributesJson: JSON.stringify({ note: big }) }
      }
      yield* state.update(Array.from({ length: 100 }, (_, i) => large(`big-${i}`)))
      // About 120 KiB each (two bytes a character): eight fit in 1 MiB.
      expect(yield* state.size).toBeLessThanOrEqual(8)
      expect(yield* state.size).toBeGreaterThanOrEqual(4)
      // Small devices take the room back; a device whose newest position grows is counted at its new size.
      yield* state.update(Array.from({ length: 500 }, (_, i) => observed(`small-${i}`, "2026-05-01T10:00:00Z")))
      const before = yield* state.size
      expect(before).toBeGreaterThan(400)
      yield* state.update([{ ...large("small-499"), position: { ...large("small-499").position, timestamp: new Date("2026-05-01T10:00:01Z") } }])
      expect(Option.isSome(yield* state.get("small-499"))).toBe(true)
      expect(yield* state.size).toBeLessThan(before)
    }))

  it.effect("evicts the least recently seen device beyond capacity and counts evictions", () =>
    Effect.gen(function*() {
      const none = Layer.succeed(LatestPositions, LatestPositions.of({ latest: () => Effect.succeed(new Map()) }))
      const state = yield* DeviceState.make(3).pipe(Effect.provide(none))
      yield* state.update(["a", "b", "c"].map((id) => observed(id, "2026-05-01T10:00:00Z")))
      // Seen again: "a" becomes the most recent, so "b" is the one to go.
      yield* state.update([observed("a", "2026-05-01T10:00:01Z"), observed("d", "2026-05-01T10:00:00Z")])
      expect(yield* state.size).toBe(3)
      expect(Option.isNone(yield* state.get("b"))).toBe(true)
      for (const id of ["a", "c", "d"]) expect(Option.isSome(yield* state.get(id))).toBe(true)
      // A chunk with more distinct devices than the capacity keeps the last ones.
      yield* state.update(["e", "f", "g", "h"].map((id) => observed(id, "2026-05-01T10:00:00Z")))
      expect(yield* state.size).toBe(3)
      for (const id of ["f", "g", "h"]) expect(Option.isSome(yield* state.get(id))).toBe(true)
    }))

  it.effect("a view from get is a copy: later records change neither it nor a row the table gave", () =>
    Effect.gen(function*() {
      const row = stored("dev-1", "2026-05-01T10:05:00Z", 7)
      const table = Layer.succeed(LatestPositions, LatestPositions.of({ latest: () => Effect.succeed(new Map([["dev-1", row]])) }))
      const state = yield* DeviceState.make(10).pipe(Effect.provide(table))
      yield* state.update([observed("dev-1", "2026-05-01T10:00:00Z", 1), observed("dev-2", "2026-05-01T10:00:00Z", 2)])
      const before = yield* newest(state, "dev-2")
      yield* state.update([observed("dev-2", "2026-05-01T10:00:01Z", 3)])
      expect(before?.speed).toBe(2)
      expect(before?.timestamp.toISOString()).toBe("2026-05-01T10:00:00.000Z")
      expect((yield* newest(state, "dev-2"))?.speed).toBe(3)
      // dev-1 takes the table's newer row, then a newer record: the table's object stays as it was.
      expect((yield* newest(state, "dev-1"))?.speed).toBe(7)
      yield* state.update([observed("dev-1", "2026-05-01T10:06:00Z", 8)])
      expect((yield* newest(state, "dev-1"))?.speed).toBe(8)
      expect(row.speed).toBe(7)
      expect(row.timestamp.toISOString()).toBe("2026-05-01T10:05:00.000Z")
    }))
})
