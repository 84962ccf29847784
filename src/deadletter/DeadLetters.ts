import { Chunk, Clock, Data, Effect, Either, Option, Stream } from "effect"
import type { Redis as IORedis } from "ioredis"
import { parseDurationText } from "../config/Config.js"
import { streamIdTime } from "../consumer/Consumer.js"

export class RedisCommandError extends Data.TaggedError("RedisCommandError")<{
  readonly command: string
  readonly cause: unknown
}> {}

export class InvalidStreamId extends Data.TaggedError("InvalidStreamId")<{
  readonly id: string
}> {}

export class ReplayFailed extends Data.TaggedError("ReplayFailed")<{
  readonly replayed: number
  readonly cause: RedisCommandError
}> {}

export class InvalidDuration extends Data.TaggedError("InvalidDuration")<{
  readonly text: string
}> {}

/**
 * Fields the worker adds when it dead-letters an entry (human `error`, machine `reason`, the entry's `source_id`,
 * the `consumer` and `failed_at`), after every field of the original entry. They are the trailing block: an
 * original field with one of these names (a producer's own `error`) stays an original field, shown and
 * re-published as such, and never taken for the worker's.
 */
export const bookkeepingFields: ReadonlyArray<string> = ["error", "reason", "source_id", "consumer", "failed_at"]

/**
 * One entry of the dead-letter stream as stored there (what `dlq list` shows). The worker's side, a request
 * to dead-letter an entry for a reason, is Consumer.ts's DeadLetter.
 */
export interface DeadLetterEntry {
  readonly id: string
  /** Milliseconds part of the entry id: when the entry was dead-lettered. */
  readonly timestamp: number
  /** Every field of the entry in stream order, values as bytes (a payload need not be UTF-8). */
  readonly fields: ReadonlyArray<readonly [name: string, value: Buffer]>
}

const bookkeeping = new Set(bookkeepingFields)

/** How many fields at the end of the entry are the worker's: each bookkeeping name at most once, from the end. */
const bookkeepingCount = (fields: ReadonlyArray<readonly [string, Buffer]>): number => {
  const seen = new Set<string>()
  let n = 0
  for (let i = fields.length - 1; i >= 0; i--) {
    const name = fields[i]![0]
    if (!bookkeeping.has(name) || seen.has(name)) break
    seen.add(name)
    n++
  }
  return n
}

/**
 * The value of field `name` as UTF-8 text; undefined when the entry has no such field. A bookkeeping name is
 * looked up in the worker's trailing block, never among the original fields.
 */
export const fieldText = (entry: DeadLetterEntry, name: string): string | undefined => {
  const from = bookkeeping.has(name) ? entry.fields.length - bookkeepingCount(entry.fields) : 0
  return entry.fields.slice(from).find(([field]) => field === name)?.[1].toString("utf8")
}

/** The fields replay re-publishes: every original field, in stream order (all but the trailing bookkeeping block). */
export const originalFields = (entry: DeadLetterEntry): ReadonlyArray<readonly [string, Buffer]> =>
  entry.fields.slice(0, entry.fields.length - bookkeepingCount(entry.fields))

export type Order = "newest" | "oldest"

export interface ListOptions {
  /** newest: from the latest entry backwards (what an operator looks at first); oldest: queue order. */
  readonly order: Order
  /** At most this many entries; undefined: all of them. */
  readonly limit?: number | undefined
  /** Entries per XRANGE/XREVRANGE call. */
  readonly pageSize?: number | undefined
}

export interface Listing {
  readonly entries: ReadonlyArray<DeadLetterEntry>
  readonly total: number
}

export type Selection = Data.TaggedEnum<{
  Ids: { readonly ids: ReadonlyArray<string> }
  All: {}
}>
export const Selection = Data.taggedEnum<Selection>()

export interface ReplayProgress {
  readonly replayed: number
  readonly notFound: number
  readonly nothingToReplay: number
}

export interface ReplayResult {
  readonly replayed: number
  readonly notFound: ReadonlyArray<string>
  /** Entries left in the DLQ because no original field has a value to re-publish. */
  readonly nothingToReplay: number
  /** The first few of them, for the operator to look at. */
  readonly nothingToReplayIds: ReadonlyArray<string>
}

export interface PurgeResult {
  /** Entries removed, or for a dry run the entries that would be. */
  readonly removed: number
  /** Epoch milliseconds: entries whose id time is before this go. */
  readonly cutoff: number
}

export interface Keys {
  readonly dlqKey: string
  readonly sourceKey: string
}

const defaultPageSize = 500
const nothingToReplaySampleSize = 20

const command = <A>(name: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new RedisCommandError({ command: name, cause }) })

type Replies = Array<[error: Error | null, result: unknown]>

const exec = (name: string, batch: ReturnType<IORedis["pipeline"]>) =>
  command(name, () => batch.exec()).pipe(
    Effect.flatMap((replies): Effect.Effect<Replies, RedisCommandError> =>
      replies === null
        ? Effect.fail(new RedisCommandError({ command: name, cause: "EXEC aborted" }))
        : Effect.succeed(replies)
    )
  )

