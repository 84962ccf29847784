import { Context, Data, Duration, Effect, Either, Layer, Option, Redacted, Runtime } from "effect"
import { Redis as IORedis } from "ioredis"
import { parseRedisUrl, ProcessorConfig } from "../config/Config.js"
import { ExitCode, StartFailed } from "../ExitCode.js"
import { Health } from "../observability/Health.js"

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

// Refusals at start that waiting does not cure: a wrong password or user (WRONGPASS), a password the server
// wants and was not given (NOAUTH), an ACL user without the right to connect (NOPERM).
const REFUSED = new Set(["WRONGPASS", "NOAUTH", "NOPERM"])

/** A socket error's code (ECONNREFUSED…), or the first word of the server's reply (WRONGPASS, LOADING…). */
const errorCode = (error: Error): string => {
  const code = (error as { code?: unknown }).code
  if (typeof code === "string") return code
  const word = /^[A-Z][A-Z_]+\b/.exec(error.message)
  return word === null ? "error" : word[0]
}

/** How long start-up waits for Redis (as Backoff.atStart does for PostgreSQL). */
const START_DEADLINE = Duration.minutes(1)

const connect = (url: Redacted.Redacted, role: string) =>
  Effect.gen(function*() {
    // Explicit options, never the URL string: ioredis would hand a string to Node's legacy url.parse,
    // which warns with the whole URL, password included. The settings validated it already.
    const options = yield* Either.match(parseRedisUrl(Redacted.value(url)), {
      onLeft: (message) => Effect.dieMessage(`REDIS_URL: ${message}`),
      onRight: Effect.succeed
    })
    const runtime = yield* Effect.runtime<never>()
    const log = Runtime.runFork(runtime)
    const health = yield* Effect.serviceOption(Health)
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new IORedis({
          host: options.host,
          port: options.port,
          ...(options.username === undefined ? {} : { username: options.username }),
          ...(options.password === undefined ? {} : { password: Redacted.value(options.password) }),
          db: options.db,
          ...(options.tls ? { tls: {} } : {}),
          lazyConnect: true,
          // Commands wait through a reconnect instead of failing after a few retries: the pipeline then
          // simply stalls (backpressure) and resumes when Redis is back.
          maxRetriesPerRequest: null,
          connectionName: `processor:${role}`,
          retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5_000) + Math.floor(Math.random() * 100)
        })
      ),
      (redis) =>
        Effect.sync(() => closing.add(redis)).pipe(
          // A connection that is not up would queue QUIT until it is: only a ready one is asked to quit.
          // Interruptible, so that the timeout really bounds it (releases run uninterruptibly).
          Effect.zipRight(role === "reads" || redis.status !== "ready"
            ? Effect.void
            : Effect.interruptible(Effect.promise(() => redis.quit())).pipe(Effect.timeout("1 second"), Effect.ignore)),
          Effect.ensuring(Effect.sync(() => redis.disconnect()))
        )
    )
    let up = false
    let lost = false
    redis.on("close", () => {
      if (up && !lost && redis.status !== "end" && !closing.has(redis)) {
        lost = true
        log(Effect.logWarning("Redis connection lost; reconnecting").pipe(Effect.annotateLogs({ role })))
      }
    })
    redis.on("ready", () => {
      up = true
      if (lost) {
        lost = false
        log(Effect.logInfo("Redis connection restored").pipe(Effect.annotateLogs({ role })))
      }
    })

    // ioredis keeps reconnecting by itself (retryStrategy) after a failed first attempt; each failure is an
    // "error" event. One line per change of what it fails on; a refusal of the credentials ends the wait.
    let waitingOn: string | undefined
    let onError: (error: Error) => void = () => {}
    redis.on("error", (error: Error) => onError(error))
    yield* Effect.async<void, StartFailed>((resume) => {
      onError = (error) => {
        const code = errorCode(error)
        if (REFUSED.has(code)) {
          resume(Effect.fail(new StartFailed({ message: `Redis at ${options.address} refused the credentials: ${error.message}`, exitCode: ExitCode.noPermission })))
          return
        }
        if (code === waitingOn) return
        waitingOn = code
        log(Effect.logWarning(`waiting for Redis at ${options.address}: ${code}: ${error.message}`).pipe(
          Effect.zipRight(Option.isSome(health) ? health.value.note("redis", `waiting: ${code}`) : Effect.void),
          Effect.annotateLogs({ role })
        ))
      }
      redis.once("ready", () => resume(Effect.void))
      // Its rejection ("Connection is closed.") says less than the error event before it.
      redis.connect().catch(() => {})
    }).pipe(
      Effect.timeoutFail({
        duration: START_DEADLINE,
        onTimeout: () => new StartFailed({ message: `Redis at ${options.address} not reachable at start within ${Duration.format(START_DEADLINE)}: ${waitingOn ?? "no answer"}`, exitCode: ExitCode.failure })
      }),
      Effect.ensuring(Effect.sync(() => (onError = () => {})))
    )
    if (Option.isSome(health)) yield* health.value.note("redis", "ok")
    if (waitingOn !== undefined) yield* Effect.logInfo(`Redis connected at ${options.address}`).pipe(Effect.annotateLogs({ role }))
    return redis
  })

const closing = new WeakSet<IORedis>()
