import { CliConfig, HelpDoc, ValidationError } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, ConfigError, Console, Data, Duration, Effect, Exit, Option, Redacted, Schedule } from "effect"
import { Redis as IORedis } from "ioredis"
import { describeConfigError } from "../config/Config.js"
import { messageOf } from "../ErrorMessage.js"

// What the command-line tools share: exit codes, the Redis connection, progress on stderr, terminal-safe text.

/**
 * Exit codes of `simulate` and `dlq`, for scripts: 0 done (help and --version included); 1 the work failed
 * (Redis unreachable or failing, invalid environment, unknown ids on replay); 2 the command line is wrong (unknown
 * command or option, bad or missing value, conflicting options, `dlq` without a command); 130 interrupted (SIGINT).
 */
export const ExitCode = { Ok: 0, Failure: 1, Usage: 2, Interrupted: 130 } as const

/** A command line @effect/cli accepts but the command refuses (conflicting options, a malformed id). */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** The work failed after the command line was accepted; `message` is printed as is, exit 1. */
export class Failure extends Data.TaggedError("Failure")<{ readonly message: string }> {}

export class RedisUnavailable extends Data.TaggedError("RedisUnavailable")<{ readonly cause: unknown }> {}

/** The message of an Error or the text of anything else, cut to one line of at most 200 characters. */
export const describe = (cause: unknown): string => {
  const line = messageOf(cause).split("\n")[0]!
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}

/**
 * A connected ioredis client, quit (bounded at 2 s, then dropped) when the scope closes. `reconnect: false` fails
 * every command at once when the connection goes, as a one-shot tool should; `true` lets ioredis reconnect and fail
 * a command after three attempts (a blip does not end a long simulation). Fails with RedisUnavailable carrying the
 * reason (ECONNREFUSED, NOAUTH…), never the URL, which may hold a password.
 */
export const connectRedis = (url: Redacted.Redacted<string>, options: { readonly reconnect: boolean }) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const redis = new IORedis(Redacted.value(url), {
        lazyConnect: true,
        connectTimeout: 5_000,
        maxRetriesPerRequest: options.reconnect ? 3 : 1,
        ...(options.reconnect ? {} : { retryStrategy: () => null })
      })
      // connect() only rejects with "Connection is closed."; the reason comes as an event. Without a listener
      // ioredis would also print every connection error with a stack.
      let reason: unknown
      redis.on("error", (error) => {
        reason = error
      })
      return Effect.tryPromise({
        try: () => redis.connect(),
        catch: (cause) => new RedisUnavailable({ cause: reason ?? cause })
      }).pipe(
        Effect.as(redis),
        Effect.onError(() => Effect.sync(() => redis.disconnect()))
      )
    }),
    (redis) =>
      Effect.tryPromise(() => redis.quit()).pipe(
        Effect.timeout("2 seconds"),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => redis.disconnect()))
      )
  )

/**
 * While the enclosing scope is open, writes `line` to stderr every `interval` (the first after one interval, so quick
 * work prints nothing): rewritten in place on a terminal, one line each time otherwise (logs, pipes). Stdout stays
 * for results. Closing the scope clears the terminal line.
 */
export const progress = (line: Effect.Effect<string>, interval: Duration.DurationInput = "1 second") =>
  Effect.gen(function*() {
    const tty = process.stderr.isTTY === true
    const write = (text: string) => Effect.sync(() => process.stderr.write(text))
    yield* Effect.addFinalizer(() => (tty ? write("\r\u001b[2K") : Effect.void))
    yield* line.pipe(
      Effect.flatMap((text) => write(tty ? `\r\u001b[2K${text}` : `${text}\n`)),
      Effect.delay(interval),
      Effect.repeat(Schedule.forever),
      Effect.forkScoped
    )
  })

// Error text and field values go to a terminal: keep one entry on one line and no escape sequence alive.
export const printable = (text: string): string =>
  // eslint-disable-next-line no-control-regex
  text.replace(/[\u0000-\u001f\u007f]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)

/** At most `max` characters (code points), the last one "…" when cut. */
export const truncate = (text: string, max: number): string => {
  const chars = Array.from(text)
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`
}

/** The footer both tools put under their help. */
export const footer = (environment: ReadonlyArray<string>): HelpDoc.HelpDoc =>
  HelpDoc.blocks([
    HelpDoc.h2("ENVIRONMENT"),
    ...environment.map((line) => HelpDoc.p(line)),
    HelpDoc.h2("EXIT CODES"),
    HelpDoc.p("0 done; 1 failed (Redis unreachable or failing, invalid environment, unknown ids on replay);"),
    HelpDoc.p("2 bad command line; 130 interrupted."),
    HelpDoc.p("-h, --help shows this help (also after a command), --version the version.")
  ])

export const version = process.env["npm_package_version"] ?? "dev"

const exitCodeOf = (exit: Exit.Exit<number, unknown>): number =>
  Exit.match(exit, {
    onSuccess: (code) => code,
    onFailure: (cause) => (Cause.isInterruptedOnly(cause) ? ExitCode.Interrupted : ExitCode.Failure)
  })

/**
 * Runs a tool to completion and exits with its code. Expected failures become a message on stderr prefixed with
 * `name` and an exit code: @effect/cli's ValidationError (it has printed its own message) and UsageError give 2,
 * Failure, RedisUnavailable and an invalid environment 1; anything else is a defect, printed in full, 1.
 */
export const runMain = <E>(
  name: string,
  program: Effect.Effect<void, E, NodeContext.NodeContext | CliConfig.CliConfig>,
  describeError: (error: E) => Option.Option<string> = () => Option.none()
) => {
  const main = program.pipe(
    Effect.as(ExitCode.Ok as number),
    Effect.catchAll((error: unknown) => {
      if (ValidationError.isValidationError(error)) return Effect.succeed(ExitCode.Usage)
      if (error instanceof UsageError) return Console.error(`${name}: ${error.message}`).pipe(Effect.as(ExitCode.Usage))
      if (error instanceof Failure) return Console.error(`${name}: ${error.message}`).pipe(Effect.as(ExitCode.Failure))
      if (error instanceof RedisUnavailable) {
        return Console.error(`${name}: cannot connect to Redis: ${describe(error.cause)}`).pipe(Effect.as(ExitCode.Failure))
      }
      if (ConfigError.isConfigError(error)) {
        return Console.error(`${name}: ${describeConfigError(error)}`).pipe(Effect.as(ExitCode.Failure))
      }
      const text = describeError(error as E)
      return Option.isSome(text)
        ? Console.error(`${name}: ${text.value}`).pipe(Effect.as(ExitCode.Failure))
        : Effect.die(error)
    }),
    Effect.tapDefect((defect) => Console.error(`${name}: unexpected failure: ${Cause.pretty(Cause.die(defect))}`)),
    // Help lists the tool's own options; --help, --version and the other built-ins still work.
    Effect.provide(CliConfig.layer({ showBuiltIns: false })),
    Effect.provide(NodeContext.layer)
  )
  NodeRuntime.runMain(main, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(exitCodeOf(exit as Exit.Exit<number, unknown>))
  })
}
