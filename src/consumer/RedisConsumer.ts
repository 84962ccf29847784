import { Chunk, Duration, Effect, Layer, Option, Stream } from "effect"
import * as Backoff from "../Backoff.js"
import { ProcessorConfig } from "../config/Config.js"
import * as Reason from "../deadletter/Reason.js"
import * as Metrics from "../observability/Metrics.js"
import { Consumer, type DeadLetter, type StreamEntry } from "./Consumer.js"
import { call, Redis, RedisError } from "./Redis.js"

type RawEntry = [id: string, fields: Array<string> | null]
type ReadReply = Array<[key: string, entries: Array<RawEntry>]> | null

const toEntries = (raw: ReadonlyArray<RawEntry>): Array<StreamEntry> => {
  const out = new Array<StreamEntry>(raw.length)
  for (let i = 0; i < raw.length; i++) {
    const [id, fields] = raw[i]!
    let payload: string | undefined
    if (fields !== null) {
      for (let f = 0; f < fields.length; f += 2) {
        if (fields[f] === "payload") {
          payload = fields[f + 1]
          break
        }
      }
    }
    out[i] = { id, payload }
  }
  return out
}

// Acknowledges each entry and copies it to the dead-letter stream only if that acknowledgement took it out
// of the pending list: atomic, and an entry two consumers both gave up on is dead-lettered once. The copy
// holds every field of the source entry, read here from the stream, then the dead-letter fields. An entry
// already gone from the pending list and the stream (reason "trimmed") is recorded by its id alone.
// KEYS: source, dead letters. ARGV: group, consumer, failed_at, then (id, reason, error) triples.
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
end
return copied`

// Deletes consumers that hold nothing and have been quiet for long. Atomic, so a consumer that reads
// between the check and the delete cannot lose its pending entries (DELCONSUMER drops them).
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

interface ReadState {
  /** "pending": re-reading this consumer's own unacknowledged entries after a restart. */
  readonly phase: "pending" | "new"
  readonly pendingCursor: string
  readonly claimCursor: string
  readonly nextClaimAt: number
}

export const make = Effect.gen(function*() {
  const { client, reader } = yield* Redis
  const config = yield* ProcessorConfig
  const { stream, group, consumer, readCount, maxDeliveries } = config
  const blockMs = Duration.toMillis(config.readBlock)
  const claimIdleMs = Duration.toMillis(config.claimIdle)
  const claimIntervalMs = Duration.toMillis(config.claimInterval)

  const ensureGroup = call("XGROUP CREATE", () => client.xgroup("CREATE", stream, group, "0", "MKSTREAM")).pipe(
    Effect.asVoid,
    Effect.catchIf((e) => String(e.cause).includes("BUSYGROUP"), () => Effect.void)
  )
  yield* ensureGroup

  const ack = (ids: ReadonlyArray<string>) =>
    ids.length === 0 ? Effect.void : call("XACK", () => client.xack(stream, group, ...ids)).pipe(Effect.asVoid)

  const deadLetter = (letters: ReadonlyArray<DeadLetter>) => {
    if (letters.length === 0) return Effect.void
    const args: Array<string> = [consumer, new Date().toISOString()]
    for (const l of letters) args.push(l.id, Reason.label(l.reason), Reason.render(l.reason))
    return call("dead-letter", () =>
      client.eval(DEAD_LETTER, 2, stream, config.deadLetterStream, group, ...args) as Promise<number>
    ).pipe(Effect.tap(() => Metrics.deadLettered(letters)))
  }

  // Entries that were delivered before (own pending, reclaimed) carry a delivery count; past the limit they
  // are poison: dead-letter them instead of handing them out again.
  const screenDeliveries = (entries: Array<StreamEntry>) =>
    Effect.gen(function*() {
      if (entries.length === 0) return entries
      const first = entries[0]!.id
      const last = entries[entries.length - 1]!.id
      const pending = (yield* call("XPENDING", () =>
        client.xpending(stream, group, first, last, entries.length, consumer)
      )) as Array<[string, string, number, number]>
      const counts = new Map(pending.map(([id, , , deliveries]) => [id, deliveries]))
      // Reclaimed entries need not be adjacent in this consumer's pending list: its own entries in between
      // count against COUNT, so some may be missing from the reply. Those are looked up one by one.
      const missing = entries.filter((e) => !counts.has(e.id))
      if (missing.length > 0) {
        const replies = yield* call("XPENDING", async () => {
          const pipeline = client.pipeline()
          for (const e of missing) pipeline.xpending(stream, group, e.id, e.id, 1)
          const results = (await pipeline.exec()) ?? []
          const failed = results.find(([error]) => error !== null)
          if (failed !== undefined) throw failed[0]
          return results.map(([, rows]) => rows as Array<[string, string, number, number]>)
        })
        for (const rows of replies) for (const [id, , , deliveries] of rows) counts.set(id, deliveries)
      }
      const poison: Array<DeadLetter> = []
      const keep: Array<StreamEntry> = []
      for (const entry of entries) {
        const deliveries = counts.get(entry.id) ?? 0
        if (deliveries > maxDeliveries) {
          poison.push({
            id: entry.id,
            reason: Reason.Reason.Poison({ failures: deliveries - 1, limit: maxDeliveries, lastError: "unknown (counted by deliveries)" })
          })
        } else keep.push(entry)
      }
      if (poison.length > 0) {
        yield* Effect.logWarning(`dead-lettering ${poison.length} entries over MAX_DELIVERIES`)
        yield* deadLetter(poison)
      }
      return keep
    })

  const readGroup = (id: string, block: boolean) =>
    call("XREADGROUP", () =>
      (block
        ? reader.xreadgroup("GROUP", group, consumer, "COUNT", readCount, "BLOCK", blockMs, "STREAMS", stream, id)
        : reader.xreadgroup("GROUP", group, consumer, "COUNT", readCount, "STREAMS", stream, id)) as Promise<ReadReply>
    ).pipe(Effect.map((reply) => toEntries(reply?.[0]?.[1] ?? [])))

  const deleteIdleConsumers = call("delete idle consumers", () =>
    client.eval(DELETE_IDLE_CONSUMERS, 1, stream, group, consumer, Duration.toMillis(config.consumerIdleDelete)) as Promise<Array<string>>
  ).pipe(
    Effect.tap((removed) => removed.length > 0 ? Effect.logInfo(`removed idle consumers without pending entries: ${removed.join(", ")}`) : Effect.void),
    Effect.catchAll((error) => Effect.logWarning(error.message))
  )

  // XAUTOCLAIM scans the pending list from a cursor; carrying it across calls covers the whole list,
  // not only its first COUNT×10 entries. A finished pass waits CLAIM_INTERVAL_MS for the next.
  const claim = (state: ReadState) =>
    Effect.gen(function*() {
      const [next, raw] = (yield* call("XAUTOCLAIM", () =>
        client.xautoclaim(stream, group, consumer, claimIdleMs, state.claimCursor, "COUNT", readCount)
      )) as [string, Array<RawEntry>, Array<string>]
      const claimed = toEntries(raw)
      if (claimed.length > 0) {
        yield* Metrics.reclaimed(claimed.length)
        yield* Effect.logInfo(`reclaimed ${claimed.length} idle pending entries`)
      }
      const passDone = next === "0-0"
      if (passDone) yield* deleteIdleConsumers
      const entries = yield* screenDeliveries(claimed)
      return [entries, {
        ...state,
        claimCursor: next,
        nextClaimAt: passDone ? Date.now() + claimIntervalMs : state.nextClaimAt
      }] as const
    })

  const step = (state: ReadState) =>
    Effect.gen(function*() {
      if (state.phase === "pending") {
        const entries = yield* readGroup(state.pendingCursor, false)
        if (entries.length === 0) {
          yield* Effect.logInfo("own pending entries replayed; reading new entries")
          return [[] as Array<StreamEntry>, { ...state, phase: "new" as const }] as const
        }
        const next = { ...state, pendingCursor: entries[entries.length - 1]!.id }
        return [yield* screenDeliveries(entries), next] as const
      }
      if (Date.now() >= state.nextClaimAt) return yield* claim(state)
      return [yield* readGroup(">", true), state] as const
    }).pipe(
      // A deleted stream or group (NOGROUP) is recreated; other failures are retried: the entries stay
      // in Redis, so a read that failed loses nothing.
      Effect.tapError((error) =>
        String(error.cause).includes("NOGROUP") ? ensureGroup.pipe(Effect.ignore) : Effect.logWarning(error.message)
      ),
      Effect.retry(Backoff.whileRunning(config.retryMaxBackoff)),
      Effect.map(([entries, next]) => Option.some([Chunk.unsafeFromArray(entries), next] as const))
    )

  const entries: Stream.Stream<StreamEntry, RedisError> = Stream.unfoldChunkEffect<ReadState, StreamEntry, RedisError, never>(
    { phase: "pending", pendingCursor: "0", claimCursor: "0-0", nextClaimAt: Date.now() + claimIntervalMs },
    step
  )
  yield* Effect.logInfo(`consumer started on stream ${stream} group ${group} consumer ${consumer}`)

  return Consumer.of({ entries, ack, deadLetter })
})

export const layer = Layer.effect(Consumer, make)

export { RedisError }
