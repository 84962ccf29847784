import { Context, type Effect, type Stream } from "effect"
import type { Reason } from "../deadletter/Reason.js"
import type { RedisError } from "./Redis.js"

/** One stream entry as read from the group. */
export interface StreamEntry {
  readonly id: string
  /** The entry's `payload` field as text; undefined when it has none. */
  readonly payload: string | undefined
  /** The payload's bytes are not valid UTF-8 (`payload` has U+FFFD in their place): the entry is invalid. */
  readonly invalidUtf8?: true | undefined
  /**
   * The `payload` field's bytes as Redis returned them, when they were read as bytes: the decoder scans them
   * first (src/position/scan.ts), so a valid entry's text need not be made. `payload` and `invalidUtf8` say
   * the same as ever.
   */
  readonly payloadBytes?: Buffer | undefined
}

/**
 * The milliseconds part of a stream entry id ("<ms>-<seq>"): when Redis accepted the entry (or the time an
 * explicit id claimed). NaN for a string of another form.
 */
export const streamIdTime = (id: string): number => {
  // Runs twice per record (the skew check, the lag): Redis's own ids (at most 15 digits before the dash) are
  // read in place, without a slice; any other id as Number(slice) reads it.
  let ms = 0
  for (let i = 0; i < id.length && i <= 15; i++) {
    const c = id.charCodeAt(i)
    if (c === 45) {
      if (i === 0) break
      return ms
    }
    if (c < 48 || c > 57) break
    ms = ms * 10 + (c - 48)
  }
  const dash = id.indexOf("-")
  return dash > 0 ? Number(id.slice(0, dash)) : NaN
}

/**
 * An entry that will not be retried, and why. The dead-letter copy takes every field of the entry from the
 * stream itself (in the same atomic step as its XACK), so records on their way need not carry their payload.
 * What the dead-letter stream then holds is DeadLetters.ts's DeadLetterEntry.
 */
export interface DeadLetter {
  readonly id: string
  readonly reason: Reason
}

/** One write attempt that failed for a reason that is not transient (the writer's "other" or systemic errors). */
export interface WriteFailure {
  readonly id: string
  /** What the database said; kept as the last error of the entry and quoted in its poison dead letter. */
  readonly error: string
}

/**
 * The processor's view of its consumer group. The pipeline depends on this, not on Redis, so its
 * ACK logic is tested with an in-memory implementation (test/support/MemoryConsumer.ts).
 */
export class Consumer extends Context.Tag("processor/Consumer")<Consumer, {
  /**
   * Entries for this consumer, one chunk per read: first its own pending entries (left by a previous run),
   * then new ones, interleaved with entries reclaimed from consumers that went quiet (never one that this
   * instance still has in flight). Entries whose writes failed MAX_DELIVERIES times never appear here, nor do
   * entries deleted from the stream while pending: both are dead-lettered on the way.
   * Pulling is what reads: a stalled pipeline reads (and claims) nothing.
   *
   * Every entry handed out is in flight until it is acknowledged, dead-lettered or its failure recorded.
   */
  readonly entries: Stream.Stream<StreamEntry, RedisError>
  readonly ack: (ids: ReadonlyArray<string>) => Effect.Effect<void, RedisError>
  /** Copies entries to the dead-letter stream, then acknowledges them. */
  readonly deadLetter: (letters: ReadonlyArray<DeadLetter>) => Effect.Effect<void, RedisError>
  /**
   * Counts one failed write attempt for each entry, which stays pending and comes back through a claim. An
   * entry whose count reaches MAX_DELIVERIES is dead-lettered as poison at once. Only non-transient failures
   * belong here: restarts, takeovers and transient errors never count.
   */
  readonly recordFailures: (failures: ReadonlyArray<WriteFailure>) => Effect.Effect<void, RedisError>
}>() {}
