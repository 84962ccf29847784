import { Effect } from "effect"
import type { Redis as IORedis } from "ioredis"
import { DEFAULT_START, emit, makeFleet } from "../src/simulate/Fleet.js"
import { generatePayloads } from "../src/simulate/Generator.js"
import { makePayloadEncoder } from "../src/simulate/Payload.js"
import { publish } from "../src/simulate/Publish.js"

export interface Dataset {
  readonly count: number
  readonly devices: number
  readonly seed: number
}

/** The simulator's realistic payloads (a fleet ticking at 1 Hz from DEFAULT_START; no duplicates, no late records). */
export const payloads = (d: Dataset): Array<string> => generatePayloads({ count: d.count, devices: d.devices, seed: d.seed })

/** The same sequence as `payloads`, in chunks, so a million-entry backlog never sits in the bench's memory at once. */
export function* payloadChunks(d: Dataset, chunk: number): Generator<Array<string>> {
  const fleet = makeFleet({ devices: d.devices, seed: d.seed })
  const toPayload = makePayloadEncoder()
  let nowMs = DEFAULT_START.getTime()
  let produced = 0
  let out: Array<string> = []
  while (produced < d.count) {
    for (const reading of emit(fleet, nowMs)) {
      if (produced === d.count) break
      out.push(toPayload(reading))
      produced++
      if (out.length === chunk) {
        yield out
        out = []
      }
    }
    nowMs += 1000
  }
  if (out.length > 0) yield out
}

export const preload = async (redis: IORedis, stream: string, chunks: Iterable<ReadonlyArray<string>>): Promise<number> => {
  let n = 0
  for (const chunk of chunks) n += await Effect.runPromise(publish(redis, stream, chunk, 2000))
  return n
}

// ---- paced load for the latency figure ----------------------------------------------------------------------

export interface PacedResult {
  readonly sent: number
  readonly seconds: number
  readonly achievedRate: number
  /** Sends whose timestamp was bumped past the send time to stay unique per device (should be 0). */
  readonly bumped: number
  /** How late the generator woke against its 5 ms schedule, ms. */
  readonly wakeLateP99Ms: number
  readonly wakeLateMaxMs: number
  /** Most entries that were due but not yet sent at one wake-up (a measure of falling behind). */
  readonly maxBacklog: number
  /** Stream-id time minus payload timestamp per entry, ms: how far the recorded send time is from Redis' clock. */
  readonly idSkewP99Ms: number
  readonly idSkewMaxMs: number
  /** Wall time (ms since the epoch) from which entries count for the latency percentiles. */
  readonly measureFromMs: number
}

const TICK_MS = 5

const quantile = (sorted: ArrayLike<number>, q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

/**
 * XADDs `rate` entries a second for `warmup + duration` seconds, one pipeline every 5 ms, catching up on the
 * schedule (the count due is computed from elapsed time, so a late wake-up sends more, not fewer). Each payload's
 * `timestamp` is the send time in ms (bumped by 1 ms when a device would repeat a timestamp), so per-record
 * latency is `ingested_at - ts` in SQL.
 */
export const pacedLoad = async (
  redis: IORedis,
  stream: string,
  options: { readonly rate: number; readonly duration: number; readonly warmup: number; readonly devices: number; readonly seed: number }
): Promise<PacedResult> => {
  const total = Math.round(options.rate * (options.warmup + options.duration))
  const devices = Math.max(1, options.devices)
  const fleet = makeFleet({ devices, seed: options.seed, start: new Date() })
  const toPayload = makePayloadEncoder()
  const lastTs = new Map<string, number>()
  const wakeLate: Array<number> = []
  const skews = new Int32Array(total)
  let bumped = 0
  let maxBacklog = 0
  let sent = 0
  const startWall = Date.now()
  const start = performance.now()
  const measureFromMs = startWall + options.warmup * 1000
  for (let tick = 1; sent < total; tick++) {
    const elapsed = performance.now() - start
    const due = Math.min(total, Math.floor((elapsed * options.rate) / 1000))
    if (due > sent) {
      const count = due - sent
      if (count > maxBacklog) maxBacklog = count
      const readings = emit(fleet, Date.now(), sent % devices, count)
      const pipeline = redis.pipeline()
      const stamps = new Array<number>(readings.length)
      const now = Date.now()
      for (let i = 0; i < readings.length; i++) {
        const r = readings[i]!
        const previous = lastTs.get(r.deviceId) ?? 0
        let ts = now
        if (ts <= previous) {
          ts = previous + 1
          bumped++
        }
        lastTs.set(r.deviceId, ts)
        stamps[i] = ts
        pipeline.xadd(stream, "*", "payload", toPayload({ ...r, timestampMs: ts }))
      }
      const results = await pipeline.exec()
      if (results === null) throw new Error("XADD pipeline discarded")
      for (let i = 0; i < results.length; i++) {
        const [error, id] = results[i]!
        if (error) throw error
        const idMs = Number(String(id).slice(0, String(id).indexOf("-")))
        skews[sent + i] = idMs - stamps[i]!
      }
      sent += readings.length
    }
    if (sent >= total) break
    const wakeAt = start + tick * TICK_MS
    const wait = wakeAt - performance.now()
    if (wait > 0) {
      await new Promise<void>((resolve) => setTimeout(resolve, wait))
      wakeLate.push(performance.now() - wakeAt)
    } else {
      // Behind schedule: skip the ticks already past rather than spinning through them.
      tick = Math.floor((performance.now() - start) / TICK_MS)
    }
  }
  const seconds = (performance.now() - start) / 1000
  wakeLate.sort((a, b) => a - b)
  const skewSorted = skews.slice(0, sent).sort()
  return {
    sent,
    seconds,
    achievedRate: sent / seconds,
    bumped,
    wakeLateP99Ms: quantile(wakeLate, 0.99),
    wakeLateMaxMs: wakeLate[wakeLate.length - 1] ?? 0,
    maxBacklog,
    idSkewP99Ms: quantile(skewSorted, 0.99),
    idSkewMaxMs: skewSorted[skewSorted.length - 1] ?? 0,
    measureFromMs
  }
}