const toEntry = ([rawId, raw]: [Buffer, Array<Buffer>]): DeadLetterEntry => {
  const id = rawId.toString("latin1")
  const fields: Array<readonly [string, Buffer]> = []
  for (let i = 0; i + 1 < raw.length; i += 2) fields.push([raw[i]!.toString("utf8"), raw[i + 1]!])
  return { id, timestamp: streamIdTime(id), fields }
}

/** XLEN of the dead-letter stream (0 when it does not exist). */
export const count = (redis: IORedis, dlqKey: string) => command("XLEN", () => redis.xlen(dlqKey))

/**
 * The entries in `order`, up to `limit`, read a page at a time, so listing a large DLQ (or all of it) never
 * holds it in memory. Entries added or removed meanwhile may or may not show, as with any cursor.
 */
export const entries = (redis: IORedis, dlqKey: string, options: ListOptions): Stream.Stream<DeadLetterEntry, RedisCommandError> => {
  const pageSize = Math.max(1, options.pageSize ?? defaultPageSize)
  const newest = options.order === "newest"
  const name = newest ? "XREVRANGE" : "XRANGE"
  return Stream.paginateChunkEffect(
    { cursor: newest ? "+" : "-", remaining: options.limit ?? Number.POSITIVE_INFINITY },
    ({ cursor, remaining }) =>
      Effect.gen(function*() {
        if (remaining <= 0) return [Chunk.empty<DeadLetterEntry>(), Option.none()] as const
        const count = Math.min(pageSize, remaining)
        const page = yield* command(name, () =>
          newest
            ? redis.xrevrangeBuffer(dlqKey, cursor, "-", "COUNT", count)
            : redis.xrangeBuffer(dlqKey, cursor, "+", "COUNT", count))
        const chunk = Chunk.fromIterable(page.map(toEntry))
        const last = page.length === count ? Chunk.last(chunk) : Option.none()
        // Exclusive bounds ("(id") continue after the last entry of the page.
        return [
          chunk,
          Option.map(last, (entry) => ({ cursor: `(${entry.id}`, remaining: remaining - page.length }))
        ] as const
      })
  )
}

/** The first `limit` entries in `order`, collected, and the stream's length (read just before). */
export const list = Effect.fn("DeadLetters.list")(function*(redis: IORedis, dlqKey: string, options: ListOptions) {
  const total = yield* count(redis, dlqKey)
  const page = yield* Stream.runCollect(entries(redis, dlqKey, options))
  return { entries: Chunk.toReadonlyArray(page), total } satisfies Listing
})

// The XADD and the XDEL run in one script: the entry leaves the DLQ only if the XADD succeeded
// (an error in redis.call aborts the script), there is no window in which it sits in both streams,
// and two operators replaying at once cannot both re-publish it (the second finds it gone).
// Lua strings are byte strings, so binary values come back unchanged. ARGV[1] is the id, the rest
// name the bookkeeping fields: the trailing block of them (each name once, from the end) stays behind, as in
// originalFields. Returns -1 when no original field has a value.
const moveScript = `
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return 0 end
local names = {}
for i = 2, #ARGV do names[ARGV[i]] = true end
local fields = entry[1][2]
local last = #fields
local seen = {}
while last >= 2 and names[fields[last - 1]] and not seen[fields[last - 1]] do
  seen[fields[last - 1]] = true
  last = last - 2
end
local out = {}
local any = false
for i = 1, last - 1, 2 do
  out[#out + 1] = fields[i]
  out[#out + 1] = fields[i + 1]
  if fields[i + 1] ~= '' then any = true end
end
if not any then return -1 end
redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
`
const Moved = 1
const NotFound = 0

const streamIdPattern = /^(\d{1,20})-(\d{1,20})$/
const maxIdPart = 2n ** 64n - 1n

// A bare "<ms>" would be read by XRANGE as every entry of that millisecond, so only full ids pass.
export const isStreamId = (text: string): boolean => {
  const match = streamIdPattern.exec(text)
  return match !== null && BigInt(match[1]!) <= maxIdPart && BigInt(match[2]!) <= maxIdPart
}

/**
 * Moves entries back to the source stream with every original field (see bookkeepingFields), a page at a time;
 * `onProgress` sees the running counts after each page. `All` walks the DLQ with XRANGE up to the newest id present
 * when it started, so entries that fail again and come back to the DLQ during the run are not replayed in a loop.
 * Fails with InvalidStreamId before anything moves, or ReplayFailed (with the count already moved) on a Redis error.
 */
