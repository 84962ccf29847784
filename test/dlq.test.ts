import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import * as DeadLetters from "../src/deadletter/DeadLetters.js"

const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

const connect = Effect.acquireRelease(
  Effect.promise(async () => {
    const redis = new IORedis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
    return redis
  }),
  (redis) => Effect.promise(() => redis.quit()).pipe(Effect.timeout("2 seconds"), Effect.ignore)
)

// Each test gets its own streams, deleted when its scope closes (before the connection is).
const setup = Effect.gen(function*() {
  const redis = yield* connect
  const base = `test:dlq:${randomUUID()}`
  const keys = { sourceKey: `${base}:source`, dlqKey: `${base}:dlq` }
  yield* Effect.addFinalizer(() => Effect.promise(() => redis.del(keys.sourceKey, keys.dlqKey)))
  return { redis, keys }
})

const deadLetter = (
  redis: IORedis,
  dlqKey: string,
  entry: { payload?: string | Buffer; error: string; sourceId: string; id?: string }
) =>
  Effect.promise(() =>
    redis.xadd(
      dlqKey,
      entry.id ?? "*",
      ...(entry.payload === undefined ? [] : ["payload", entry.payload]),
      "error",
      entry.error,
      "source_id",
      entry.sourceId,
      "consumer",
      "test-consumer",
      "failed_at",
      new Date().toISOString()
    )
  ).pipe(Effect.map((id) => id!))

const ids = (redis: IORedis, key: string) =>
  Effect.promise(() => redis.xrange(key, "-", "+")).pipe(Effect.map((entries) => entries.map(([id]) => id)))

const payloads = (redis: IORedis, key: string) =>
  Effect.promise(() => redis.xrangeBuffer(key, "-", "+")).pipe(
    Effect.map((entries) => entries.map(([, fields]) => ({ fields: fields.map((f) => f.toString()), payload: fields[1]! })))
  )

