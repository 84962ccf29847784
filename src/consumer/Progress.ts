import { Context, Ref } from "effect"

export interface ProgressState {
  /** Epoch milliseconds (the Effect Clock's) at which the last read or claim completed; 0 before the first. */
  readonly lastRead: Ref.Ref<number>
}

/** A fresh, untouched progress record. */
export const makeProgress = (): ProgressState => ({ lastRead: Ref.unsafeMake(0) })

/**
 * Whether the consumer's read loop is moving: when its last read or claim completed, empty blocking reads
 * included. A loop wedged on a dead connection stops updating it, and so does a pipeline stalled on its
 * writer (reads are pulled, not pushed).
 *
 * A Reference: without a layer of its own every user in the process shares one default instance, so the
 * consumer and the health checks meet without any wiring; a test may provide a fresh one.
 */
export class Progress extends Context.Reference<Progress>()("processor/Progress", {
  defaultValue: makeProgress
}) {}
