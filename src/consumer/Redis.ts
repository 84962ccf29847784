import { Context, Data, Effect, Layer, Redacted, Runtime } from "effect"
import { Redis as IORedis } from "ioredis"
import * as Backoff from "../Backoff.js"
import { ProcessorConfig } from "../config/Config.js"

export class RedisError extends Data.TaggedError("RedisError")<{ readonly op: string; readonly cause: unknown }> {
  override get message() {
    return `Redis ${this.op} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** Wraps one ioredis call as an Effect that fails with a RedisError naming the operation. */
export const call = <A>(op: string, f: () => Promise<A>): Effect.Effect<A, RedisError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new RedisError({ op, cause }) })

// ioredis runs one command at a time per connection: a blocking XREADGROUP would hold every XACK behind it,
// so reads get a connection of their own.
export class Redis extends Context.Tag("processor/Redis")<Redis, {
  /** Commands: acks, dead letters, claims, group administration, health. */
  readonly client: IORedis
  /** Blocking reads only. */
  readonly reader: IORedis
}>() {
  static readonly make = (url: Redacted.Redacted) =>
    Effect.gen(function*() {
      const client = yield* connect(url, "commands")
      const reader = yield* connect(url, "reads")
      return { client, reader }
    })

  static readonly layer = (url: Redacted.Redacted) => Layer.scoped(Redis, Redis.make(url))

  static readonly layerConfig = Layer.scoped(
    Redis,
    Effect.flatMap(ProcessorConfig, (config) => Redis.make(config.redisUrl))
  )
}

const connect = (url: Redacted.Redacted, role: string) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const log = Runtime.runFork(runtime)
    const acquire = Effect.suspend(() => {
      const redis = new IORedis(Redacted.value(url), {
        lazyConnect: true,
        // Commands wait through a reconnect instead of failing after a few retries: the pipeline then
        // simply stalls (backpressure) and resumes when Redis is back.
        maxRetriesPerRequest: null,
        connectionName: `processor:${role}`,
        retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5_000) + Math.floor(Math.random() * 100)
      })
      let lost = false
      redis.on("error", () => {})
      redis.on("close", () => {
        if (!lost && redis.status !== "end" && !closing.has(redis)) {
          lost = true
          log(Effect.logWarning("Redis connection lost; reconnecting").pipe(Effect.annotateLogs({ role })))
        }
      })
      redis.on("ready", () => {
        if (lost) {
          lost = false
          log(Effect.logInfo("Redis connection restored").pipe(Effect.annotateLogs({ role })))
        }
      })
      return call("connect", () => redis.connect()).pipe(
        Effect.timeout("10 seconds"),
        Effect.as(redis),
        Effect.tapError(() => Effect.sync(() => redis.disconnect()))
      )
    })
    return yield* Effect.acquireRelease(
      acquire.pipe(
        Effect.tapError((error) => Effect.logWarning(`Redis not reachable yet: ${error.message}`)),
        Effect.retry(Backoff.atStart)
      ),
      (redis) =>
        Effect.sync(() => closing.add(redis)).pipe(
          Effect.zipRight(role === "reads" ? Effect.void : Effect.promise(() => redis.quit()).pipe(Effect.timeout("1 second"), Effect.ignore)),
          Effect.ensuring(Effect.sync(() => redis.disconnect()))
        )
    )
  })

const closing = new WeakSet<IORedis>()