export const replay = Effect.fn("DeadLetters.replay")(function*(
  redis: IORedis,
  keys: Keys,
  selection: Selection,
  options?: {
    readonly pageSize?: number
    readonly onProgress?: (progress: ReplayProgress) => Effect.Effect<void>
  }
) {
  const pageSize = options?.pageSize ?? defaultPageSize
  if (selection._tag === "Ids") {
    const invalid = selection.ids.find((id) => !isStreamId(id))
    if (invalid !== undefined) return yield* new InvalidStreamId({ id: invalid })
  }

  let replayed = 0
  let nothingToReplay = 0
  const nothingToReplayIds: Array<string> = []
  const notFound: Array<string> = []

  const movePage = (sha: string, ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const batch = redis.pipeline()
      for (const id of ids) batch.evalsha(sha, 2, keys.dlqKey, keys.sourceKey, id, ...bookkeepingFields)
      const replies = yield* exec("EVALSHA move", batch)
      let failure: Error | undefined
      replies.forEach(([error, outcome], i) => {
        const id = ids[i]!
        if (error) failure ??= error
        else if (outcome === Moved) replayed++
        else if (outcome === NotFound) notFound.push(id)
        else {
          nothingToReplay++
          if (nothingToReplayIds.length < nothingToReplaySampleSize) nothingToReplayIds.push(id)
        }
      })
      if (failure) return yield* new RedisCommandError({ command: "EVALSHA move", cause: failure })
      if (options?.onProgress) yield* options.onProgress({ replayed, notFound: notFound.length, nothingToReplay })
    })

  yield* Effect.gen(function*() {
    const sha = String(yield* command("SCRIPT LOAD", () => redis.script("LOAD", moveScript)))
    if (selection._tag === "Ids") {
      const ids = [...new Set(selection.ids)]
      for (let i = 0; i < ids.length; i += pageSize) {
        yield* movePage(sha, ids.slice(i, i + pageSize))
      }
      return
    }
    const newest = yield* command("XREVRANGE", () => redis.xrevrange(keys.dlqKey, "+", "-", "COUNT", 1))
    const end = newest[0]?.[0]
    if (end === undefined) return
    let start = "-"
    while (true) {
      const page = yield* command("XRANGE", () => redis.xrange(keys.dlqKey, start, end, "COUNT", pageSize))
      if (page.length === 0) return
      const ids = page.map(([id]) => id)
      yield* movePage(sha, ids)
      if (page.length < pageSize) return
      // Exclusive start: entries skipped for having nothing to replay stay behind the cursor.
      start = `(${ids[ids.length - 1]}`
    }
  }).pipe(Effect.mapError((cause) => new ReplayFailed({ replayed, cause })))

  return { replayed, notFound, nothingToReplay, nothingToReplayIds } satisfies ReplayResult
})

/**
 * Removes the entries whose id time is before now - olderThanMs; with `dryRun`, counts them (a page of ids at a time)
 * and removes nothing.
 */
export const purgeOlderThan = Effect.fn("DeadLetters.purgeOlderThan")(function*(
  redis: IORedis,
  dlqKey: string,
  olderThanMs: number,
  options?: { readonly dryRun?: boolean; readonly pageSize?: number }
) {
  const now = yield* Clock.currentTimeMillis
  const cutoff = Math.max(0, now - olderThanMs)
  if (options?.dryRun) {
    // Exclusive end "(cutoff-0": the ids XTRIM MINID cutoff would remove. Nothing precedes 0-0.
    if (cutoff === 0) return { removed: 0, cutoff } satisfies PurgeResult
    const pageSize = Math.max(1, options.pageSize ?? defaultPageSize)
    let removed = 0
    let start = "-"
    while (true) {
      const page = yield* command("XRANGE", () => redis.xrange(dlqKey, start, `(${cutoff}-0`, "COUNT", pageSize))
      removed += page.length
      if (page.length < pageSize) return { removed, cutoff } satisfies PurgeResult
      start = `(${page[page.length - 1]![0]}`
    }
  }
  // Exact MINID (no "~"), so nothing younger than the cutoff goes and nothing older stays.
  const removed = yield* command("XTRIM", () => redis.xtrim(dlqKey, "MINID", "=", cutoff))
  return { removed, cutoff } satisfies PurgeResult
})

/**
 * "30s", "15m", "12h", "7d", or combined largest unit first ("1h30m"), to milliseconds: the form of the worker's
 * duration variables (Config.parseDurationText), without their bare "0": `--older-than` takes a unit.
 */
export const parseDuration = (text: string): Either.Either<number, InvalidDuration> => {
  const ms = text === "0" ? undefined : parseDurationText(text)
  return ms === undefined ? Either.left(new InvalidDuration({ text })) : Either.right(ms)
}

/** The two largest units: "42s", "3m12s", "2h", "2h5m", "4d", "4d3h". */
export const formatAge = (ms: number): string => {
  const total = Math.max(0, Math.floor(ms / 1000))
  const units: ReadonlyArray<readonly [string, number]> = [
    ["d", Math.floor(total / 86400)],
    ["h", Math.floor(total / 3600) % 24],
    ["m", Math.floor(total / 60) % 60],
    ["s", total % 60]
  ]
  const first = units.findIndex(([, n]) => n > 0)
  if (first === -1) return "0s"
  return units
    .slice(first, first + 2)
    .filter(([, n]) => n > 0)
    .map(([unit, n]) => `${n}${unit}`)
    .join("")
}
