import { Duration, Effect, Layer, Option, Schedule } from "effect"
import type { Redis as IORedis } from "ioredis"
import { ProcessorConfig } from "../config/Config.js"
import { call, Redis, type RedisError } from "../consumer/Redis.js"
import { messageOf } from "../ErrorMessage.js"

// Stream retention, opt-in. Redis keeps every entry of a stream until someone trims it; with several consumer
// groups on one stream (another service may read it too), only entries that every group has read and
// acknowledged may go. Trimming happens in one script, so no group can read or claim between the check and
// the trim:
//  - a group's safe bound is its smallest pending id when it holds any (that entry stays), else its
//    last-delivered-id (everything before it was read and acknowledged; that one entry stays, which keeps the
//    script free of id arithmetic);
//  - the trim point is the smallest bound over all groups and the retention cutoff (`<now - retention>-0`);
//  - XTRIM MINID keeps every entry at or above the trim point. Exact (no "~"), so nothing newer goes.
// A stream with no group is left alone: nobody has read anything yet.
// KEYS: stream. ARGV: cutoff id. Returns the number of entries removed.
const TRIM = `
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function less(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if #ams ~= #bms then return #ams < #bms end
  if ams ~= bms then return ams < bms end
  if #aseq ~= #bseq then return #aseq < #bseq end
  return aseq < bseq
end
local bound = ARGV[1]
for _, g in ipairs(groups) do
  local name, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  local summary = redis.call('XPENDING', KEYS[1], name)
  local own = delivered
  if summary[1] > 0 then own = summary[2] end
  if less(own, bound) then bound = own end
end
return redis.call('XTRIM', KEYS[1], 'MINID', bound)`

/**
 * Removes from `stream` the entries older than `cutoffMs` (milliseconds since the epoch, compared with the
 * time in the entry id) that every consumer group of the stream has read and acknowledged. Returns how many
 * entries were removed. Errors: RedisError (the stream missing is not one: nothing to trim).
 */
export const trimStream = (redis: IORedis, stream: string, cutoffMs: number): Effect.Effect<number, RedisError> =>
  call("XTRIM MINID", () => redis.eval(TRIM, 1, stream, `${Math.max(0, Math.floor(cutoffMs))}-0`) as Promise<number>).pipe(
    Effect.catchIf((error) => /no such key/i.test(messageOf(error.cause)), () => Effect.succeed(0))
  )

/** Caps the dead-letter stream near `maxLen` entries, oldest first (approximate: whole macro nodes go). */
export const capDeadLetters = (redis: IORedis, key: string, maxLen: number): Effect.Effect<number, RedisError> =>
  call("XTRIM MAXLEN", () => redis.xtrim(key, "MAXLEN", "~", maxLen))

/** How often retention runs: a tenth of the retention, between 10 s and 5 min. */
export const interval = (retention: Option.Option<Duration.Duration>): Duration.Duration =>
  Option.match(retention, {
    onNone: () => Duration.minutes(1),
    onSome: (r) => Duration.clamp(Duration.divide(r, 10).pipe(Option.getOrElse(() => r)), { minimum: Duration.seconds(10), maximum: Duration.minutes(5) })
  })

/**
 * With STREAM_RETENTION and/or DLQ_MAXLEN set, trims the stream and caps the dead-letter stream periodically,
 * on the commands connection, until the worker stops. A failed run is logged and the next one tried.
 * Several instances may run it at once: each trim is atomic and idempotent.
 */
export const run = Effect.gen(function*() {
  const { client } = yield* Redis
  const config = yield* ProcessorConfig
  if (Option.isNone(config.streamRetention) && Option.isNone(config.dlqMaxLen)) return
  yield* Effect.logInfo("stream retention on").pipe(
    Effect.annotateLogs({
      retention: Option.match(config.streamRetention, { onNone: () => "off", onSome: Duration.format }),
      dlq_maxlen: Option.getOrElse(config.dlqMaxLen, () => "off")
    })
  )
  const once = Effect.gen(function*() {
    if (Option.isSome(config.streamRetention)) {
      const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const removed = yield* trimStream(client, config.stream, now - Duration.toMillis(config.streamRetention.value))
      if (removed > 0) yield* Effect.logDebug("stream trimmed").pipe(Effect.annotateLogs({ removed }))
    }
    if (Option.isSome(config.dlqMaxLen)) yield* capDeadLetters(client, config.deadLetterStream, config.dlqMaxLen.value)
  })
  yield* once.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("stream retention run failed; trying again later", cause)),
    Effect.repeat(Schedule.spaced(interval(config.streamRetention)))
  )
}).pipe(Effect.annotateLogs({ service: "retention" }))

/** Retention as a fiber of the layer's scope: it stops when the worker does. */
export const layer = Layer.scopedDiscard(Effect.forkScoped(run))
