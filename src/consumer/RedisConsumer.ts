import { isUtf8 } from "node:buffer"
import { Clock, Duration, Effect, Layer, Schedule } from "effect"
import type { Redis as IORedis } from "ioredis"
import * as Backoff from "../Backoff.js"
import { latin1Text } from "../Bytes.js"
import { ProcessorConfig } from "../config/Config.js"
import * as Reason from "../deadletter/Reason.js"
import { messageOf } from "../ErrorMessage.js"
import * as Metrics from "../observability/Metrics.js"
import { Consumer, type DeadLetter, type StreamEntry, type WriteFailure } from "./Consumer.js"
import { InFlight } from "./InFlight.js"
import { Progress } from "../observability/Progress.js"
import * as ReadLoop from "./ReadLoop.js"
import { callOn, Redis, RedisError } from "./Redis.js"

// Entries are read as bytes: ioredis would decode them as UTF-8 itself, silently putting U+FFFD in place of
// invalid bytes (two distinct device ids could become one). The decoder refuses a payload flagged invalidUtf8.
type RawEntry = [id: Buffer, fields: Array<Buffer> | null]
type ReadReply = Array<[key: Buffer, entries: Array<RawEntry>]> | null

/** The hash of failed write attempts per entry id, next to the stream: `<stream>:failures:<group>`. */
export const failuresKey = (stream: string, group: string) => `${stream}:failures:${group}`

// The failures hash expires this long after the last failure recorded in it: what is left behind by entries
// that went some other way (a deleted group, a takeover acknowledged elsewhere) does not stay for ever.
const FAILURES_TTL_SECONDS = 7 * 24 * 3600

// Failed acks, dead letters and failure counts are retried for this long (each try bounded by the command
// deadline), then given up: the entries stay pending and come back through a claim.
const COMMAND_RETRY_WINDOW = Duration.seconds(10)

// Stale ids in the set of entries known to have failures (taken over and acknowledged elsewhere) cost memory
// only; past this many the set starts over.
const KNOWN_FAILED_LIMIT = 100_000

const PAYLOAD_NAME = Buffer.from("payload", "latin1")
// Compared as bytes: no string made per entry for its field names.
const isPayloadName = (name: Buffer): boolean => {
  if (name.length !== PAYLOAD_NAME.length) return false
  for (let i = 0; i < PAYLOAD_NAME.length; i++) if (name[i] !== PAYLOAD_NAME[i]) return false
  return true
}

/** Entries with their payload, and the ids of entries deleted from the stream (a null field list). */
// Replies are read as bytes: a payload that is not valid UTF-8 is flagged (and dead-lettered) instead of being
// decoded with U+FFFD in place of its bad bytes, which would make distinct device ids equal.
const split = (raw: ReadonlyArray<RawEntry>) => {
  const entries: Array<StreamEntry> = []
  const deleted: Array<string> = []
  for (let r = 0; r < raw.length; r++) {
    const [idBytes, fields] = raw[r]!
    // Redis's ids are ASCII: latin1 reads them as they are, without toString's argument handling.
    const id = latin1Text(idBytes, 0, idBytes.length)
    if (fields === null) {
      deleted.push(id)
      continue
    }
    let bytes: Buffer | undefined
    for (let f = 0; f < fields.length; f += 2) {
      if (isPayloadName(fields[f]!)) {
        bytes = fields[f + 1]!
        break
      }
    }
    entries.push(bytes === undefined ? { id, payload: undefined } : new BytesEntry(id, bytes))
  }
  return { entries, deleted }
}

/**
 * An entry with a payload, read as bytes. Its text and UTF-8 check are made when first asked for: the decoder
 * scans the bytes themselves and asks only for the payloads its fast path does not read (src/position/decode.ts).
 */
class BytesEntry implements StreamEntry {
  #payload: string | undefined = undefined

  constructor(readonly id: string, readonly payloadBytes: Buffer) {}

