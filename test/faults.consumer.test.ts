import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Logger, Metric, Stream } from "effect"
import type { Redis as IORedis } from "ioredis"
import { Consumer, type StreamEntry } from "../src/consumer/Consumer.js"
import { Redis } from "../src/consumer/Redis.js"
import * as RedisConsumer from "../src/consumer/RedisConsumer.js"
import { Reason } from "../src/deadletter/Reason.js"
import * as Metrics from "../src/observability/Metrics.js"
import { pendingCount, REDIS_URL, testRedis, waitUntil } from "./support/Integration.js"
import { configLayer } from "./support/testConfig.js"

// The consumer against the real Redis, in the pending-list shapes that faults produce: restarts during an
// incident, slow writes, takeovers, entries deleted while pending, a lost group.

const consumerLayer = (env: Record<string, string | number>) =>
  RedisConsumer.layer.pipe(
    Layer.provideMerge(Redis.layerConfig),
    Layer.provide(configLayer({ REDIS_URL, ...env }))
  )

/** The Redis keys of a test, with the failures hash removed at the end. */
const keys = Effect.gen(function*() {
  const t = yield* testRedis
  const failures = `${t.stream}:failures:${t.group}`
  yield* Effect.addFinalizer(() => Effect.promise(() => t.redis.del(failures)))
  const env = { REDIS_STREAM: t.stream, REDIS_DLQ_STREAM: t.dlq, REDIS_GROUP: t.group, REDIS_CONSUMER: "me", READ_BLOCK_MS: 100 }
  return { ...t, failures, env }
})

const fieldsOf = (fields: ReadonlyArray<string>) => {
  const map = new Map<string, string>()
  for (let i = 0; i < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!)
  return map
}

const deadLetters = (redis: IORedis, dlq: string) =>
  Effect.promise(async () => (await redis.xrange(dlq, "-", "+")).map(([, fields]) => fieldsOf(fields)))

/** A logger that collects "LEVEL message" lines. */
const collectLogs = (logs: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      logs.push(`${logLevel.label} ${(Array.isArray(message) ? message : [message]).map(String).join(" ")}`)
    })
  )

/** Runs a consumer with `env`, handing each entry to `take`, in the test's scope. */
const runConsumer = (
  env: Record<string, string | number>,
  take: (entry: StreamEntry, consumer: Consumer["Type"]) => Effect.Effect<void, unknown>,
  logs: Array<string> = []
) =>
  Effect.flatMap(Consumer, (consumer) => consumer.entries.pipe(Stream.runForEach((e) => take(e, consumer)))).pipe(
    Effect.provide(consumerLayer(env)),
    Effect.provide(collectLogs(logs)),
    Effect.forkScoped
  )

const deadLetterCount = (reason: string) =>
  Metric.value(Metric.tagged(Metrics.deadLetters, "reason", reason)).pipe(Effect.map((s) => s.count))

