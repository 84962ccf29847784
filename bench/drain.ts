import { existsSync } from "node:fs"
import { join } from "node:path"
import type { Redis as IORedis } from "ioredis"
import pg from "pg"
import { type Child, cpuSeconds, spawnChild } from "./child.js"
import {
  applyMigration,
  backendCpuSeconds,
  freshDatabase,
  freshStreams,
  groupInfo,
  type IngestStats,
  ingestStats,
  load,
  log,
  RESULTS_DIR,
  sleep
} from "./infra.js"
import { preload } from "./load.js"

export interface DrainResult {
  readonly label: string
  readonly entries: number
  readonly devices: number
  /** Consumer processes on the one group. */
  readonly processes: number
  readonly stats: IngestStats
  /** count / (max(ingested_at) - min(ingested_at)): the brief's definition. */
  readonly rowsPerSecond: number
  /** (count - rows of the last-started transaction) / span: excludes the rows whose write is outside the span. */
  readonly rowsPerSecondStrict: number
  readonly avgRowsPerTransaction: number
  /** Bench-side wall time from the first entry read (XINFO entries-read > 0) to drained; 100 ms resolution. */
  readonly observedSeconds: number
  /** Most entries delivered but not yet acknowledged at one poll (XPENDING): how far reads run ahead of commits. */
  readonly maxPending: number
  /** CPU seconds (user + system, all threads) from the first read to drained: the consumer process(es)... */
  readonly consumerCpuSeconds: number
  /** ... and the PostgreSQL backends serving its database (those alive at the end). */
  readonly postgresCpuSeconds: number
  /** CPU µs per row: consumer, PostgreSQL backends. Less sensitive to a busy machine than rows/s. */
  readonly consumerCpuMicrosPerRow: number
  readonly postgresCpuMicrosPerRow: number
  readonly preloadSeconds: number
  /** VmHWM of the consumer process (the largest, with several). */
  readonly peakRssMiB: number
  readonly maxSampledRssMiB: number
  readonly deadLettered: number
  readonly exit: string
  readonly cpuProfile: string | undefined
  /** First read to drained on CLOCK_MONOTONIC (µs), the clock of V8's CPU profiles: the profile's processing part. */
  readonly window: { readonly fromUs: number; readonly toUs: number }
  readonly load: ReadonlyArray<number>
}

export interface DrainOptions {
  readonly label: string
  readonly adminUrl: string
  readonly redisUrl: string
  readonly redis: IORedis
  readonly chunks: Iterable<ReadonlyArray<string>>
  readonly entries: number
  readonly devices: number
  /** node arguments: the worker (`dist/main.js`) or the baseline. */
  readonly nodeArgs: ReadonlyArray<string>
  /** The baseline does not migrate: the bench applies the schema for it. */
  readonly migrateFirst: boolean
  readonly env?: Readonly<Record<string, string>>
  /** Consumer processes started on the one group, consumers bench-1, bench-2, …; default 1. */
  readonly processes?: number
  /** Profiles the first process only. */
  readonly cpuProfileName?: string
}

/** Waits until the group has read everything and acknowledged everything; throws on no progress for `stallMs`. */
export const awaitDrained = async (
  redis: IORedis,
  children: ReadonlyArray<Child>,
  stream: string,
  group: string,
  stallMs = 90_000,
  onFirstRead?: () => Promise<void>
) => {
  let firstReadAt: number | undefined
  let maxPending = 0
  let lastProgress = Date.now()
  let lastKey = ""
  while (true) {
    for (const child of children) child.assertAlive()
    const info = await groupInfo(redis, stream, group)
    if (firstReadAt === undefined && (info.entriesRead ?? 0) > 0) {
      firstReadAt = performance.now()
      await onFirstRead?.()
    }
    if (info.pending > maxPending) maxPending = info.pending
    if (info.exists && info.lag === 0 && info.pending === 0) return { firstReadAt, maxPending }
    const key = `${info.lag}/${info.pending}/${info.entriesRead}`
    if (key !== lastKey) {
      lastKey = key
      lastProgress = Date.now()
    } else if (Date.now() - lastProgress > stallMs) {
      const outputs = children.map((c) => `${c.name}:\n${c.output().slice(-4000)}`).join("\n")
      throw new Error(`${stream}: no progress for ${stallMs / 1000} s (lag ${info.lag}, pending ${info.pending}); output:\n${outputs}`)
    }
    await sleep(100)
  }
}

/**
 * A fresh stream preloaded with the entries, a fresh database, then the consumer as a child process; the rate
 * comes from the rows' ingested_at (transaction start times), so the child's start-up never counts.
 */
