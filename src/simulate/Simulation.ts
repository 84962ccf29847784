import { Clock, Effect, Ref } from "effect"
import type { Redis as IORedis } from "ioredis"
import { drain, emit, makeFleet } from "./Fleet.js"
import { makePayloadEncoder } from "./Payload.js"
import { publish } from "./Publish.js"

// A live simulation: a fleet publishing to a stream in real time at a given rate, for a given duration.

export interface SimulationOptions {
  readonly devices: number
  /** Records per second per device. */
  readonly rate: number
  /** Seconds. */
  readonly duration: number
  /** Shares in [0, 1), see FleetOptions. */
  readonly duplicates: number
  readonly late: number
  readonly seed: number
  readonly stream: string
}

/** What a run has done so far; `sent` counts entries Redis confirmed (records, resends and late ones). */
export interface Tally {
  /** Epoch milliseconds. */
  readonly startedAt: number
  readonly sent: number
  readonly positions: number
  readonly duplicates: number
  readonly late: number
}

export const emptyTally = (startedAt: number): Tally => ({ startedAt, sent: 0, positions: 0, duplicates: 0, late: 0 })

const BATCH_SIZE = 1000
// Waking at most every 10 ms keeps batches (and pipelines) large at high rates.
const MIN_TICK_MS = 10

/**
 * Publishes `devices × rate` records a second for `duration` seconds, then what devices still hold back, keeping
 * `tally` current after every batch (read it for progress, and for a summary after a failure or an interruption).
 * Fails with PublishError when Redis refuses or loses a batch.
 */
export const run = (redis: IORedis, options: SimulationOptions, tally: Ref.Ref<Tally>) =>
  Effect.gen(function*() {
    const perSecond = options.devices * options.rate
    const durationMs = options.duration * 1000
    // Records are due at k / perSecond seconds for every k that falls inside the run; devices take turns.
    const total = Math.max(1, Math.ceil(perSecond * options.duration - 1e-9))
    const startedAt = yield* Clock.currentTimeMillis
    yield* Ref.set(tally, emptyTally(startedAt))
    const fleet = makeFleet({ ...options, start: new Date(startedAt) })
    const toPayload = makePayloadEncoder()
    const record = (published: number) =>
      Ref.update(tally, (t) => ({ ...t, ...fleet.stats, sent: t.sent + published }))
    const send = (readings: ReadonlyArray<Parameters<typeof toPayload>[0]>) =>
      publish(redis, options.stream, readings.map(toPayload), BATCH_SIZE).pipe(
        Effect.tapError((error) => record(error.published)),
        Effect.flatMap(record),
        // A batch sent is a batch counted: an interruption waits for Redis' reply, so the summary's `sent`
        // is what the stream received (a batch takes milliseconds; a dead Redis fails it at its deadline).
        Effect.uninterruptible
      )

    let due = 0
    while (due < total) {
      const now = yield* Clock.currentTimeMillis
      const target = Math.min(total, Math.floor(((now - startedAt) * perSecond) / 1000) + 1)
      if (target > due) {
        yield* send(emit(fleet, now, due % options.devices, target - due))
        due = target
      }
      if (due < total) {
        const elapsed = (yield* Clock.currentTimeMillis) - startedAt
        yield* Effect.sleep(Math.max(MIN_TICK_MS, (due * 1000) / perSecond - elapsed))
      }
    }
    const remaining = durationMs - ((yield* Clock.currentTimeMillis) - startedAt)
    if (remaining > 0) yield* Effect.sleep(remaining)
    yield* send(drain(fleet))
  })

/** One line: counts, elapsed time, achieved rate against the requested one, the stream. */
export const summary = (tally: Tally, nowMs: number, options: SimulationOptions): string => {
  const elapsedSeconds = Math.max(0.001, (nowMs - tally.startedAt) / 1000)
  return `sent=${tally.sent} positions=${tally.positions} duplicates=${tally.duplicates} late=${tally.late} ` +
    `elapsed=${elapsedSeconds.toFixed(2)}s rate=${(tally.sent / elapsedSeconds).toFixed(1)}/s ` +
    `(${(tally.positions / elapsedSeconds / options.devices).toFixed(3)} Hz per device, requested ${options.rate}) ` +
    `stream=${options.stream}`
}

/** The progress line: sent so far, the rate since the previous line (`since`), elapsed of planned seconds. */
export const progressLine = (
  tally: Tally,
  nowMs: number,
  since: { readonly atMs: number; readonly sent: number },
  options: SimulationOptions
): string => {
  const elapsedSeconds = (nowMs - tally.startedAt) / 1000
  const rate = (tally.sent - since.sent) / Math.max(0.001, (nowMs - since.atMs) / 1000)
  return `simulate: sent ${tally.sent} (${rate.toFixed(0)}/s), ` +
    `${Math.min(elapsedSeconds, options.duration).toFixed(0)}s of ${options.duration}s`
}
