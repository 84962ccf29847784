import { CliConfig, Command, HelpDoc, Options } from "@effect/cli"
import { Chunk, Clock, Console, Effect, Either, Option, Ref, Stream } from "effect"
import { redisSettings } from "../config/Config.js"
import * as DeadLetters from "../deadletter/DeadLetters.js"
import { connectRedis, describe, Failure, footer, printable, progress, runMain, truncate, UsageError, version } from "./Cli.js"

// pnpm dlq list | replay | purge: inspect and repair the dead-letter stream.

const connect = Effect.gen(function*() {
  const config = yield* redisSettings
  const redis = yield* connectRedis(config.redisUrl, { reconnect: false })
  return { redis, dlqKey: config.deadLetterStream, sourceKey: config.stream }
})

// ---- list ----

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** A field value for JSON: its text when the bytes are UTF-8, otherwise {"base64": …} so nothing is lost. */
const jsonValue = (value: Buffer): string | { readonly base64: string } => {
  try {
    return utf8.decode(value)
  } catch {
    return { base64: value.toString("base64") }
  }
}

const toJson = (entry: DeadLetters.DeadLetterEntry): string =>
  JSON.stringify({
    id: entry.id,
    time: new Date(entry.timestamp).toISOString(),
    fields: Object.fromEntries(entry.fields.map(([name, value]) => [name, jsonValue(value)]))
  })

const text = (value: Buffer): string => printable(value.toString("utf8"))

// The original entry's fields, as `name=value`, or the bare payload when that is all there is (the common case).
const originalText = (entry: DeadLetters.DeadLetterEntry): string => {
  const fields = DeadLetters.originalFields(entry)
  if (fields.length === 0) return "(no fields)"
  if (fields.length === 1 && fields[0]![0] === "payload") return fields[0]![1].length === 0 ? "(empty)" : text(fields[0]![1])
  return fields.map(([name, value]) => `${printable(name)}=${text(value)}`).join(" ")
}

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join("  "))
    .join("\n")
}

const rows = (entries: ReadonlyArray<DeadLetters.DeadLetterEntry>, now: number) =>
  entries.map((entry) => [
    entry.id,
    DeadLetters.formatAge(now - entry.timestamp),
    printable(DeadLetters.fieldText(entry, "reason") ?? "-"),
    printable(DeadLetters.fieldText(entry, "source_id") ?? "-"),
    truncate(printable(DeadLetters.fieldText(entry, "error") ?? ""), 60),
    truncate(originalText(entry), 80)
  ])

// One block per entry, every field in stream order, nothing cut; control characters stay escaped.
const block = (entry: DeadLetters.DeadLetterEntry, now: number): string => {
  const width = Math.max(...entry.fields.map(([name]) => name.length), 0)
  return [
    `${entry.id}  (${DeadLetters.formatAge(now - entry.timestamp)} ago)`,
    ...entry.fields.map(([name, value]) => `  ${printable(name).padEnd(width)}  ${text(value)}`)
  ].join("\n")
}

type Format = "table" | "full" | "json"