export const drainRun = async (o: DrainOptions): Promise<DrainResult> => {
  const db = await freshDatabase(o.adminUrl, o.label.replace(/\W+/g, "_"))
  const streams = freshStreams(o.redis, o.label.replace(/\W+/g, "_"))
  const pool = new pg.Pool({ connectionString: db.url, max: 1, application_name: "bench-observer" })
  // DROP DATABASE … WITH (FORCE) may reach a connection pool.end() is still closing; that is not an error here.
  pool.on("error", () => {})
  const children: Array<Child> = []
  try {
    if (o.migrateFirst) await applyMigration(db.url)
    const p0 = performance.now()
    const loaded = await preload(o.redis, streams.stream, o.chunks)
    const preloadSeconds = (performance.now() - p0) / 1000
    if (loaded !== o.entries) throw new Error(`preloaded ${loaded} entries, expected ${o.entries}`)
    log(`${o.label}: ${loaded} entries preloaded in ${preloadSeconds.toFixed(1)} s; starting ${o.nodeArgs.join(" ")}`)

    const profileArgs = o.cpuProfileName === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${RESULTS_DIR}`, `--cpu-prof-name=${o.cpuProfileName}`]
    const processes = o.processes ?? 1
    for (let i = 0; i < processes; i++) {
      children.push(spawnChild(processes === 1 ? o.label : `${o.label} ${i + 1}`, [...(i === 0 ? profileArgs : []), ...o.nodeArgs], {
        POSTGRES_URL: db.url,
        REDIS_URL: o.redisUrl,
        REDIS_STREAM: streams.stream,
        REDIS_DLQ_STREAM: streams.dlq,
        REDIS_GROUP: streams.group,
        REDIS_CONSUMER: `bench-${i + 1}`,
        HTTP_PORT: "0",
        LOG_LEVEL: "Warning",
        ...o.env
      }))
    }
    const consumerCpu = () => children.reduce((sum, c) => sum + c.cpuSeconds(), 0)
    let cpuAtFirstRead = { consumer: 0, postgres: 0 }
    const { firstReadAt, maxPending } = await awaitDrained(o.redis, children, streams.stream, streams.group, 90_000, async () => {
      cpuAtFirstRead = { consumer: consumerCpu(), postgres: await backendCpuSeconds(pool, db.name, cpuSeconds) }
    })
    const observedSeconds = firstReadAt === undefined ? 0 : (performance.now() - firstReadAt) / 1000
    const monotonicNowUs = Number(process.hrtime.bigint() / 1000n)
    const window = { fromUs: monotonicNowUs - observedSeconds * 1e6, toUs: monotonicNowUs }
    const consumerCpuSeconds = consumerCpu() - cpuAtFirstRead.consumer
    const postgresCpuSeconds = (await backendCpuSeconds(pool, db.name, cpuSeconds)) - cpuAtFirstRead.postgres
    const memory = children.map((c) => c.memory())
    const exit = (await Promise.all(children.map((c) => c.stop()))).join(", ")
    const stats = await ingestStats(pool)
    const deadLettered = await o.redis.xlen(streams.dlq)
    if (stats.rows + deadLettered !== o.entries) {
      throw new Error(`${o.label}: ${stats.rows} rows + ${deadLettered} dead letters, expected ${o.entries} entries`)
    }
    if (deadLettered > 0) log(`${o.label}: ${deadLettered} entries dead-lettered`)
    const span = stats.spanSeconds
    const result: DrainResult = {
      label: o.label,
      entries: o.entries,
      devices: o.devices,
      processes,
      stats,
      rowsPerSecond: span > 0 ? stats.rows / span : 0,
      rowsPerSecondStrict: span > 0 ? (stats.rows - stats.lastTxnRows) / span : 0,
      avgRowsPerTransaction: stats.transactions > 0 ? stats.rows / stats.transactions : 0,
      observedSeconds,
      maxPending,
      consumerCpuSeconds,
      postgresCpuSeconds,
      consumerCpuMicrosPerRow: (consumerCpuSeconds * 1e6) / o.entries,
      postgresCpuMicrosPerRow: (postgresCpuSeconds * 1e6) / o.entries,
      preloadSeconds,
      peakRssMiB: Math.max(...memory.map((m) => m.hwmKiB)) / 1024,
      maxSampledRssMiB: Math.max(...memory.map((m) => m.maxRssKiB)) / 1024,
      deadLettered,
      exit,
      cpuProfile: o.cpuProfileName === undefined ? undefined : findProfile(o.cpuProfileName),
      window,
      load: load()
    }
    log(`${o.label}: ${Math.round(result.rowsPerSecond)} rows/s over ${span.toFixed(2)} s (${stats.transactions} transactions, ` +
      `${result.avgRowsPerTransaction.toFixed(0)} rows each; observed ${observedSeconds.toFixed(1)} s; max pending ${maxPending}); CPU µs/row: ` +
      `consumer ${result.consumerCpuMicrosPerRow.toFixed(1)}, postgres ${result.postgresCpuMicrosPerRow.toFixed(1)}; peak RSS ${result.peakRssMiB.toFixed(0)} MiB; ${exit}`)
    return result
  } finally {
    await Promise.all(children.map((c) => c.stop()))
    await pool.end()
    await streams.delete()
    await db.drop()
  }
}

const findProfile = (name: string): string | undefined => {
  const file = join(RESULTS_DIR, name)
  return existsSync(file) ? file : undefined
}
