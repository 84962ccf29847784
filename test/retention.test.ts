import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { capDeadLetters, interval, trimStream } from "../src/retention/Retention.js"
import { testRedis } from "./support/Integration.js"

const FAR_FUTURE = Date.UTC(2100, 0, 1)

describe("stream retention", () => {
  it.scopedLive("trims only entries that every consumer group has read and acknowledged, and only before the cutoff", () =>
    Effect.gen(function*() {
      const { redis, stream } = yield* testRedis
      const ids = yield* Effect.promise(async () => {
        const ids: Array<string> = []
        for (let i = 0; i < 10; i++) ids.push((await redis.xadd(stream, `${1000 + i}-0`, "payload", `p${i}`))!)
        for (const g of ["a", "b", "c", "never"]) await redis.xgroup("CREATE", stream, g, "0")
        // a: read and acknowledged everything.
        await redis.xreadgroup("GROUP", "a", "w", "COUNT", 10, "STREAMS", stream, ">")
        await redis.xack(stream, "a", ...ids)
        // b: read six, acknowledged three: 1003..1005 pending, 1006..1009 not read.
        await redis.xreadgroup("GROUP", "b", "w", "COUNT", 6, "STREAMS", stream, ">")
        await redis.xack(stream, "b", ...ids.slice(0, 3))
        // c: read and acknowledged eight.
        await redis.xreadgroup("GROUP", "c", "w", "COUNT", 8, "STREAMS", stream, ">")
        await redis.xack(stream, "c", ...ids.slice(0, 8))
        return ids
      })
      const first = () => Effect.promise(() => redis.xrange(stream, "-", "+", "COUNT", 1)).pipe(Effect.map((r) => r[0]?.[0]))

      // The group "never" has read nothing: nothing may go.
      expect(yield* trimStream(redis, stream, FAR_FUTURE)).toBe(0)
      yield* Effect.promise(() => redis.xgroup("DESTROY", stream, "never"))

      // The cutoff holds: only entries older than 1001 ms.
      expect(yield* trimStream(redis, stream, 1001)).toBe(1)
      expect(yield* first()).toBe(ids[1])
      // Past the cutoff, b's oldest pending entry is the limit.
      expect(yield* trimStream(redis, stream, FAR_FUTURE)).toBe(2)
      expect(yield* first()).toBe(ids[3])

      // b acknowledges its pending entries and reads the rest: now c (read eight) is the limit, and of the
      // entries every group acknowledged the last one delivered stays.
      yield* Effect.promise(async () => {
        await redis.xack(stream, "b", ...ids.slice(3, 6))
        await redis.xreadgroup("GROUP", "b", "w", "COUNT", 10, "STREAMS", stream, ">")
        await redis.xack(stream, "b", ...ids.slice(6))
      })
      expect(yield* trimStream(redis, stream, FAR_FUTURE)).toBe(4)
      expect(yield* first()).toBe(ids[7])
      expect(yield* Effect.promise(() => redis.xlen(stream))).toBe(3)
    }))

  it.scopedLive("leaves a stream without consumer groups, or a missing stream, alone", () =>
    Effect.gen(function*() {
      const { redis, stream } = yield* testRedis
      expect(yield* trimStream(redis, stream, FAR_FUTURE)).toBe(0)
      yield* Effect.promise(() => redis.xadd(stream, "*", "payload", "x"))
      expect(yield* trimStream(redis, stream, FAR_FUTURE)).toBe(0)
      expect(yield* Effect.promise(() => redis.xlen(stream))).toBe(1)
    }))

  it.scopedLive("caps the dead-letter stream near DLQ_MAXLEN, oldest first", () =>
    Effect.gen(function*() {
      const { dlq, redis } = yield* testRedis
      yield* Effect.promise(async () => {
        const batch = redis.pipeline()
        for (let i = 0; i < 1000; i++) batch.xadd(dlq, "*", "payload", `p${i}`, "error", "e")
        await batch.exec()
      })
      yield* capDeadLetters(redis, dlq, 10)
      const length = yield* Effect.promise(() => redis.xlen(dlq))
      expect(length).toBeGreaterThanOrEqual(10)
      expect(length).toBeLessThan(1000)
      const newest = yield* Effect.promise(() => redis.xrevrange(dlq, "+", "-", "COUNT", 1))
      expect(newest[0]![1]).toEqual(["payload", "p999", "error", "e"])
    }))

  it("runs every tenth of the retention, between 10 s and 5 min", () => {
    expect(Duration.toMillis(interval(Option.some(Duration.hours(1))))).toBe(300_000)
    expect(Duration.toMillis(interval(Option.some(Duration.minutes(5))))).toBe(30_000)
    expect(Duration.toMillis(interval(Option.some(Duration.seconds(30))))).toBe(10_000)
  })
})
