import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { defaultTeardown } from "@effect/platform/Runtime"
import { Clock, Config, Console, Data, Effect, Either, Exit, Redacted } from "effect"
import { Redis } from "ioredis"
import { parseArgs } from "node:util"
import * as DeadLetters from "../deadletter/DeadLetters.js"

const usage = `Usage: npm run dlq -- <command> [options]

Inspect and repair the dead-letter stream of the processor.

Commands:
  list [--limit N]             Show the N oldest dead letters (default 20), oldest first,
                               then the total count. Age is taken from the entry id.
  replay --id ID [--id ID ...] Re-publish these entries' payloads to the source stream and
  replay --all                 remove them from the dead-letter stream. --all covers the
                               entries present when it starts. Entries with an empty payload
                               are skipped and stay. Unknown ids are reported (exit 1).
  purge --older-than DURATION  Remove dead letters older than DURATION: 30s, 15m, 12h, 7d, 1h30m.

Environment:
  REDIS_URL         default redis://127.0.0.1:6379
  REDIS_STREAM      source stream, default telemetry:t
  REDIS_DLQ_STREAM  dead-letter stream, default telemetry:t:dlq

Exit codes: 0 done, 1 failure or unknown ids, 2 bad usage.`

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

type Command = Data.TaggedEnum<{
  Help: {}
  List: { readonly limit: number }
  Replay: { readonly selection: DeadLetters.Selection }
  Purge: { readonly olderThanMs: number; readonly text: string }
}>
const Command = Data.taggedEnum<Command>()

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"]

const parseFlags = <O extends Options>(args: ReadonlyArray<string>, options: O) =>
  Either.try({
    try: () => parseArgs({ args: [...args], options: { ...options, help: { type: "boolean", short: "h" } }, strict: true }).values,
    // node's messages name the flag in their first sentence and then go on about "--".
    catch: (error) => new UsageError({ message: (error instanceof Error ? error.message : String(error)).split(". ")[0]! })
  })

const invalidId = (id: string) => new UsageError({ message: `--id: not a stream id '${id}' (expected <ms>-<seq>)` })

const parseCommand = (argv: ReadonlyArray<string>): Either.Either<Command, UsageError> => {
  const [name, ...rest] = argv
  switch (name) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      return Either.right(Command.Help())
    case "list":
      return Either.flatMap(parseFlags(rest, { limit: { type: "string" } }), (flags): Either.Either<Command, UsageError> => {
        if (flags.help) return Either.right(Command.Help())
        const text = flags.limit ?? "20"
        const limit = Number(text)
        return /^\d+$/.test(text) && Number.isSafeInteger(limit) && limit > 0
          ? Either.right(Command.List({ limit }))
          : Either.left(new UsageError({ message: `--limit: expected a positive integer, got '${text}'` }))
      })
    case "replay":
      return Either.flatMap(
        parseFlags(rest, { id: { type: "string", multiple: true }, all: { type: "boolean" } }),
        (flags): Either.Either<Command, UsageError> => {
          if (flags.help) return Either.right(Command.Help())
          const ids = flags.id ?? []
          if (flags.all && ids.length > 0) return Either.left(new UsageError({ message: "--id and --all exclude each other" }))
          if (flags.all) return Either.right(Command.Replay({ selection: DeadLetters.Selection.All() }))
          if (ids.length === 0) return Either.left(new UsageError({ message: "replay needs --id ID (repeatable) or --all" }))
          const invalid = ids.find((id) => !DeadLetters.isStreamId(id))
          if (invalid !== undefined) return Either.left(invalidId(invalid))
          return Either.right(Command.Replay({ selection: DeadLetters.Selection.Ids({ ids }) }))
        }
      )
    case "purge":
      return Either.flatMap(parseFlags(rest, { "older-than": { type: "string" } }), (flags): Either.Either<Command, UsageError> => {
        if (flags.help) return Either.right(Command.Help())
        const text = flags["older-than"]
        if (text === undefined) return Either.left(new UsageError({ message: "purge needs --older-than DURATION" }))
        return Either.mapBoth(DeadLetters.parseDuration(text), {
          onLeft: () => new UsageError({ message: `--older-than: invalid duration '${text}' (e.g. 30s, 15m, 12h, 7d)` }),
          onRight: (olderThanMs) => Command.Purge({ olderThanMs, text })
        })
      })
    default:
      return Either.left(new UsageError({ message: `unknown command '${name}' (try --help)` }))
  }
}

const config = Config.all({
  url: Config.redacted("REDIS_URL").pipe(Config.withDefault(Redacted.make("redis://127.0.0.1:6379"))),
  sourceKey: Config.string("REDIS_STREAM").pipe(Config.withDefault("telemetry:t")),
  dlqKey: Config.string("REDIS_DLQ_STREAM").pipe(Config.withDefault("telemetry:t:dlq"))
})