describe("faults: what counts toward MAX_DELIVERIES", () => {
  it.scopedLive("restarts during an incident never poison an entry: six restarts replaying their own pending entries dead-letter nothing", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, env } = yield* keys
      const id = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        return (await redis.xadd(stream, "*", "payload", "{\"valid\":1}"))!
      })
      const config = { ...env, MAX_DELIVERIES: 5 }
      // Each run reads the entry (from its own pending list after the first) and stops before writing it,
      // as a worker restarted during a database incident does.
      for (let run = 0; run < 7; run++) {
        const seen: Array<string> = []
        const fiber = yield* runConsumer(config, (e) => Effect.sync(() => seen.push(e.id)))
        yield* waitUntil(`run ${run} to be handed the entry`, Effect.sync(() => seen.includes(id)), 10_000)
        yield* Fiber.interrupt(fiber)
      }
      const deliveries = ((yield* Effect.promise(() => redis.xpending(stream, group, "-", "+", 10))) as Array<[string, string, number, number]>)[0]![3]
      expect(deliveries).toBeGreaterThanOrEqual(7)
      expect(yield* Effect.promise(() => redis.xlen(dlq))).toBe(0)
    }))

  it.scopedLive("only recorded write failures count: the entry is dead-lettered at the MAX_DELIVERIES-th, with the last error, and its count goes", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, failures, env } = yield* keys
      const id = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        return (await redis.xadd(stream, "*", "payload", "{\"valid\":1}", "source", "gateway-7"))!
      })
      const config = { ...env, MAX_DELIVERIES: 3, CLAIM_IDLE_MS: 50, CLAIM_INTERVAL_MS: 50 }
      const handed: Array<string> = []
      let attempt = 0
      // Every hand-out fails to be written; the claim brings the entry back each time.
      yield* runConsumer(config, (e, consumer) =>
        Effect.zipRight(
          Effect.sync(() => handed.push(e.id)),
          consumer.recordFailures([{ id: e.id, error: `trigger raised (attempt ${++attempt})` }])
        ))
      yield* waitUntil("a dead letter", Effect.map(Effect.promise(() => redis.xlen(dlq)), (n) => n > 0), 10_000)
      const [letter] = yield* deadLetters(redis, dlq)
      expect(handed).toEqual([id, id, id])
      expect(letter!.get("reason")).toBe("max_deliveries")
      expect(letter!.get("error")).toBe("failed 3 times without being written (MAX_DELIVERIES=3); last error: trigger raised (attempt 3)")
      expect(letter!.get("payload")).toBe("{\"valid\":1}")
      expect(letter!.get("source")).toBe("gateway-7")
      expect(yield* pendingCount(redis, stream, group)).toBe(0)
      expect(yield* Effect.promise(() => redis.hlen(failures))).toBe(0)
    }))

  it.scopedLive("an entry written after some failures is acknowledged with its count removed", () =>
    Effect.gen(function*() {
      const { redis, stream, group, failures, env } = yield* keys
      const id = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        return (await redis.xadd(stream, "*", "payload", "{\"valid\":1}"))!
      })
      const handed: Array<string> = []
      // Fails twice, then is written.
      yield* runConsumer({ ...env, MAX_DELIVERIES: 5, CLAIM_IDLE_MS: 50, CLAIM_INTERVAL_MS: 50 }, (e, consumer) =>
        Effect.suspend(() =>
          handed.push(e.id) <= 2 ? consumer.recordFailures([{ id: e.id, error: "trigger raised" }]) : consumer.ack([e.id])
        ))
      yield* waitUntil("the entry to be acknowledged", Effect.map(pendingCount(redis, stream, group), (n) => n === 0 && handed.length === 3), 10_000)
      expect(handed).toEqual([id, id, id])
      expect(yield* Effect.promise(() => redis.exists(failures))).toBe(0)
    }))

  it.scopedLive("a claim never hands out an entry this instance still has in flight, however long its write takes", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, env } = yield* keys
      const id = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        return (await redis.xadd(stream, "*", "payload", "{\"slow\":1}"))!
      })
      const config = { ...env, MAX_DELIVERIES: 2, CLAIM_IDLE_MS: 50, CLAIM_INTERVAL_MS: 20 }
      const handed: Array<string> = []
      // A write that takes far longer than CLAIM_IDLE_MS: the entry is held, not acknowledged.
      const consumerRef: Array<Consumer["Type"]> = []
      yield* runConsumer(config, (e, consumer) => Effect.sync(() => (handed.push(e.id), consumerRef.push(consumer))))
      const deliveries = Effect.promise(async () =>
        ((await redis.xpending(stream, group, "-", "+", 10)) as Array<[string, string, number, number]>)[0]?.[3] ?? 0
      )
      // XAUTOCLAIM keeps taking the idle entry (its delivery count grows); the consumer keeps it to itself.
      yield* waitUntil("several claims of the in-flight entry", Effect.map(deliveries, (n) => n >= 5), 10_000)
      expect(handed).toEqual([id])
      expect(yield* Effect.promise(() => redis.xlen(dlq))).toBe(0)
      yield* consumerRef[0]!.ack([id])
      expect(yield* pendingCount(redis, stream, group)).toBe(0)
    }))

  it.scopedLive("another instance never claims an entry this one still has in flight: its idle time is kept short", () =>
    Effect.gen(function*() {
      const { redis, stream, group, env } = yield* keys
      const id = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        return (await redis.xadd(stream, "*", "payload", "{\"slow\":1}"))!
      })
      const timing = { CLAIM_IDLE_MS: 1_500, CLAIM_INTERVAL_MS: 50 }
      // "me" takes the entry and holds it, as a write waiting on a lock would.
      const mine: Array<string> = []
      yield* runConsumer({ ...env, ...timing }, (e) => Effect.sync(() => mine.push(e.id)))
      yield* waitUntil("the entry in flight at me", Effect.sync(() => mine.length === 1), 10_000)
      // "other" claims every 50 ms whatever has been idle for 1.5 s.
      const theirs: Array<string> = []
      yield* runConsumer({ ...env, ...timing, REDIS_CONSUMER: "other" }, (e) => Effect.sync(() => theirs.push(e.id)))
      // Watch the entry for well over CLAIM_IDLE_MS: always with me, never idle that long.
      const started = Date.now()
      const samples: Array<{ owner: string; idle: number }> = []
      const pending = Effect.promise(async () => {
        const [row] = (await redis.xpending(stream, group, "-", "+", 1)) as Array<[string, string, number, number]>
        samples.push({ owner: row![1], idle: row![2] })
        return Date.now() - started > 4_000
      })
      yield* waitUntil("four seconds of samples", pending, 10_000)
      expect(samples.every((x) => x.owner === "me" && x.idle < 1_500)).toBe(true)
      expect(theirs).toEqual([])
      expect(mine).toEqual([id])
    }))

  it.scopedLive("claimed entries are screened by their failure counts, not deliveries, also when the claimer's own entries sit between them", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, failures, env } = yield* keys
      const dead: Array<string> = []
      yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        // Alternate deliveries: dead, me, dead, me… so the two pending lists interleave.
        for (let i = 0; i < 10; i++) {
          const id = (await redis.xadd(stream, "*", "payload", `p${i}`))!
          await redis.xreadgroup("GROUP", group, i % 2 === 0 ? "dead" : "me", "COUNT", 1, "STREAMS", stream, ">")
          if (i % 2 === 0) dead.push(id)
        }
        // The dead consumer's entries: long idle and delivered ten times, by restarts and takeovers.
        await redis.xclaim(stream, group, "dead", 0, ...dead, "IDLE", 60_000, "RETRYCOUNT", 10)
        // Three of them failed to be written three times.
        for (const id of dead.slice(0, 3)) await redis.hset(failures, id, 3, `${id}:error`, "trigger raised")
      })
      const config = { ...env, MAX_DELIVERIES: 3, CLAIM_IDLE_MS: 10_000, CLAIM_INTERVAL_MS: 1 }
      const handedOut: Array<string> = []
      yield* runConsumer(config, (e) => Effect.sync(() => handedOut.push(e.payload!)))
      yield* waitUntil("3 dead letters", Effect.promise(() => redis.xlen(dlq)).pipe(Effect.map((n) => n >= 3)), 10_000)
      yield* waitUntil("the other entries handed out", Effect.sync(() => handedOut.length >= 7), 10_000)

      const letters = yield* deadLetters(redis, dlq)
      expect(letters.map((f) => f.get("source_id"))).toEqual(dead.slice(0, 3))
      for (const f of letters) {
        expect(f.get("error")).toBe("failed 3 times without being written (MAX_DELIVERIES=3); last error: trigger raised")
      }
      expect([...new Set(handedOut)].sort()).toEqual(["p1", "p3", "p5", "p6", "p7", "p8", "p9"])
    }))
})