  get payload(): string {
    return (this.#payload ??= this.payloadBytes.toString("utf8"))
  }

  get invalidUtf8(): true | undefined {
    return isUtf8(this.payloadBytes) ? undefined : true
  }
}

// Acknowledges each entry and copies it to the dead-letter stream only if that acknowledgement took it out
// of the pending list: atomic, and an entry two consumers both gave up on is dead-lettered once. The copy
// holds every field of the source entry, read here from the stream, then the dead-letter fields. An entry
// already gone from the pending list and the stream (reason "trimmed", dropped by XAUTOCLAIM) is recorded
// by its id alone. Its failure count goes with it.
// KEYS: source, dead letters, failures. ARGV: group, consumer, failed_at, then (id, reason, error) triples.
const DEAD_LETTER = `
local copied = 0
for i = 4, #ARGV, 3 do
  local reason = ARGV[i + 1]
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 or reason == 'trimmed' then
    local error = ARGV[i + 2]
    local fields = {}
    local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #found == 1 then
      fields = found[1][2]
    else
      fields = { 'payload', '' }
      if reason ~= 'trimmed' then error = error .. ' (the entry was trimmed from the stream: payload lost)' end
    end
    local args = { KEYS[2], '*' }
    for f = 1, #fields do args[#args + 1] = fields[f] end
    for _, v in ipairs({ 'error', error, 'reason', reason, 'source_id', ARGV[i], 'consumer', ARGV[2], 'failed_at', ARGV[3] }) do
      args[#args + 1] = v
    end
    redis.call('XADD', unpack(args))
    copied = copied + 1
  end
  redis.call('HDEL', KEYS[3], ARGV[i], ARGV[i] .. ':error')
end
return copied`

// One failed write attempt per entry: field <id> counts them, field <id>:error keeps the last error.
// KEYS: failures. ARGV: ttl (seconds), then (id, error) pairs. Returns the new counts, in order.
const RECORD_FAILURES = `
local counts = {}
for i = 2, #ARGV, 2 do
  counts[#counts + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
  redis.call('HSET', KEYS[1], ARGV[i] .. ':error', ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return counts`

// Deletes consumers that hold nothing and have been quiet for long. Atomic, so a consumer that reads
// between the check and the delete cannot lose its pending entries (DELCONSUMER drops them).
// KEYS: source. ARGV: group, this consumer, idle limit (ms).
const DELETE_IDLE_CONSUMERS = `
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name ~= ARGV[2] and pending == 0 and idle > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed[#removed + 1] = name
  end
end
return removed`

type Script = (...args: Array<string | number>) => Promise<unknown>

// Registered once per connection (ioredis defineCommand): EVALSHA, with EVAL only when Redis has lost the
// script (a restart, SCRIPT FLUSH).
const defineScripts = (client: IORedis) => {
  const define = (name: string, numberOfKeys: number, lua: string): Script => {
    const command = `processor_${name}`
    client.defineCommand(command, { numberOfKeys, lua })
    return (...args) => (client as unknown as Record<string, Script>)[command]!(...args)
  }
  return {
    deadLetter: define("deadLetter", 3, DEAD_LETTER),
    recordFailures: define("recordFailures", 1, RECORD_FAILURES),
    deleteIdleConsumers: define("deleteIdleConsumers", 1, DELETE_IDLE_CONSUMERS)
  }
}

const isNoGroup = (error: RedisError) => messageOf(error.cause).includes("NOGROUP")

export const make = Effect.gen(function*() {
  const { client, reader } = yield* Redis
  const config = yield* ProcessorConfig
  const progress = yield* Progress
  const { stream, group, consumer, readCount, maxDeliveries } = config
  const failures = failuresKey(stream, group)
  const blockMs = Duration.toMillis(config.readBlock)
  const claimIdleMs = Duration.toMillis(config.claimIdle)
  const scripts = defineScripts(client)
  const call = <A>(op: string, f: () => Promise<A>) => callOn(client, op, f)

  // Entries handed out and not yet acknowledged, dead-lettered or failed: a claim never hands them out
  // again (XAUTOCLAIM does take this consumer's own idle entries, a slow write's included). Not a Set: ids
  // leave in nearly the order they came, which InFlight tracks without hashing each one (twice per record).
  const inFlight = new InFlight()
  // Entries known to have failure counts, so an ack removes their counts in the same MULTI: acks of entries
  // that never failed (nearly all) cost nothing more.
  const knownFailed = new Set<string>()

  const retrying = <A>(effect: Effect.Effect<A, RedisError>) =>
    effect.pipe(
      Effect.tapError(() => Metrics.retry("redis")),
      Effect.retry(Backoff.whileRunning(config.retryMaxBackoff).pipe(Schedule.upTo(COMMAND_RETRY_WINDOW)))
    )

  const createGroup = call("XGROUP CREATE", () => client.xgroup("CREATE", stream, group, "0", "MKSTREAM")).pipe(
    Effect.as(true),
    Effect.catchIf((e) => messageOf(e.cause).includes("BUSYGROUP"), () => Effect.succeed(false))
  )
  if (yield* createGroup) yield* Effect.logInfo(`created consumer group ${group} on stream ${stream}, reading from its start`)

  // The stream was deleted, or Redis flushed or restarted without persistence: the group is made again
  // (by whichever instance gets there first) and says so once, with where it reads from.
  const recreateGroup = Effect.gen(function*() {
    if (!(yield* createGroup)) return
    knownFailed.clear()
    const [length, first] = yield* call("XLEN", async () => {
      const results = (await client.pipeline().xlen(stream).xrange(stream, "-", "+", "COUNT", 1).del(failures).exec()) ?? []
      const firstEntry = (results[1]?.[1] as Array<[string, Array<string>]> | undefined)?.[0]
      return [Number(results[0]?.[1] ?? 0), firstEntry?.[0]] as const
    }).pipe(Effect.orElseSucceed(() => [0, undefined] as const))
    yield* Effect.logWarning(
      `consumer group ${group} of stream ${stream} was gone (stream deleted, or Redis flushed or restarted without ` +
        `persistence) and has been recreated; reading from the start of the stream (${length} entries` +
        `${first === undefined ? "" : `, first ${first}`}); unprocessed entries of the old stream are lost`
    )
  })

  const ack = (ids: ReadonlyArray<string>) => {
    if (ids.length === 0) return Effect.void
    return Effect.suspend(() => {
      const failed = knownFailed.size === 0 ? [] : ids.filter((id) => knownFailed.has(id))
      const send = failed.length === 0
        ? call("XACK", () => client.xack(stream, group, ...ids))
        : call("XACK", async () => {
          const results = await client.multi()
            .xack(stream, group, ...ids)
            .hdel(failures, ...failed.flatMap((id) => [id, `${id}:error`]))
            .exec()
          const error = results?.find(([e]) => e !== null)?.[0]
          if (error) throw error
        })
      return retrying(send).pipe(
        Effect.tap(() => Effect.sync(() => failed.forEach((id) => knownFailed.delete(id))))
      )
    }).pipe(
      Effect.asVoid,
      Effect.ensuring(Effect.sync(() => {
        for (let i = 0; i < ids.length; i++) inFlight.delete(ids[i]!)
      }))
    )
  }

  const deadLetter = (letters: ReadonlyArray<DeadLetter>) => {
    if (letters.length === 0) return Effect.void
    return Clock.currentTimeMillis.pipe(
      Effect.flatMap((now) => {
        const args: Array<string> = [group, consumer, new Date(now).toISOString()]
        for (const l of letters) args.push(l.id, Reason.label(l.reason), Reason.render(l.reason))
        return retrying(call("dead-letter", () => scripts.deadLetter(stream, config.deadLetterStream, failures, ...args)))
      }),
      Effect.zipRight(Metrics.deadLettered(letters)),
      Effect.tap(() => Effect.sync(() => letters.forEach((l) => knownFailed.delete(l.id)))),
      Effect.ensuring(Effect.sync(() => letters.forEach((l) => inFlight.delete(l.id))))
    )
  }

  const poison = (letters: ReadonlyArray<DeadLetter>) =>
    letters.length === 0 ? Effect.void : Effect.zipRight(
      Effect.logWarning(`dead-lettering ${letters.length} entries over MAX_DELIVERIES=${maxDeliveries} failed writes; first: ${letters[0]!.id}: ${Reason.render(letters[0]!.reason)}`),
      deadLetter(letters)
    )

  const recordFailures = (failed: ReadonlyArray<WriteFailure>) => {
    if (failed.length === 0) return Effect.void
    const args: Array<string | number> = [FAILURES_TTL_SECONDS]
    for (const f of failed) args.push(f.id, f.error.slice(0, 300))
    return retrying(call("record failures", () => scripts.recordFailures(failures, ...args) as Promise<Array<number>>)).pipe(
      Effect.flatMap((counts) => {
        if (knownFailed.size > KNOWN_FAILED_LIMIT) knownFailed.clear()
        const letters: Array<DeadLetter> = []
        failed.forEach((f, i) => {
          knownFailed.add(f.id)
          const count = Number(counts[i])
          if (count >= maxDeliveries) {
            letters.push({ id: f.id, reason: Reason.Reason.Poison({ failures: count, limit: maxDeliveries, lastError: f.error }) })
          }
        })
        return poison(letters)
      }),
      Effect.ensuring(Effect.sync(() => failed.forEach((f) => inFlight.delete(f.id))))
    )
  }

  // Entries that come back (own pending after a start, claims) are screened by their count of failed
  // writes; delivery counts play no part, since restarts and takeovers raise them too.
  const screen = (entries: ReadonlyArray<StreamEntry>) =>
    Effect.gen(function*() {
      if (entries.length === 0) return entries
      const values = yield* call("HMGET", () => client.hmget(failures, ...entries.flatMap((e) => [e.id, `${e.id}:error`])))
      const letters: Array<DeadLetter> = []
      const keep: Array<StreamEntry> = []
      entries.forEach((entry, i) => {
        const count = Number(values[2 * i] ?? 0)
        if (count > 0) knownFailed.add(entry.id)
        if (count >= maxDeliveries) {
          const lastError = values[2 * i + 1] ?? "unknown"
          letters.push({ id: entry.id, reason: Reason.Reason.Poison({ failures: count, limit: maxDeliveries, lastError }) })
        } else keep.push(entry)
      })
      yield* poison(letters)
      return keep
    })

  // Every id that leaves the pending list leaves a trace: a deleted entry gets a dead letter with its id.
  const trimmed = (ids: ReadonlyArray<string>, where: string) =>
    ids.length === 0 ? Effect.void : Effect.zipRight(
      Effect.logWarning(`${ids.length} pending entries were deleted or trimmed from the stream before being acknowledged (${where}); dead-lettered as trimmed; first: ${ids[0]}`),
      deadLetter(ids.map((id) => ({ id, reason: Reason.Reason.Trimmed() }))).pipe(
        Effect.tapError((error) => Effect.logError(`dead-lettering ${ids.length} trimmed entries failed, they leave no other trace: ${ids.slice(0, 20).join(", ")}: ${error.message}`))
      )
    )

  const handOut = (entries: ReadonlyArray<StreamEntry>) => {
    for (let i = 0; i < entries.length; i++) inFlight.add(entries[i]!.id)
    return entries
  }

  const readGroup = (id: string, block: boolean) =>
    callOn(reader, "XREADGROUP", () =>
      (block
        ? reader.callBuffer("XREADGROUP", ["GROUP", group, consumer, "COUNT", readCount, "BLOCK", blockMs, "STREAMS", stream, id])
        : reader.callBuffer("XREADGROUP", ["GROUP", group, consumer, "COUNT", readCount, "STREAMS", stream, id])) as Promise<ReadReply>
    ).pipe(Effect.map((reply) => reply?.[0]?.[1] ?? []))

  let failing = 0

  const reads: ReadLoop.GroupReads = {
    readOwn: (cursor) =>
      Effect.gen(function*() {
        const raw = yield* readGroup(cursor, false)
        if (raw.length === 0) return { entries: [], cursor }
        const { deleted, entries } = split(raw)
        yield* trimmed(deleted, "own pending entries")
        const waiting = entries.filter((e) => !inFlight.has(e.id))
        return { entries: handOut(yield* screen(waiting)), cursor: raw[raw.length - 1]![0].toString("latin1") }
      }),
    readNew: Effect.map(readGroup(">", true), (raw) => handOut(split(raw).entries)),
    claim: (cursor) =>
      Effect.gen(function*() {
        const [nextBytes, raw, gone] = (yield* call("XAUTOCLAIM", () =>
          client.callBuffer("XAUTOCLAIM", [stream, group, consumer, claimIdleMs, cursor, "COUNT", readCount])
        )) as [Buffer, Array<RawEntry>, Array<Buffer> | undefined]
        const next = nextBytes.toString("latin1")
        const { deleted, entries } = split(raw)
        // Redis 7 drops deleted entries from the pending list and names them in a third element; 6.2 returned
        // them with no fields and kept them pending.
        yield* trimmed([...(gone ?? []).map((id) => id.toString("latin1")), ...deleted], "found by a claim")
        const claimed = entries.filter((e) => !inFlight.has(e.id))
        if (claimed.length > 0) {
          yield* Metrics.reclaimed(claimed.length)
          yield* Effect.logInfo(`reclaimed ${claimed.length} idle pending entries`)
        }
        return { entries: handOut(yield* screen(claimed)), cursor: next }
      }),
    cleanup: call("delete idle consumers", () =>
      scripts.deleteIdleConsumers(stream, group, consumer, Duration.toMillis(config.consumerIdleDelete)) as Promise<Array<string>>
    ).pipe(
      Effect.tap((removed) => removed.length > 0 ? Effect.logInfo(`removed idle consumers without pending entries: ${removed.join(", ")}`) : Effect.void),
      Effect.catchAll((error) => Effect.logWarning(error.message))
    ),
    onError: (error) =>
      Effect.gen(function*() {
        yield* Metrics.retry("redis")
        if (isNoGroup(error)) return yield* recreateGroup.pipe(Effect.catchAll((e) => Effect.logWarning(e.message)))
        // Logged once per run of failures, not once per retry.
        if (failing++ === 0) yield* Effect.logWarning(`${error.message}; retrying until Redis answers`)
      }),
    onProgress: () =>
      Effect.zipRight(
        failing > 0 ? Effect.logInfo(`reading again after ${failing} failed attempts`) : Effect.void,
        Effect.sync(() => (failing = 0))
      ).pipe(Effect.zipRight(progress.markRead))
  }

  const entries = ReadLoop.entries(reads, {
    claimInterval: config.claimInterval,
    cleanupInterval: config.claimInterval,
    retry: Backoff.whileRunning(config.retryMaxBackoff)
  })
  // An entry in flight longer than CLAIM_IDLE_MS (a write waiting on a lock, a slow statement) would look
  // abandoned to the other instances, whose claim would process it a second time. While this instance holds
  // it, it says so: every third of CLAIM_IDLE_MS, XCLAIM … JUSTID to itself resets the idle time of its entries
  // in flight (JUSTID leaves the delivery count alone; acknowledged ids are skipped by Redis).
  const keepInFlight = Effect.suspend(() => {
    if (inFlight.size === 0) return Effect.void
    const ids = inFlight.toArray()
    return call("XCLAIM JUSTID", () =>
      client.xclaim(stream, group, consumer, 0, ...ids, "JUSTID") as Promise<Array<string>>
    ).pipe(

      Effect.catchAll((error) => Effect.logWarning(`keeping entries in flight from being claimed failed: ${error.message}`))
    )
  })
  yield* keepInFlight.pipe(
    Effect.repeat(Schedule.spaced(Duration.millis(Math.max(100, Math.floor(claimIdleMs / 3))))),
    Effect.forkScoped
  )

  yield* Effect.logInfo(`consumer started on stream ${stream} group ${group} consumer ${consumer}`)

  return Consumer.of({ entries, ack, deadLetter, recordFailures })
})

export const layer = Layer.scoped(Consumer, make)

export { RedisError }