class ConnectError extends Data.TaggedError("ConnectError")<{ readonly cause: unknown }> {}

// A CLI should fail fast when Redis is away, not retry forever like the worker does.
const connect = (url: Redacted.Redacted<string>) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const redis = new Redis(Redacted.value(url), {
        lazyConnect: true,
        connectTimeout: 5_000,
        maxRetriesPerRequest: 1,
        retryStrategy: () => null
      })
      // connect() only rejects with "Connection is closed."; the reason (ECONNREFUSED, auth) comes as an event.
      let reason: unknown
      redis.on("error", (error) => {
        reason = error
      })
      return Effect.tryPromise({ try: () => redis.connect(), catch: (cause) => new ConnectError({ cause: reason ?? cause }) }).pipe(
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

// Error text and payloads go to a terminal: keep one entry on one line.
const printable = (text: string): string =>
  // eslint-disable-next-line no-control-regex
  text.replace(/[\u0000-\u001f\u007f]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : c === "\r" ? "\\r" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)

const truncate = (text: string, max: number): string => {
  const chars = Array.from(text)
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`
}

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join("  "))
    .join("\n")
}

const run = (command: Command) =>
  Effect.gen(function*() {
    if (command._tag === "Help") {
      yield* Console.log(usage)
      return 0
    }
    const { dlqKey, sourceKey, url } = yield* config
    const redis = yield* connect(url)
    switch (command._tag) {
      case "List": {
        const { entries, total } = yield* DeadLetters.list(redis, dlqKey, command.limit)
        if (total === 0) {
          yield* Console.log(`no dead letters in ${dlqKey}`)
          return 0
        }
        const now = yield* Clock.currentTimeMillis
        yield* Console.log(table([
          ["ID", "AGE", "SOURCE_ID", "ERROR", "PAYLOAD"],
          ...entries.map((entry) => [
            entry.id,
            DeadLetters.formatAge(now - entry.timestamp),
            entry.sourceId,
            truncate(printable(entry.error), 60),
            entry.payload === "" ? "(empty)" : truncate(printable(entry.payload), 80)
          ])
        ]))
        yield* Console.log(`${entries.length} shown of ${total} in ${dlqKey} (oldest first)`)
        return 0
      }
      case "Replay": {
        if (sourceKey === dlqKey) {
          return yield* new UsageError({ message: "REDIS_STREAM and REDIS_DLQ_STREAM name the same key" })
        }
        const result = yield* DeadLetters.replay(redis, { dlqKey, sourceKey }, command.selection)
        yield* Console.log(`replayed ${result.replayed} to ${sourceKey}`)
        if (result.emptyPayload > 0) {
          const more = result.emptyPayload > result.emptyPayloadIds.length ? ", …" : ""
          yield* Console.log(
            `skipped ${result.emptyPayload} with an empty payload, left in ${dlqKey}: ${result.emptyPayloadIds.join(", ")}${more}`
          )
        }
        for (const id of result.notFound) yield* Console.error(`not found: ${id}`)
        return result.notFound.length > 0 ? 1 : 0
      }
      case "Purge": {
        const { removed } = yield* DeadLetters.purgeOlderThan(redis, dlqKey, command.olderThanMs)
        yield* Console.log(`removed ${removed} older than ${command.text} from ${dlqKey}`)
        return 0
      }
    }
  }).pipe(Effect.scoped)

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const program = Effect.suspend(() => parseCommand(process.argv.slice(2))).pipe(
  Effect.flatMap(run),
  Effect.catchTags({
    UsageError: (error) => Console.error(`dlq: ${error.message}`).pipe(Effect.as(2)),
    InvalidStreamId: (error) => Console.error(`dlq: ${invalidId(error.id).message}`).pipe(Effect.as(2)),
    ConfigError: (error) => Console.error(`dlq: configuration: ${error}`).pipe(Effect.as(1)),
    ConnectError: (error) => Console.error(`dlq: cannot connect to Redis: ${describe(error.cause)}`).pipe(Effect.as(1)),
    RedisCommandError: (error) => Console.error(`dlq: ${error.command} failed: ${describe(error.cause)}`).pipe(Effect.as(1)),
    ReplayFailed: (error) =>
      Console.error(`dlq: replay stopped after ${error.replayed} replayed: ${error.cause.command} failed: ${describe(error.cause.cause)}`)
        .pipe(Effect.as(1))
  })
)

NodeRuntime.runMain(program, {
  teardown: (exit, onExit) => (Exit.isSuccess(exit) && typeof exit.value === "number" ? onExit(exit.value) : defaultTeardown(exit, onExit))
})