describe("faults: entries deleted while pending", () => {
  it.scopedLive("an entry deleted from the stream while another consumer held it is dead-lettered as trimmed when claimed (XAUTOCLAIM's third element)", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, env } = yield* keys
      const [kept, gone] = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        const ids = [(await redis.xadd(stream, "*", "payload", "kept"))!, (await redis.xadd(stream, "*", "payload", "gone"))!]
        await redis.xreadgroup("GROUP", group, "dead", "COUNT", 2, "STREAMS", stream, ">")
        // Idle first: XCLAIM, like XAUTOCLAIM, drops a deleted entry from the pending list.
        await redis.xclaim(stream, group, "dead", 0, ...ids, "IDLE", 60_000)
        await redis.xdel(stream, ids[1]!)
        return ids
      })
      const before = yield* deadLetterCount("trimmed")
      const logs: Array<string> = []
      const handed: Array<string> = []
      yield* runConsumer({ ...env, CLAIM_IDLE_MS: 10_000, CLAIM_INTERVAL_MS: 1 }, (e) => Effect.sync(() => handed.push(e.id)), logs)
      yield* waitUntil("a dead letter", Effect.map(Effect.promise(() => redis.xlen(dlq)), (n) => n > 0), 10_000)
      yield* waitUntil("the other entry handed out", Effect.sync(() => handed.includes(kept!)), 10_000)

      const letters = yield* deadLetters(redis, dlq)
      expect(letters.length).toBe(1)
      expect(letters[0]!.get("source_id")).toBe(gone)
      expect(letters[0]!.get("reason")).toBe("trimmed")
      expect(letters[0]!.get("payload")).toBe("")
      expect(yield* deadLetterCount("trimmed")).toBe(before + 1)
      expect(logs.filter((l) => l.includes("deleted or trimmed from the stream")).length).toBe(1)
      expect(handed).toEqual([kept])
    }))

  it.scopedLive("an entry deleted from the stream while this consumer held it is dead-lettered as trimmed at the replay, not as invalid", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, env } = yield* keys
      const gone = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        const id = (await redis.xadd(stream, "*", "payload", "gone"))!
        await redis.xreadgroup("GROUP", group, "me", "COUNT", 1, "STREAMS", stream, ">")
        await redis.xdel(stream, id)
        return id
      })
      const handed: Array<string> = []
      yield* runConsumer(env, (e) => Effect.sync(() => handed.push(e.id)))
      yield* waitUntil("a dead letter", Effect.map(Effect.promise(() => redis.xlen(dlq)), (n) => n > 0), 10_000)
      const letters = yield* deadLetters(redis, dlq)
      expect(letters.map((f) => [f.get("source_id"), f.get("reason")])).toEqual([[gone, "trimmed"]])
      expect(handed).toEqual([])
      expect(yield* pendingCount(redis, stream, group)).toBe(0)
    }))
})