describe("DeadLetters against Redis", () => {
  it.scopedLive("round trip: list, replay one by id, replay the rest", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const written = yield* Effect.forEach([1, 2, 3, 4], (n) =>
        deadLetter(redis, keys.dlqKey, { payload: `{"device":"d${n}"}`, error: `bad ${n}`, sourceId: `${n}-0` }))

      const listing = yield* DeadLetters.list(redis, keys.dlqKey, { order: "oldest", limit: 3 })
      expect(listing.total).toBe(4)
      expect(listing.entries.map((e) => e.id)).toEqual(written.slice(0, 3))
      expect(listing.entries.map((e) => DeadLetters.fieldText(e, "error"))).toEqual(["bad 1", "bad 2", "bad 3"])
      const first = listing.entries[0]!
      expect(first.timestamp).toBe(Number(written[0]!.split("-")[0]))
      expect(first.fields.map(([name, value]) => [name, value.toString()])).toEqual([
        ["payload", "{\"device\":\"d1\"}"],
        ["error", "bad 1"],
        ["source_id", "1-0"],
        ["consumer", "test-consumer"],
        ["failed_at", expect.any(String)]
      ])
      expect(Math.abs(Date.now() - listing.entries[0]!.timestamp)).toBeLessThan(60_000)

      const one = yield* DeadLetters.replay(redis, keys, DeadLetters.Selection.Ids({ ids: [written[1]!] }))
      expect(one).toEqual({ replayed: 1, notFound: [], nothingToReplay: 0, nothingToReplayIds: [] })
      expect(yield* payloads(redis, keys.sourceKey)).toEqual([
        { fields: ["payload", "{\"device\":\"d2\"}"], payload: Buffer.from("{\"device\":\"d2\"}") }
      ])
      expect(yield* ids(redis, keys.dlqKey)).toEqual([written[0], written[2], written[3]])

      const rest = yield* DeadLetters.replay(redis, keys, DeadLetters.Selection.All())
      expect(rest.replayed).toBe(3)
      expect((yield* payloads(redis, keys.sourceKey)).map((e) => e.payload.toString())).toEqual(
        [2, 1, 3, 4].map((n) => `{"device":"d${n}"}`)
      )
      expect(yield* Effect.promise(() => redis.xlen(keys.dlqKey))).toBe(0)
    }))

  it.scopedLive("replay keeps a binary payload byte for byte", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x41])
      const id = yield* deadLetter(redis, keys.dlqKey, { payload: bytes, error: "not utf-8", sourceId: "1-0" })
      const result = yield* DeadLetters.replay(redis, keys, DeadLetters.Selection.Ids({ ids: [id] }))
      expect(result.replayed).toBe(1)
      const [replayed] = yield* payloads(redis, keys.sourceKey)
      expect(replayed!.payload.equals(bytes)).toBe(true)
    }))

  it.scopedLive("unknown ids are reported, the known ones still replayed", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const id = yield* deadLetter(redis, keys.dlqKey, { payload: "p", error: "e", sourceId: "1-0" })
      const result = yield* DeadLetters.replay(
        redis,
        keys,
        DeadLetters.Selection.Ids({ ids: ["1-0", id, id, "2-0"] })
      )
      expect(result.replayed).toBe(1)
      expect(result.notFound).toEqual(["1-0", "2-0"])
      expect(yield* Effect.promise(() => redis.xlen(keys.sourceKey))).toBe(1)
    }))

  it.scopedLive("a malformed id fails before anything moves", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const id = yield* deadLetter(redis, keys.dlqKey, { payload: "p", error: "e", sourceId: "1-0" })
      const error = yield* Effect.flip(DeadLetters.replay(redis, keys, DeadLetters.Selection.Ids({ ids: [id, "12"] })))
      expect(error).toEqual(new DeadLetters.InvalidStreamId({ id: "12" }))
      expect(yield* ids(redis, keys.dlqKey)).toEqual([id])
    }))

  it.scopedLive("replay all walks several pages and leaves entries without a payload", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const empty = yield* deadLetter(redis, keys.dlqKey, { payload: "", error: "empty", sourceId: "0-1" })
      yield* Effect.forEach(Array.from({ length: 25 }, (_, i) => i), (i) =>
        deadLetter(redis, keys.dlqKey, { payload: `p${i}`, error: "e", sourceId: `${i}-0` }))
      const missing = yield* deadLetter(redis, keys.dlqKey, { error: "no payload field", sourceId: "0-2" })

      const result = yield* DeadLetters.replay(redis, keys, DeadLetters.Selection.All(), { pageSize: 7 })
      expect(result).toEqual({ replayed: 25, notFound: [], nothingToReplay: 2, nothingToReplayIds: [empty, missing] })
      expect((yield* payloads(redis, keys.sourceKey)).map((e) => e.payload.toString())).toEqual(
        Array.from({ length: 25 }, (_, i) => `p${i}`)
      )
      expect(yield* ids(redis, keys.dlqKey)).toEqual([empty, missing])
    }))

  it.scopedLive("replay all stops at the newest entry present when it started", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      // Source and DLQ the same stream: every replayed entry lands behind the cursor again,
      // like entries that fail once more. Without the bound this would never end.
      const loop = { dlqKey: keys.dlqKey, sourceKey: keys.dlqKey }
      const before = yield* Effect.forEach([1, 2, 3, 4, 5], (n) =>
        deadLetter(redis, keys.dlqKey, { payload: `p${n}`, error: "e", sourceId: `${n}-0` }))
      const result = yield* DeadLetters.replay(redis, loop, DeadLetters.Selection.All(), { pageSize: 2 }).pipe(
        Effect.timeout("3 seconds")
      )
      expect(result.replayed).toBe(5)
      const after = yield* ids(redis, keys.dlqKey)
      expect(after).toHaveLength(5)
      expect(after.filter((id) => before.includes(id))).toEqual([])
    }))

  it.scopedLive("list pages newest first by default, oldest first on request, all of them without a limit", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const written = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) =>
        deadLetter(redis, keys.dlqKey, { payload: `p${i}`, error: "e", sourceId: `${i}-0` }))
      const newest = yield* DeadLetters.list(redis, keys.dlqKey, { order: "newest", limit: 5, pageSize: 2 })
      expect(newest.entries.map((e) => e.id)).toEqual([...written].reverse().slice(0, 5))
      expect(newest.total).toBe(12)
      const all = yield* DeadLetters.list(redis, keys.dlqKey, { order: "oldest", pageSize: 5 })
      expect(all.entries.map((e) => e.id)).toEqual(written)
      const allNewest = yield* DeadLetters.list(redis, keys.dlqKey, { order: "newest", pageSize: 4 })
      expect(allNewest.entries.map((e) => e.id)).toEqual([...written].reverse())
      const empty = yield* DeadLetters.list(redis, `${keys.dlqKey}:absent`, { order: "newest" })
      expect(empty).toEqual({ entries: [], total: 0 })
    }))

  it.scopedLive("replay re-publishes every original field, binary ones included, and none of the bookkeeping", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const bytes = Buffer.from([0xff, 0x00, 0x80])
      const withExtras = yield* Effect.promise(() =>
        redis.xadd(keys.dlqKey, "*", "payload", "{\"a\":1}", "trace", "t-1", "raw", bytes, "error", "too large",
          "reason", "too_large", "source_id", "5-0", "consumer", "c", "failed_at", "2026-05-01T00:00:00.000Z"))
      // No payload field, but original fields: replayable.
      const noPayload = yield* Effect.promise(() =>
        redis.xadd(keys.dlqKey, "*", "data", "no payload here", "error", "no payload field", "reason", "invalid",
          "source_id", "6-0", "consumer", "c", "failed_at", "2026-05-01T00:00:00.000Z"))
      const result = yield* DeadLetters.replay(redis, keys, DeadLetters.Selection.Ids({ ids: [withExtras!, noPayload!] }))
      expect(result).toMatchObject({ replayed: 2, notFound: [], nothingToReplay: 0 })
      const replayed = yield* Effect.promise(() => redis.xrangeBuffer(keys.sourceKey, "-", "+"))
      expect(replayed.map(([, fields]) => fields.map((f, i) => (i % 2 === 0 ? f.toString() : f.toString("hex"))))).toEqual([
        ["payload", Buffer.from("{\"a\":1}").toString("hex"), "trace", Buffer.from("t-1").toString("hex"), "raw", "ff0080"],
        ["data", Buffer.from("no payload here").toString("hex")]
      ])
      expect(yield* Effect.promise(() => redis.xlen(keys.dlqKey))).toBe(0)
    }))

  it.scopedLive("an original field named like a bookkeeping one is the producer's: shown apart, re-published", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      // The worker's layout: the entry's own fields, then its trailing block of bookkeeping fields.
      const id = yield* Effect.promise(() =>
        redis.xadd(keys.dlqKey, "*", "payload", "garbage", "reason", "FAKE", "error", "FAKE-ERR", "source_id", "0-1",
          "error", "payload: not valid JSON", "reason", "invalid", "source_id", "7-0", "consumer", "c", "failed_at", "2026-05-01T00:00:00.000Z"))
      const [entry] = (yield* DeadLetters.list(redis, keys.dlqKey, { order: "oldest" })).entries
      expect(DeadLetters.fieldText(entry!, "reason")).toBe("invalid")
      expect(DeadLetters.fieldText(entry!, "source_id")).toBe("7-0")
      expect(DeadLetters.fieldText(entry!, "error")).toBe("payload: not valid JSON")
      expect(DeadLetters.originalFields(entry!).map(([name, value]) => [name, value.toString()])).toEqual([
        ["payload", "garbage"], ["reason", "FAKE"], ["error", "FAKE-ERR"], ["source_id", "0-1"]
      ])
      yield* DeadLetters.replay(redis, keys, DeadLetters.Selection.Ids({ ids: [id!] }))
      const replayed = yield* Effect.promise(() => redis.xrange(keys.sourceKey, "-", "+"))
      expect(replayed.map(([, fields]) => fields)).toEqual([["payload", "garbage", "reason", "FAKE", "error", "FAKE-ERR", "source_id", "0-1"]])
    }))

  it.scopedLive("purge --dry-run counts what purge would remove and removes nothing", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const now = Date.now()
      const old = Array.from({ length: 7 }, (_, i) => `${now - 7_200_000}-${i}`)
      for (const id of old) yield* deadLetter(redis, keys.dlqKey, { id, payload: "old", error: "e", sourceId: "1-0" })
      // A minute old: younger than the 1 h cutoff, older than "now" however fast the test runs.
      yield* deadLetter(redis, keys.dlqKey, { id: `${now - 60_000}-0`, payload: "new", error: "e", sourceId: "1-0" })
      const before = yield* ids(redis, keys.dlqKey)

      const dry = yield* DeadLetters.purgeOlderThan(redis, keys.dlqKey, 3_600_000, { dryRun: true, pageSize: 3 })
      expect(dry.removed).toBe(7)
      expect(yield* ids(redis, keys.dlqKey)).toEqual(before)
      const dryAll = yield* DeadLetters.purgeOlderThan(redis, keys.dlqKey, 0, { dryRun: true, pageSize: 2 })
      expect(dryAll.removed).toBe(8)
      expect(yield* ids(redis, keys.dlqKey)).toEqual(before)

      const real = yield* DeadLetters.purgeOlderThan(redis, keys.dlqKey, 3_600_000)
      expect(real.removed).toBe(dry.removed)
    }))

  it.scopedLive("purge removes only the entries older than the cutoff", () =>
    Effect.gen(function*() {
      const { redis, keys } = yield* setup
      const now = Date.now()
      const twoHours = `${now - 7_200_000}-0`
      const oneHour = [`${now - 3_600_000}-0`, `${now - 3_600_000}-1`]
      for (const id of [twoHours, ...oneHour]) {
        yield* deadLetter(redis, keys.dlqKey, { id, payload: "old", error: "e", sourceId: "1-0" })
      }
      const fresh = yield* Effect.forEach([1, 2], () =>
        deadLetter(redis, keys.dlqKey, { payload: "new", error: "e", sourceId: "1-0" }))

      const first = yield* DeadLetters.purgeOlderThan(redis, keys.dlqKey, 90 * 60_000)
      expect(first.removed).toBe(1)
      expect(yield* ids(redis, keys.dlqKey)).toEqual([...oneHour, ...fresh])

      const second = yield* DeadLetters.purgeOlderThan(redis, keys.dlqKey, 30 * 60_000)
      expect(second.removed).toBe(2)
      expect(yield* ids(redis, keys.dlqKey)).toEqual(fresh)

      const none = yield* DeadLetters.purgeOlderThan(redis, `${keys.dlqKey}:absent`, 0)
      expect(none.removed).toBe(0)
    }))
})

