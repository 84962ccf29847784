import { Effect, Metric, MetricBoundaries } from "effect"
import type { DeadLetter } from "../consumer/Consumer.js"
import * as Reason from "../deadletter/Reason.js"

// Every metric of the processor, as module constants. Counters are incremental so the exporter
// publishes them as Prometheus counters, not gauges. Tags have low cardinality: never a device id.

/** Every metric name starts with it; the exposition carries these and nothing else. */
export const PREFIX = "processor_"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

export const consumed = counter("processor_records_consumed", "Stream entries read from the consumer group")

const records = counter("processor_records", "Valid records by write outcome")
export const inserted = Metric.tagged(records, "outcome", "inserted")
export const duplicate = Metric.tagged(records, "outcome", "duplicate")
export const failed = Metric.tagged(records, "outcome", "failed")

const deadLetters = counter("processor_dead_letters", "Entries copied to the dead-letter stream, by reason")

export const deadLettered = (letters: ReadonlyArray<DeadLetter>) =>
  Effect.suspend(() => {
    const byReason = new Map<string, number>()
    for (const l of letters) {
      const reason = Reason.label(l.reason)
      byReason.set(reason, (byReason.get(reason) ?? 0) + 1)
    }
    return Effect.forEach(byReason, ([reason, n]) => Metric.incrementBy(Metric.tagged(deadLetters, "reason", reason), n), {
      discard: true
    })
  })

const reclaimedTotal = counter("processor_reclaimed", "Pending entries taken over from idle consumers (XAUTOCLAIM)")
export const reclaimed = (n: number) => Metric.incrementBy(reclaimedTotal, n)

export const lateRecords = counter("processor_late_records", "Records older than their device's newest known position")

export const batchSize = Metric.histogram(
  "processor_batch_size_records",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 14 }),
  "Records per database write"
)

export const writeDuration = Metric.histogram(
  "processor_write_duration_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 }),
  "Duration of one batch write, retries included"
)

export const lag = Metric.histogram(
  "processor_lag_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 20 }),
  "Commit time minus the time in the stream entry id"
)

export const deviceStateSize = Metric.gauge("processor_device_state_devices", { description: "Devices held in memory" })
export const deviceStateEvictions = counter("processor_device_state_evictions", "Devices evicted from memory (least recently seen)")

export const groupPending = Metric.gauge("processor_group_pending_entries", { description: "Entries delivered but not acknowledged, whole group (XINFO GROUPS)" })
export const groupLag = Metric.gauge("processor_group_lag_entries", { description: "Entries not yet delivered to the group (XINFO GROUPS)" })

const pgPool = Metric.gauge("processor_pg_pool_connections", { description: "PostgreSQL pool connections by state" })
export const pgPoolInUse = Metric.tagged(pgPool, "state", "in_use")
export const pgPoolIdle = Metric.tagged(pgPool, "state", "idle")
export const pgPoolWaiting = Metric.gauge("processor_pg_pool_waiting_requests", { description: "Queries waiting for a pool connection" })

const retries = counter("processor_retries", "Retried operations, by cause")
export const retry = (cause: "postgres" | "redis") => Metric.increment(Metric.tagged(retries, "cause", cause))

// A series appears in the exposition only once it has been touched. Touching every counter series and the
// histograms at start exports them at 0, so rate() and alerts see the first increment instead of a series
// that springs up later.
const counterSeries = [
  consumed, inserted, duplicate, failed, reclaimedTotal, lateRecords, deviceStateEvictions,
  ...Reason.LABELS.map((reason) => Metric.tagged(deadLetters, "reason", reason)),
  ...(["postgres", "redis"] as const).map((cause) => Metric.tagged(retries, "cause", cause))
]
export const initialize = Effect.all([
  ...counterSeries.map((metric) => Metric.value(metric)),
  ...[batchSize, writeDuration, lag].map((metric) => Metric.value(metric))
], { discard: true })

const counterValue = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

/** Running totals for the periodic log line: records read, inserted, dead-lettered (every reason). */
export const totals = Effect.all({
  consumed: counterValue(consumed),
  inserted: counterValue(inserted),
  deadLettered: Effect.map(
    Effect.forEach(Reason.LABELS, (reason) => counterValue(Metric.tagged(deadLetters, "reason", reason))),
    (counts) => counts.reduce((a, b) => a + b, 0)
  ),
  groupLag: Effect.map(Metric.value(groupLag), (state) => state.value),
  groupPending: Effect.map(Metric.value(groupPending), (state) => state.value)
})
