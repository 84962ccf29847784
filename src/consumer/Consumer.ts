import { Context, type Effect, type Stream } from "effect"
import type { Reason } from "../deadletter/Reason.js"
import type { RedisError } from "./Redis.js"

/** One stream entry as read from the group. */
export interface StreamEntry {
  readonly id: string
  /** The entry's `payload` field; undefined when it has none. */
  readonly payload: string | undefined
}

/**
 * An entry that will not be retried, and why. The dead-letter copy takes every field of the entry from the
 * stream itself (in the same atomic step as its XACK), so records on their way need not carry their payload.
 */
export interface DeadLetter {
  readonly id: string
  readonly reason: Reason
}

/**
 * The processor's view of its consumer group. The pipeline depends on this, not on Redis, so its
 * ACK logic is tested with an in-memory implementation (test/support/MemoryConsumer.ts).
 */
export class Consumer extends Context.Tag("processor/Consumer")<Consumer, {
  /**
   * Entries for this consumer, one chunk per read: first its own pending entries (left by a previous run),
   * then new ones, interleaved with entries reclaimed from consumers that went quiet. Entries delivered
   * more than MAX_DELIVERIES times never appear here: they are dead-lettered on the way.
   * Pulling is what reads: a stalled pipeline reads (and claims) nothing.
   */
  readonly entries: Stream.Stream<StreamEntry, RedisError>
  readonly ack: (ids: ReadonlyArray<string>) => Effect.Effect<void, RedisError>
  /** Copies entries to the dead-letter stream, then acknowledges them. */
  readonly deadLetter: (letters: ReadonlyArray<DeadLetter>) => Effect.Effect<void, RedisError>
}>() {}
