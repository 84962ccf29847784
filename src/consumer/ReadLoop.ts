import { Chunk, Clock, Duration, Effect, Option, Schedule, Stream } from "effect"
import type { StreamEntry } from "./Consumer.js"
import type { RedisError } from "./Redis.js"

/** Entries to hand out, and where the next read of the same kind starts. */
export interface Read {
  readonly entries: ReadonlyArray<StreamEntry>
  /** The next cursor: the last id read (own pending), or XAUTOCLAIM's next start ("0-0": the pass is done). */
  readonly cursor: string
}

/**
 * What the read loop asks of the consumer group. RedisConsumer implements it on Redis; the loop's timing is
 * tested with fakes on the TestClock.
 */
export interface GroupReads {
  /**
   * This consumer's own pending entries after `cursor`, without blocking, leaving out those still in flight;
   * the returned cursor equal to `cursor`: none left.
   */
  readonly readOwn: (cursor: string) => Effect.Effect<Read, RedisError>
  /** New entries, blocking up to READ_BLOCK_MS. */
  readonly readNew: Effect.Effect<ReadonlyArray<StreamEntry>, RedisError>
  /** One XAUTOCLAIM step from `cursor`. */
  readonly claim: (cursor: string) => Effect.Effect<Read, RedisError>
  /** Removes consumers that hold nothing and have been quiet for long; never fails. */
  readonly cleanup: Effect.Effect<void>
  /** Called with every failed step before it is retried (logs, recreates a lost group, counts the retry). */
  readonly onError: (error: RedisError) => Effect.Effect<void>
  /** Called after every completed step, with the Clock's time in milliseconds. */
  readonly onProgress: (now: number) => Effect.Effect<void>
}

export interface Timing {
  /** Between the end of one claim pass over the pending list and the start of the next (CLAIM_INTERVAL_MS). */
  readonly claimInterval: Duration.Duration
  /** Between two clean-ups of idle consumers. */
  readonly cleanupInterval: Duration.Duration
  /** Between retries of a failed step. */
  readonly retry: Schedule.Schedule<unknown, RedisError>
}

interface State {
  /** "own": re-reading this consumer's own unacknowledged entries after a start. */
  readonly phase: "own" | "new"
  readonly ownCursor: string
  /** Own pending entries handed out in this pass of the "own" phase. */
  readonly replayed: number
  readonly claimCursor: string
  /** Clock milliseconds. */
  readonly claimDueAt: number
  readonly cleanupDueAt: number
}

/**
 * The consumer's entries as a pull-based stream, one chunk per step: first its own pending entries, then
 * new ones, with a claim pass whenever CLAIM_INTERVAL_MS has passed since the last one ended, and a
 * clean-up of idle consumers on its own interval. Claims and clean-ups are checked between reads, so they
 * start at most READ_BLOCK_MS late. Time is the Effect Clock's (TestClock in tests). After a failed step
 * the loop waits as `timing.retry` says and carries on for as long as the stream is pulled: the entries
 * stay in Redis, so a read that failed loses nothing. The stream never fails.
 */
export const entries = (reads: GroupReads, timing: Timing): Stream.Stream<StreamEntry> => {
  const claimEvery = Duration.toMillis(timing.claimInterval)
  const cleanupEvery = Duration.toMillis(timing.cleanupInterval)

  const step = (state: State): Effect.Effect<readonly [ReadonlyArray<StreamEntry>, State], RedisError> =>
    Effect.gen(function*() {
      if (state.phase === "own") {
        const read = yield* reads.readOwn(state.ownCursor)
        if (read.cursor === state.ownCursor) {
          yield* Effect.logInfo(`${state.replayed} own pending entries replayed; reading new entries`).pipe(
            Effect.annotateLogs({ replayed: state.replayed })
          )
          return [[], { ...state, phase: "new" as const }] as const
        }
        return [read.entries, { ...state, ownCursor: read.cursor, replayed: state.replayed + read.entries.length }] as const
      }
      const now = yield* Clock.currentTimeMillis
      if (now >= state.claimDueAt) {
        const read = yield* reads.claim(state.claimCursor)
        // A pass continues step after step until XAUTOCLAIM says it has covered the whole pending list.
        const done = read.cursor === "0-0"
        const claimDueAt = done ? (yield* Clock.currentTimeMillis) + claimEvery : state.claimDueAt
        return [read.entries, { ...state, claimCursor: read.cursor, claimDueAt }] as const
      }
      if (now >= state.cleanupDueAt) {
        yield* reads.cleanup
        return [[], { ...state, cleanupDueAt: (yield* Clock.currentTimeMillis) + cleanupEvery }] as const
      }
      return [yield* reads.readNew, state] as const
    })

  return Stream.unwrap(Effect.gen(function*() {
    const retry = yield* Schedule.driver(timing.retry)
    // A failed step may have had effects whose reply never came back: a read or a claim that Redis carried
    // out moved entries into this consumer's pending list. So after a failure the loop re-reads its own
    // pending entries (those not in flight) before anything else, as at a start.
    const run = (state: State) =>
      step(state).pipe(
        Effect.tap(() => Effect.zipRight(retry.reset, Effect.flatMap(Clock.currentTimeMillis, reads.onProgress))),
        Effect.catchAll((error) =>
          reads.onError(error).pipe(
            Effect.zipRight(Effect.ignore(retry.next(error))),
            Effect.as([[], { ...state, phase: "own" as const, ownCursor: "0", replayed: 0 }] as const)
          )
        ),
        Effect.map(([chunk, next]) => Option.some([Chunk.unsafeFromArray(chunk as Array<StreamEntry>), next] as const))
      )
    const now = yield* Clock.currentTimeMillis
    return Stream.unfoldChunkEffect<State, StreamEntry, never, never>({
      phase: "own",
      ownCursor: "0",
      replayed: 0,
      claimCursor: "0-0",
      claimDueAt: now + claimEvery,
      cleanupDueAt: now + cleanupEvery
    }, run)
  }))
}
