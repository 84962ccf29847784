import { Reason } from "../src/deadletter/Reason.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { Consumer } from "../src/consumer/Consumer.js"
import { Redis } from "../src/consumer/Redis.js"
import * as RedisConsumer from "../src/consumer/RedisConsumer.js"
import { REDIS_URL, testRedis, waitUntil } from "./support/Integration.js"
import { configLayer } from "./support/testConfig.js"

// The MAX_DELIVERIES screen against the real Redis, where the pending list has a shape the fault scenarios
// produce only by chance: entries reclaimed from a dead consumer interleaved with the claimer's own.

describe("faults: delivery screening", () => {
  it.scopedLive("entries reclaimed over MAX_DELIVERIES are dead-lettered even when the claimer's own entries sit between them", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group } = yield* testRedis
      const dead: Array<string> = []
      yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        // Alternate deliveries: dead, me, dead, me… so the two pending lists interleave.
        for (let i = 0; i < 10; i++) {
          const id = (await redis.xadd(stream, "*", "payload", `p${i}`))!
          await redis.xreadgroup("GROUP", group, i % 2 === 0 ? "dead" : "me", "COUNT", 1, "STREAMS", stream, ">")
          if (i % 2 === 0) dead.push(id)
        }
        // The dead consumer's entries: long idle and delivered ten times already.
        await redis.xclaim(stream, group, "dead", 0, ...dead, "IDLE", 60_000, "RETRYCOUNT", 10)
      })
      const env = {
        REDIS_STREAM: stream, REDIS_DLQ_STREAM: dlq, REDIS_GROUP: group, REDIS_CONSUMER: "me",
        MAX_DELIVERIES: 3, CLAIM_IDLE_MS: 10_000, CLAIM_INTERVAL_MS: 1, READ_BLOCK_MS: 100
      }
      const layer = RedisConsumer.layer.pipe(Layer.provide(Redis.layer(Redacted.make(REDIS_URL))), Layer.provide(configLayer(env)))
      const handedOut: Array<string> = []
      const fiber = yield* Effect.flatMap(Consumer, (consumer) =>
        consumer.entries.pipe(Stream.runForEach((e) => Effect.sync(() => handedOut.push(e.payload!))))).pipe(
          Effect.provide(layer),
          Effect.forkScoped
        )
      yield* waitUntil("5 dead letters", Effect.promise(() => redis.xlen(dlq)).pipe(Effect.map((n) => n >= 5)), 10_000)
      yield* Fiber.interrupt(fiber)

      const letters = yield* Effect.promise(() => redis.xrange(dlq, "-", "+"))
      const fields = letters.map(([, f]) => new Map(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])))
      expect(fields.map((f) => f.get("source_id"))).toEqual(dead)
      for (const f of fields) expect(f.get("error")).toMatch(/^failed 10 times without being written \(MAX_DELIVERIES=3\)/)
      // Only the consumer's own entries (replayed at start) were handed out, never a poisoned one.
      expect([...new Set(handedOut)].sort()).toEqual(["p1", "p3", "p5", "p7", "p9"])
      expect(Number(((yield* Effect.promise(() => redis.xpending(stream, group))) as [number])[0])).toBe(5)
    }))
})

describe("dead-letter copy", () => {
  it.scopedLive("takes a letter's payload from its stream entry when the caller has none, and says when the entry is gone", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group } = yield* testRedis
      const [kept, trimmed, given] = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        const ids = [
          (await redis.xadd(stream, "*", "payload", "{\"kept\":1}"))!,
          (await redis.xadd(stream, "*", "payload", "{\"trimmed\":1}"))!,
          (await redis.xadd(stream, "*", "payload", "{\"given\":1}"))!
        ]
        await redis.xreadgroup("GROUP", group, "me", "COUNT", 3, "STREAMS", stream, ">")
        await redis.xdel(stream, ids[1]!)
        return ids
      })
      const env = { REDIS_STREAM: stream, REDIS_DLQ_STREAM: dlq, REDIS_GROUP: group, REDIS_CONSUMER: "me" }
      const layer = RedisConsumer.layer.pipe(Layer.provide(Redis.layer(Redacted.make(REDIS_URL))), Layer.provide(configLayer(env)))
      yield* Effect.flatMap(Consumer, (consumer) =>
        consumer.deadLetter([
          { id: kept!, reason: Reason.Rejected({ message: "refused" }) },
          { id: trimmed!, reason: Reason.Rejected({ message: "refused" }) },
          { id: given!, reason: Reason.Invalid({ message: "latitude: bad" }) }
        ])).pipe(Effect.provide(layer))

      const letters = yield* Effect.promise(async () => {
        const entries = (await redis.xrange(dlq, "-", "+")) as Array<[string, Array<string>]>
        return entries.map(([, fields]) => {
          const f = new Map<string, string>()
          for (let i = 0; i < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!)
          return { source: f.get("source_id"), payload: f.get("payload"), error: f.get("error"), reason: f.get("reason") }
        })
      })
      expect(letters).toEqual([
        { source: kept, payload: "{\"kept\":1}", error: "rejected by the database: refused", reason: "rejected" },
        {
          source: trimmed,
          payload: "",
          error: "rejected by the database: refused (the entry was trimmed from the stream: payload lost)",
          reason: "rejected"
        },
        { source: given, payload: "{\"given\":1}", error: "latitude: bad", reason: "invalid" }
      ])
      // Acknowledged with the copy: nothing pending.
      const pending = (yield* Effect.promise(() => redis.xpending(stream, group))) as [number, ...Array<unknown>]
      expect(pending[0]).toBe(0)
    }))
})
