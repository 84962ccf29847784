import { Duration, Effect, Layer, Schedule } from "effect"
import * as Metrics from "./Metrics.js"

export const INTERVAL = Duration.minutes(1)

/**
 * One info line a minute that shows a healthy worker is alive, with what it did since the last one:
 * `records` read, `rate` (records per second), `inserted`, `dead_letters`, and the group's `lag` and
 * `pending` entries as last sampled. Fields are structured annotations, not only words in the message.
 */
export const run = Effect.gen(function*() {
  let previous = yield* Metrics.totals
  yield* Effect.gen(function*() {
    const now = yield* Metrics.totals
    const records = now.consumed - previous.consumed
    yield* Effect.logInfo("alive").pipe(
      Effect.annotateLogs({
        records,
        rate: Math.round(records / Duration.toSeconds(INTERVAL)),
        inserted: now.inserted - previous.inserted,
        dead_letters: now.deadLettered - previous.deadLettered,
        lag: now.groupLag,
        pending: now.groupPending
      })
    )
    previous = now
  }).pipe(Effect.repeat(Schedule.spaced(INTERVAL)), Effect.delay(INTERVAL))
}).pipe(Effect.annotateLogs({ service: "heartbeat" }))

/** The periodic line as a fiber of the layer's scope: it stops when the worker does. */
export const layer = Layer.scopedDiscard(Effect.forkScoped(run))
