import { Context, Data, Duration, Effect, Either, Layer, Option, Redacted, Runtime } from "effect"
import { Redis as IORedis } from "ioredis"
import { parseRedisUrl, ProcessorConfig } from "../config/Config.js"
import { messageOf } from "../ErrorMessage.js"
import { ExitCode, StartFailed } from "../ExitCode.js"
import { Health } from "../observability/Health.js"

export class RedisError extends Data.TaggedError("RedisError")<{ readonly op: string; readonly cause: unknown }> {
  override get message() {
    return `Redis ${this.op} failed: ${messageOf(this.cause)}`
  }
}

/** Wraps one ioredis call as an Effect that fails with a RedisError naming the operation. */
export const call = <A>(op: string, f: () => Promise<A>): Effect.Effect<A, RedisError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new RedisError({ op, cause }) })

/**
 * Like `call`, on a connection with a deadline (ioredis `commandTimeout`): when the call misses it, the socket
 * it was sent on is destroyed, so ioredis re-makes the connection. ioredis reconnects by itself only when the
 * socket errors; a peer that vanished without a reset would otherwise leave the connection silent until TCP
 * keepalive gives up, and every later call would time out on it too.
 */
export const callOn = <A>(redis: IORedis, op: string, f: () => Promise<A>): Effect.Effect<A, RedisError> =>
  Effect.suspend(() => {
    const socket = redis.stream as IORedis["stream"] | undefined
    return Effect.tapError(call(op, f), (error) =>
      Effect.sync(() => {
        if (messageOf(error.cause) !== TIMED_OUT) return
        // Only the socket the call went out on, and only while it is still the current one.
        if (socket !== undefined && redis.stream === socket && !socket.destroyed) {
          socket.destroy(new Error(`no reply within ${redis.options.commandTimeout} ms`))
        }
      }))
  })

const CONNECTION_LOST = "connection lost before the reply"

// ioredis' message for a command past commandTimeout (it has no error class of its own).
const TIMED_OUT = "Command timed out"

// ioredis runs one command at a time per connection: a blocking XREADGROUP would hold every XACK behind it,
// so reads get a connection of their own.
/** Every command on the commands connection has this deadline; past it the connection is dropped and re-made. */
export const COMMAND_DEADLINE = Duration.seconds(5)

/** Added to READ_BLOCK_MS for the blocking read's deadline: time for the reply to arrive, a large one included. */
export const READ_MARGIN = Duration.seconds(2)

/**
 * TCP keepalive's initial delay on both connections. It only covers idle connections, and after it the
 * kernel's probes (tcp_keepalive_intvl × tcp_keepalive_probes, 75 s × 9 by default on Linux) decide; the
 * deadlines above are what bring a connection back within seconds.
 */
export const KEEPALIVE = Duration.seconds(10)

export interface Deadlines {
  /** Of one command on the commands connection. */
  readonly command: Duration.Duration
  /** Of one blocking read: READ_BLOCK_MS plus READ_MARGIN. */
  readonly read: Duration.Duration
}

/** The deadlines for a blocking read of `readBlock` (READ_BLOCK_MS). */
export const deadlines = (readBlock: Duration.DurationInput): Deadlines => ({
  command: COMMAND_DEADLINE,
  read: Duration.sum(readBlock, READ_MARGIN)
})

// ioredis runs one command at a time per connection: a blocking XREADGROUP would hold every XACK behind it,
// so reads get a connection of their own.
export class Redis extends Context.Tag("processor/Redis")<Redis, {
  /** Commands: acks, dead letters, claims, group administration, health. Each fails after `deadlines.command`. */
  readonly client: IORedis
  /** Blocking reads only. Each fails after `deadlines.read`. */
  readonly reader: IORedis
  readonly deadlines: Deadlines
}>() {
  /** Both connections; `readBlock` (READ_BLOCK_MS, default 2 s) sets the reader's deadline. */
  static readonly make = (url: Redacted.Redacted, readBlock: Duration.DurationInput = Duration.seconds(2)) =>
    Effect.gen(function*() {
      const limits = deadlines(readBlock)
      const client = yield* connect(url, "commands", limits.command)
      const reader = yield* connect(url, "reads", limits.read)
      return { client, reader, deadlines: limits }
    })

  static readonly layer = (url: Redacted.Redacted, readBlock?: Duration.DurationInput) =>
    Layer.scoped(Redis, Redis.make(url, readBlock))

  static readonly layerConfig = Layer.scoped(
    Redis,
    Effect.flatMap(ProcessorConfig, (config) => Redis.make(config.redisUrl, config.readBlock))
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

const connect = (url: Redacted.Redacted, role: string, deadline: Duration.Duration) =>
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
          // Commands issued while the connection is down wait for it (up to their deadline) instead of
          // failing after a few reconnection attempts.
          maxRetriesPerRequest: null,
          // Every command fails after the deadline; `callOn` then drops the connection (ioredis' own
          // socketTimeout is not used: its timer outlives a reconnect and then destroys the new connection).
          commandTimeout: Duration.toMillis(deadline),
          // A command in flight when the connection dropped is failed (by its deadline), not sent again on the
          // new connection: the caller retries it, once, knowingly. A blocking read resent behind the caller's
          // back would deliver entries nobody takes.
          autoResendUnfulfilledCommands: false,
          keepAlive: Duration.toMillis(KEEPALIVE),
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
    let lastError = ""
    redis.on("close", () => {
      // Calls still waiting for a reply on the closed connection fail now rather than at their deadline
      // (ioredis, not resending them, would otherwise leave them pending): their callers retry at once.
      // The queue is the closed connection's until the next connect replaces it.
      for (const item of redis.commandQueue.toArray()) item.command.reject(new Error(CONNECTION_LOST))
      if (up && !lost && redis.status !== "end" && !closing.has(redis)) {
        lost = true
        const why = lastError === "" ? "" : ` (${lastError.slice(0, 200)})`
        log(Effect.logWarning(`Redis connection lost${why}; reconnecting`).pipe(Effect.annotateLogs({ role })))
      }
      lastError = ""
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
    redis.on("error", (error: Error) => {
      lastError = error.message
      onError(error)
    })
    yield* Effect.async<void, StartFailed>((resume) => {
      onError = (error) => {
        const code = errorCode(error)
        if (REFUSED.has(code)) {
          resume(Effect.fail(new StartFailed({ message: `Redis at ${options.address} refused the credentials: ${error.message}`, exitCode: ExitCode.noPermission })))
          return
        }
        // SELECT of a database the server does not have: ioredis would carry on in database 0, reading and
        // acknowledging another database's stream of the same name.
        if (/DB index is out of range/i.test(error.message)) {
          resume(Effect.fail(new StartFailed({ message: `REDIS_URL: Redis at ${options.address} has no database ${options.db}: ${error.message}`, exitCode: ExitCode.config })))
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
