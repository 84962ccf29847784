import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger, Metric, Option, Stream } from "effect"
import { Consumer } from "../src/consumer/Consumer.js"
import { Redis } from "../src/consumer/Redis.js"
import * as RedisConsumer from "../src/consumer/RedisConsumer.js"
import * as Metrics from "../src/observability/Metrics.js"
import { pendingCount, REDIS_URL, testRedis, waitUntil } from "./support/Integration.js"
import { type CutMode, tcpProxy } from "./support/TcpProxy.js"
import { configLayer } from "./support/testConfig.js"

// A proxy between the consumer and Redis drops every connection without telling the client. The blocking
// read and the commands connection must each notice within their deadline, reconnect and carry on.

const cutAndResume = (mode: CutMode) =>
  Effect.gen(function*() {
    const { redis, stream, dlq, group } = yield* testRedis
    const target = new URL(REDIS_URL)
    const proxy = yield* tcpProxy({ host: target.hostname, port: Number(target.port || 6379) })
    const env = {
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      REDIS_STREAM: stream,
      REDIS_DLQ_STREAM: dlq,
      REDIS_GROUP: group,
      REDIS_CONSUMER: "me",
      READ_BLOCK_MS: 200,
      CLAIM_INTERVAL_MS: 600_000
    }
    const logs: Array<string> = []
    const logger = Logger.make(({ annotations, message }) => {
      const role = HashMap.get(annotations, "role").pipe(Option.map((r) => `[${String(r)}] `), Option.getOrElse(() => ""))
      logs.push(role + (Array.isArray(message) ? message : [message]).map(String).join(" "))
    })
    const layer = RedisConsumer.layer.pipe(Layer.provideMerge(Redis.layerConfig), Layer.provide(configLayer(env)))
    const acked: Array<string> = []
    yield* Effect.flatMap(Consumer, (consumer) =>
      consumer.entries.pipe(
        Stream.runForEach((e) => Effect.zipRight(consumer.ack([e.id]), Effect.sync(() => acked.push(e.id))))
      )).pipe(
        Effect.provide(layer),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Effect.forkScoped
      )

    const before = yield* Effect.promise(() => redis.xadd(stream, "*", "payload", "before"))
    yield* waitUntil("the first entry to be acknowledged", Effect.sync(() => acked.includes(before!)), 10_000)
    const redisRetries = Metric.value(Metric.tagged(Metrics.retries, "cause", "redis")).pipe(Effect.map((s) => s.count))
    const retriesBefore = yield* redisRetries
    proxy.cut(mode)
    const cutAt = Date.now()
    const after = yield* Effect.promise(() => redis.xadd(stream, "*", "payload", "after"))
    yield* waitUntil("the entry added after the cut to be acknowledged", Effect.sync(() => acked.includes(after!)), 20_000).pipe(
      Effect.tapDefect(() => Effect.sync(() => console.log(logs.join("\n"))))
    )
    const resumedAfter = Date.now() - cutAt
    expect(yield* pendingCount(redis, stream, group)).toBe(0)
    // The read deadline is READ_BLOCK_MS plus a margin of seconds, the command deadline a few seconds.
    expect(resumedAfter).toBeLessThan(15_000)
    // Both connections were re-made through the proxy.
    expect(proxy.accepted()).toBeGreaterThanOrEqual(3)
    // The calls that missed their deadline were retried, and counted.
    expect(yield* redisRetries).toBeGreaterThan(retriesBefore)
    // Logged once per connection, not once per failed call.
    const lost = logs.filter((l) => l.includes("Redis connection lost"))
    expect(lost.length).toBeGreaterThanOrEqual(1)
    expect(lost.length).toBeLessThanOrEqual(2)
    yield* Effect.promise(() => redis.del(`${stream}:failures:${group}`))
  })

describe("Redis deadlines", () => {
  it.scopedLive("a connection whose peer is gone (reset on the next send) is re-made and the consumer resumes", () =>
    cutAndResume("reset"), 40_000)

  it.scopedLive("a connection that no longer answers at all (black hole) is re-made and the consumer resumes", () =>
    cutAndResume("blackhole"), 40_000)
})