const list = Command.make(
  "list",
  {
    limit: Options.integer("limit").pipe(
      Options.withPseudoName("N"),
      Options.filterMap((n: number) => (n >= 0 ? Option.some(n) : Option.none()), "--limit must be 0 or more"),
      Options.withDefault(20),
      Options.withDescription("Show at most N entries (default 20); 0 shows all of them.")
    ),
    oldest: Options.boolean("oldest").pipe(Options.withDescription("Oldest first (queue order) instead of newest first.")),
    json: Options.boolean("json").pipe(
      Options.withDescription(
        "One JSON object per line, every field untruncated: {\"id\",\"time\",\"fields\":{name: value}}; a value that " +
          "is not UTF-8 comes as {\"base64\": …}. The count goes to stderr."
      )
    ),
    full: Options.boolean("full").pipe(Options.withDescription("Every field of every entry in full, one block per entry."))
  },
  ({ full, json, limit, oldest }) =>
    Effect.gen(function*() {
      if (json && full) return yield* new UsageError({ message: "--json and --full exclude each other" })
      const format: Format = json ? "json" : full ? "full" : "table"
      const order: DeadLetters.Order = oldest ? "oldest" : "newest"
      const { dlqKey, redis } = yield* connect
      const total = yield* DeadLetters.count(redis, dlqKey)
      const now = yield* Clock.currentTimeMillis
      const shown = yield* Ref.make(0)
      yield* DeadLetters.entries(redis, dlqKey, { order, limit: limit === 0 ? undefined : limit }).pipe(
        Stream.runForEachChunk((chunk) =>
          Effect.gen(function*() {
            const entries = Chunk.toReadonlyArray(chunk)
            if (entries.length === 0) return
            const first = (yield* Ref.getAndUpdate(shown, (n) => n + entries.length)) === 0
            // Pages of up to 500: a table's columns are as wide as its page needs.
            yield* Console.log(
              format === "json"
                ? entries.map(toJson).join("\n")
                : format === "full"
                ? `${first ? "" : "\n"}${entries.map((entry) => block(entry, now)).join("\n\n")}`
                : table([...(first ? [["ID", "AGE", "REASON", "SOURCE_ID", "ERROR", "FIELDS"]] : []), ...rows(entries, now)])
            )
          })
        )
      )
      const count = yield* Ref.get(shown)
      const line = total === 0
        ? `no dead letters in ${dlqKey}`
        : `${count} shown of ${total} in ${dlqKey} (${order} first)`
      yield* format === "json" ? Console.error(line) : Console.log(format === "full" && count > 0 ? `\n${line}` : line)
    }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(
    "Show dead letters, newest first: id, age (from the entry id), reason, source id, error and the original " +
      "entry's fields. Cut to one line each unless --full or --json."
  )
)

// ---- replay ----

const replay = Command.make(
  "replay",
  {
    ids: Options.text("id").pipe(
      Options.withPseudoName("ID"),
      Options.repeated,
      Options.withDescription("A dead letter's id (<ms>-<seq>, as `list` shows it); repeat for several.")
    ),
    all: Options.boolean("all").pipe(Options.withDescription("Every dead letter present when the replay starts.")),
    quiet: Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("No progress line on stderr."))
  },
  ({ all, ids, quiet }) =>
    Effect.gen(function*() {
      if (all && ids.length > 0) return yield* new UsageError({ message: "--id and --all exclude each other" })
      if (!all && ids.length === 0) return yield* new UsageError({ message: "replay needs --id ID (repeatable) or --all" })
      const invalid = ids.find((id) => !DeadLetters.isStreamId(id))
      if (invalid !== undefined) {
        return yield* new UsageError({ message: `--id: not a stream id '${truncate(printable(invalid), 40)}' (expected <ms>-<seq>)` })
      }
      const { dlqKey, redis, sourceKey } = yield* connect
      if (sourceKey === dlqKey) {
        return yield* new Failure({ message: "REDIS_STREAM and REDIS_DLQ_STREAM name the same key" })
      }
      const counts = yield* Ref.make<DeadLetters.ReplayProgress>({ replayed: 0, notFound: 0, nothingToReplay: 0 })
      const selection = all ? DeadLetters.Selection.All() : DeadLetters.Selection.Ids({ ids })
      const result = yield* Effect.gen(function*() {
        if (!quiet) {
          yield* progress(Effect.map(Ref.get(counts), (c) => `dlq: replayed ${c.replayed} to ${sourceKey}`))
        }
        return yield* DeadLetters.replay(redis, { dlqKey, sourceKey }, selection, {
          onProgress: (c) => Ref.set(counts, c)
        })
      }).pipe(Effect.scoped)
      yield* Console.log(`replayed ${result.replayed} to ${sourceKey}`)
      if (result.nothingToReplay > 0) {
        const more = result.nothingToReplay > result.nothingToReplayIds.length ? ", …" : ""
        yield* Console.log(
          `skipped ${result.nothingToReplay} with nothing to re-publish (no original field with a value), left in ` +
            `${dlqKey}: ${result.nothingToReplayIds.join(", ")}${more}`
        )
      }
      for (const id of result.notFound) yield* Console.error(`not found: ${id}`)
      if (result.notFound.length > 0) {
        return yield* new Failure({ message: `${result.notFound.length} of the ids not found in ${dlqKey}` })
      }
    }).pipe(Effect.scoped)
).pipe(
  Command.withDescription(
    "Re-publish entries to the source stream (REDIS_STREAM) with every original field (all but the worker's own " +
      "error, reason, source_id, consumer, failed_at at the end) and remove them from the dead-letter stream, one atomic script per entry. " +
      "Entries with no original field that has a value are skipped and stay. Unknown ids are reported (exit 1)."
  )
)

// ---- purge ----

const purge = Command.make(
  "purge",
  {
    olderThan: Options.text("older-than").pipe(
      Options.withPseudoName("DURATION"),
      Options.filterMap(
        (text: string) => Either.getRight(Either.map(DeadLetters.parseDuration(text), (ms) => ({ ms, text }))),
        "--older-than must be a duration such as 30s, 15m, 12h, 7d or 1h30m"
      ),
      Options.withDescription("Remove dead letters older than this (by entry id): 30s, 15m, 12h, 7d, 1h30m.")
    ),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Count what would be removed; remove nothing."))
  },
  ({ dryRun, olderThan }) =>
    Effect.gen(function*() {
      const { dlqKey, redis } = yield* connect
      const { removed } = yield* DeadLetters.purgeOlderThan(redis, dlqKey, olderThan.ms, { dryRun })
      yield* Console.log(
        dryRun
          ? `would remove ${removed} older than ${olderThan.text} from ${dlqKey} (dry run, nothing removed)`
          : `removed ${removed} older than ${olderThan.text} from ${dlqKey}`
      )
    }).pipe(Effect.scoped)
).pipe(Command.withDescription("Remove dead letters older than a duration."))

// ---- dlq ----

// Help for the whole tool, as --help shows it, but on stderr: a bare `dlq` is a usage error (exit 2).
const bare = (): Effect.Effect<void, UsageError, CliConfig.CliConfig> =>
  Effect.gen(function*() {
    yield* Console.error(HelpDoc.toAnsiText(Command.getHelp(dlq, yield* CliConfig.CliConfig)))
    return yield* new UsageError({ message: "a command is required: list, replay or purge" })
  })

const dlq = Command.make("dlq", {}, bare).pipe(
  Command.withDescription("Inspect and repair the dead-letter stream of the processor."),
  Command.withSubcommands([list, replay, purge])
)

const cli = Command.run(dlq, {
  name: "dlq",
  version,
  footer: footer([
    "REDIS_URL (default redis://127.0.0.1:6379); REDIS_STREAM, the source stream replay writes to (default " +
    "telemetry:t); REDIS_DLQ_STREAM, the dead-letter stream (default telemetry:t:dlq)."
  ])
})

runMain("dlq", cli(process.argv), (error) =>
  error._tag === "RedisCommandError"
    ? Option.some(`${error.command} failed: ${describe(error.cause)}`)
    : error._tag === "ReplayFailed"
    ? Option.some(
      `replay stopped after ${error.replayed} replayed: ${error.cause.command} failed: ${describe(error.cause.cause)}`
    )
    : Option.none())