describe("dead-letter copy", () => {
  it.scopedLive("keeps every field of the source entry, an entry without a payload field included, and says when the entry is gone", () =>
    Effect.gen(function*() {
      const { redis, stream, dlq, group, env } = yield* keys
      const [kept, trimmed, bare] = yield* Effect.promise(async () => {
        await redis.xgroup("CREATE", stream, group, "0", "MKSTREAM")
        const ids = [
          (await redis.xadd(stream, "*", "payload", "{\"kept\":1}", "trace", "abc"))!,
          (await redis.xadd(stream, "*", "payload", "{\"trimmed\":1}"))!,
          (await redis.xadd(stream, "*", "data", "no payload here", "source", "gateway-7"))!
        ]
        await redis.xreadgroup("GROUP", group, "me", "COUNT", 3, "STREAMS", stream, ">")
        await redis.xdel(stream, ids[1]!)
        return ids
      })
      yield* Effect.flatMap(Consumer, (consumer) =>
        consumer.deadLetter([
          { id: kept!, reason: Reason.Rejected({ message: "refused" }) },
          { id: trimmed!, reason: Reason.Rejected({ message: "refused" }) },
          { id: bare!, reason: Reason.Invalid({ message: "no payload field" }) }
        ])).pipe(Effect.provide(consumerLayer(env)))

      const letters = (yield* Effect.promise(() => redis.xrange(dlq, "-", "+"))).map(([, fields]) => {
        // Everything but the time-dependent field, in stream order.
        const out: Array<string> = []
        for (let i = 0; i < fields.length; i += 2) if (fields[i] !== "failed_at") out.push(fields[i]!, fields[i + 1]!)
        return out
      })
      expect(letters).toEqual([
        ["payload", "{\"kept\":1}", "trace", "abc", "error", "rejected by the database: refused", "reason", "rejected", "source_id", kept, "consumer", "me"],
        [
          "payload", "",
          "error", "rejected by the database: refused (the entry was trimmed from the stream: payload lost)",
          "reason", "rejected", "source_id", trimmed, "consumer", "me"
        ],
        ["data", "no payload here", "source", "gateway-7", "error", "no payload field", "reason", "invalid", "source_id", bare, "consumer", "me"]
      ])
      expect(yield* pendingCount(redis, stream, group)).toBe(0)
    }))
})

describe("faults: a lost stream or group", () => {
  it.scopedLive("is recreated, with one warning saying where reading starts, and the consumer carries on", () =>
    Effect.gen(function*() {
      const { redis, stream, env } = yield* keys
      const logs: Array<string> = []
      const handed: Array<string> = []
      yield* runConsumer(env, (e, consumer) => Effect.zipRight(Effect.sync(() => handed.push(e.payload!)), consumer.ack([e.id])), logs)
      yield* Effect.promise(() => redis.xadd(stream, "*", "payload", "before"))
      yield* waitUntil("the first entry", Effect.sync(() => handed.includes("before")), 10_000)
      // What a FLUSHALL or a restart without persistence does to this stream.
      yield* Effect.promise(() => redis.del(stream))
      yield* waitUntil("the group to be recreated", Effect.sync(() => logs.some((l) => l.includes("recreated"))), 10_000)
      yield* Effect.promise(() => redis.xadd(stream, "*", "payload", "after"))
      yield* waitUntil("the entry added afterwards", Effect.sync(() => handed.includes("after")), 10_000)

      const warnings = logs.filter((l) => l.includes("recreated"))
      expect(warnings.length).toBe(1)
      expect(warnings[0]).toMatch(/^WARN consumer group processor of stream .* was gone .* reading from the start of the stream/)
    }))
})
