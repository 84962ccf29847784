import { Clock, Context, Effect, Layer, Ref } from "effect"

/** What the pipeline last did, in epoch milliseconds of Effect's Clock. */
export interface ProgressSnapshot {
  /** The last read that returned (entries or not). */
  readonly lastRead: number
  /** The last batch written and acknowledged, or when the writer last got work after having none. */
  readonly lastWritten: number
  /** Records past the read that the writer has not finished yet. */
  readonly inFlight: number
}

export interface ProgressService {
  /** A read returned. Called by the consumer's read loop for every read, claim and clean-up step. */
  readonly markRead: Effect.Effect<void>
  /** `records` records now wait for the writer. */
  readonly markQueued: (records: number) => Effect.Effect<void>
  /** A batch of `records` records was written and its entries acknowledged (or left for retry). */
  readonly markWritten: (records: number) => Effect.Effect<void>
  readonly snapshot: Effect.Effect<ProgressSnapshot>
}

const untracked: ProgressService = {
  markRead: Effect.void,
  markQueued: () => Effect.void,
  markWritten: () => Effect.void,
  snapshot: Effect.succeed({ lastRead: 0, lastWritten: 0, inFlight: 0 })
}

/**
 * The pipeline's progress, for readiness and liveness (a probe that only pings the servers says nothing
 * about a stuck loop). Without the layer (unit tests of the pipeline) marks are not recorded.
 */
export class Progress extends Context.Reference<Progress>()("processor/Progress", {
  defaultValue: (): ProgressService => untracked
}) {
  static readonly make = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const state = yield* Ref.make<ProgressSnapshot>({ lastRead: now, lastWritten: now, inFlight: 0 })
    const stamp = (f: (s: ProgressSnapshot, now: number) => ProgressSnapshot) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(state, (s) => f(s, now)))
    return {
      markRead: stamp((s, now) => ({ ...s, lastRead: now })),
      // An idle writer's clock starts when it gets work: a write long ago is no stall.
      markQueued: (records) =>
        records <= 0 ? Effect.void : stamp((s, now) => ({ ...s, lastWritten: s.inFlight === 0 ? now : s.lastWritten, inFlight: s.inFlight + records })),
      markWritten: (records) => stamp((s, now) => ({ ...s, lastWritten: now, inFlight: Math.max(0, s.inFlight - records) })),
      snapshot: Ref.get(state)
    } satisfies ProgressService
  })

  static readonly layer = Layer.effect(Progress, Progress.make)
}

/**
 * Whether the pipeline is stalled: records wait for the writer and none was written for `limitMs`, or
 * entries wait unread in the stream (`unread`, the group's lag) and nothing was read for `limitMs`.
 * The reason, or undefined when it is not stalled; no data in it.
 */
export const stall = (p: ProgressSnapshot, unread: number, now: number, limitMs: number): string | undefined => {
  const seconds = (since: number) => Math.floor((now - since) / 1000)
  if (p.inFlight > 0 && now - p.lastWritten > limitMs) {
    return `no batch written for ${seconds(p.lastWritten)} s while ${p.inFlight} records wait for the writer`
  }
  if (unread > 0 && now - p.lastRead > limitMs) return `no read for ${seconds(p.lastRead)} s while ${unread} entries wait unread`
  return undefined
}
