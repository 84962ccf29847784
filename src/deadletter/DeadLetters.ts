import { Clock, Data, Effect, Either } from "effect"
import type { Redis } from "ioredis"

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

export interface DeadLetter {
  readonly id: string
  /** Milliseconds part of the entry id: when the entry was dead-lettered. */
  readonly timestamp: number
  readonly payload: string
  readonly error: string
  readonly sourceId: string
  readonly consumer: string
  readonly failedAt: string
}

export interface Listing {
  readonly entries: ReadonlyArray<DeadLetter>
  readonly total: number
}

export type Selection = Data.TaggedEnum<{
  Ids: { readonly ids: ReadonlyArray<string> }
  All: {}
}>
export const Selection = Data.taggedEnum<Selection>()

export interface ReplayResult {
  readonly replayed: number
  readonly notFound: ReadonlyArray<string>
  /** Entries left in the DLQ because there is nothing to re-publish. */
  readonly emptyPayload: number
  /** The first few of them, for the operator to look at. */
  readonly emptyPayloadIds: ReadonlyArray<string>
}

export interface PurgeResult {
  readonly removed: number
  readonly cutoff: number
}

export interface Keys {
  readonly dlqKey: string
  readonly sourceKey: string
}

const defaultPageSize = 500
const emptyPayloadSampleSize = 20

const command = <A>(name: string, run: () => Promise<A>) =>
  Effect.tryPromise({ try: run, catch: (cause) => new RedisCommandError({ command: name, cause }) })

type Replies = Array<[error: Error | null, result: unknown]>

const exec = (name: string, batch: ReturnType<Redis["pipeline"]>) =>
  command(name, () => batch.exec()).pipe(
    Effect.flatMap((replies): Effect.Effect<Replies, RedisCommandError> =>
      replies === null
        ? Effect.fail(new RedisCommandError({ command: name, cause: "EXEC aborted" }))
        : Effect.succeed(replies)
    )
  )

const field = (fields: ReadonlyArray<string>, name: string): string => {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1]!
  }
  return ""
}

const timestampOf = (id: string): number => Number(id.slice(0, id.indexOf("-")))

const toDeadLetter = ([id, fields]: [string, Array<string>]): DeadLetter => ({
  id,
  timestamp: timestampOf(id),
  payload: field(fields, "payload"),
  error: field(fields, "error"),
  sourceId: field(fields, "source_id"),
  consumer: field(fields, "consumer"),
  failedAt: field(fields, "failed_at")
})

// Fails on the first command error in a MULTI or pipeline reply.
const results = (name: string, replies: Replies) =>
  Effect.forEach(replies, ([error, result]) =>
    error ? Effect.fail(new RedisCommandError({ command: name, cause: error })) : Effect.succeed(result))

/** Oldest first: the DLQ is a queue, and the oldest entries are the next to be purged. */
export const list = Effect.fn("DeadLetters.list")(function*(redis: Redis, dlqKey: string, limit: number) {
  // MULTI so the page and the count describe the same moment.
  const replies = yield* exec("XRANGE/XLEN", redis.multi().xrange(dlqKey, "-", "+", "COUNT", limit).xlen(dlqKey))
  const [range, total] = yield* results("XRANGE/XLEN", replies)
  return {
    entries: (range as Array<[string, Array<string>]>).map(toDeadLetter),
    total: total as number
  } satisfies Listing
})

// The XADD and the XDEL run in one script: the entry leaves the DLQ only if the XADD succeeded
// (an error in redis.call aborts the script), there is no window in which it sits in both streams,
// and two operators replaying at once cannot both re-publish it (the second finds it gone).
// Lua strings are byte strings, so binary payloads come back unchanged.
const moveScript = `
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then return 0 end
local fields = entry[1][2]
for i = 1, #fields - 1, 2 do
  if fields[i] == 'payload' then
    if fields[i + 1] == '' then return -1 end
    redis.call('XADD', KEYS[2], '*', 'payload', fields[i + 1])
    redis.call('XDEL', KEYS[1], ARGV[1])
    return 1
  end
end
return -1
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
 * Moves entries back to the source stream. Works a page at a time: `All` walks the DLQ with XRANGE
 * up to the newest id present when it started, so entries that fail again and come back to the
 * DLQ during the run are not replayed in a loop.
 */
export const replay = Effect.fn("DeadLetters.replay")(function*(
  redis: Redis,
  keys: Keys,
  selection: Selection,
  options?: { readonly pageSize?: number }
) {
  const pageSize = options?.pageSize ?? defaultPageSize
  if (selection._tag === "Ids") {
    const invalid = selection.ids.find((id) => !isStreamId(id))
    if (invalid !== undefined) return yield* new InvalidStreamId({ id: invalid })
  }

  let replayed = 0
  let emptyPayload = 0
  const emptyPayloadIds: Array<string> = []
  const notFound: Array<string> = []

  const movePage = (sha: string, ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const batch = redis.pipeline()
      for (const id of ids) batch.evalsha(sha, 2, keys.dlqKey, keys.sourceKey, id)
      const replies = yield* exec("EVALSHA move", batch)
      let failure: Error | undefined
      replies.forEach(([error, outcome], i) => {
        const id = ids[i]!
        if (error) failure ??= error
        else if (outcome === Moved) replayed++
        else if (outcome === NotFound) notFound.push(id)
        else {
          emptyPayload++
          if (emptyPayloadIds.length < emptyPayloadSampleSize) emptyPayloadIds.push(id)
        }
      })
      if (failure) return yield* new RedisCommandError({ command: "EVALSHA move", cause: failure })
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
      // Exclusive start: entries skipped for an empty payload stay behind the cursor.
      start = `(${ids[ids.length - 1]}`
    }
  }).pipe(Effect.mapError((cause) => new ReplayFailed({ replayed, cause })))

  return { replayed, notFound, emptyPayload, emptyPayloadIds } satisfies ReplayResult
})

/** Removes the entries whose id time is before now - olderThanMs. */
export const purgeOlderThan = Effect.fn("DeadLetters.purgeOlderThan")(function*(
  redis: Redis,
  dlqKey: string,
  olderThanMs: number
) {
  const now = yield* Clock.currentTimeMillis
  const cutoff = Math.max(0, now - olderThanMs)
  // Exact MINID (no "~"), so nothing younger than the cutoff goes and nothing older stays.
  const removed = yield* command("XTRIM", () => redis.xtrim(dlqKey, "MINID", "=", cutoff))
  return { removed, cutoff } satisfies PurgeResult
})

const durationPattern = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/
const second = 1000
const minute = 60 * second
const hour = 60 * minute
const day = 24 * hour

/** "30s", "15m", "12h", "7d", or combined largest unit first ("1h30m"), to milliseconds. */
export const parseDuration = (text: string): Either.Either<number, InvalidDuration> => {
  const match = durationPattern.exec(text)
  if (text === "" || match === null) return Either.left(new InvalidDuration({ text }))
  const [, d, h, m, s] = match
  const ms = Number(d ?? 0) * day + Number(h ?? 0) * hour + Number(m ?? 0) * minute + Number(s ?? 0) * second
  return Number.isSafeInteger(ms) ? Either.right(ms) : Either.left(new InvalidDuration({ text }))
}

/** The two largest units: "42s", "3m12s", "2h", "2h5m", "4d", "4d3h". */
export const formatAge = (ms: number): string => {
  const total = Math.max(0, Math.floor(ms / second))
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