describe("parseDuration", () => {
  it("reads single units and combinations, largest first", () => {
    expect(DeadLetters.parseDuration("30s")).toEqual(Either.right(30_000))
    expect(DeadLetters.parseDuration("15m")).toEqual(Either.right(900_000))
    expect(DeadLetters.parseDuration("12h")).toEqual(Either.right(43_200_000))
    expect(DeadLetters.parseDuration("7d")).toEqual(Either.right(604_800_000))
    expect(DeadLetters.parseDuration("1h30m")).toEqual(Either.right(5_400_000))
    expect(DeadLetters.parseDuration("0s")).toEqual(Either.right(0))
  })

  it("rejects anything else", () => {
    for (const text of ["", "10", "1x", "-5m", "1.5h", "m", "30m1h", " 5m", "5m ", "1w", "99999999999999999999d"]) {
      expect(DeadLetters.parseDuration(text)).toEqual(Either.left(new DeadLetters.InvalidDuration({ text })))
    }
  })
})

describe("formatAge", () => {
  it("shows the two largest units", () => {
    expect(DeadLetters.formatAge(0)).toBe("0s")
    expect(DeadLetters.formatAge(999)).toBe("0s")
    expect(DeadLetters.formatAge(42_000)).toBe("42s")
    expect(DeadLetters.formatAge(192_000)).toBe("3m12s")
    expect(DeadLetters.formatAge(180_000)).toBe("3m")
    expect(DeadLetters.formatAge(7_200_000)).toBe("2h")
    expect(DeadLetters.formatAge(7_512_000)).toBe("2h5m")
    expect(DeadLetters.formatAge(4 * 86_400_000)).toBe("4d")
    expect(DeadLetters.formatAge(4 * 86_400_000 + 3 * 3_600_000 + 59_000)).toBe("4d3h")
  })

  it("shows a future time (clock skew) as 0s", () => {
    expect(DeadLetters.formatAge(-5_000)).toBe("0s")
  })
})
