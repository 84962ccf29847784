import type { Redis as IORedis } from "ioredis"
import pg from "pg"
import { type Child, readMemory, spawnChild } from "./child.js"
import { awaitDrained } from "./drain.js"
import { applyMigration, consumerExists, freshDatabase, freshStreams, load, log, sleep } from "./infra.js"
import { pacedLoad, type PacedResult } from "./load.js"

export interface LatencyResult {
  /** Which consumer ran: the processor or the baseline. */
  readonly consumer: string
  readonly rate: number
  readonly load: PacedResult
  readonly rows: number
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly minMs: number
  readonly transactions: number
  /** Worker CPU (user + system) from the start of the load to drained, per entry sent. */
  readonly workerCpuMicrosPerRow: number
  readonly peakRssMiB: number
  /** VmRSS of the started, idle worker just before the load begins. */
  readonly idleRssMiB: number
  readonly exit: string
  readonly cpuLoad: ReadonlyArray<number>
}

const PERCENTILES = `
  WITH l AS (SELECT extract(epoch FROM ingested_at - ts) * 1000 AS ms, ingested_at FROM positions WHERE ts >= $1)
  SELECT count(*)::int AS rows,
         percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms) AS p,
         max(ms)::float8 AS max, min(ms)::float8 AS min,
         count(DISTINCT ingested_at)::int AS txns
    FROM l`

/**
 * A fresh stream and database, the worker started and idle, then `rate` entries/s for warmup + duration seconds
 * from this process; latency = ingested_at − ts per row of the measured window (the payload timestamp is the send
 * time). ingested_at is the write transaction's start, so the figure excludes COPY, INSERT and COMMIT time.
 */
export const latencyRun = async (o: {
  /** "processor" or "baseline": names the run and its database. */
  readonly consumer: string
  /** The baseline does not migrate: the schema is applied for it before it starts. */
  readonly migrateFirst: boolean
  readonly adminUrl: string
  readonly redisUrl: string
  readonly redis: IORedis
  readonly rate: number
  readonly duration: number
  readonly warmup: number
  readonly devices: number
  readonly seed: number
  readonly nodeArgs: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
}): Promise<LatencyResult> => {
  const label = `latency ${o.consumer}@${o.rate}`
  const db = await freshDatabase(o.adminUrl, `latency_${o.consumer}_${o.rate}`)
  const streams = freshStreams(o.redis, `latency_${o.consumer}_${o.rate}`)
  const pool = new pg.Pool({ connectionString: db.url, max: 1, application_name: "bench-observer" })
  // DROP DATABASE … WITH (FORCE) may reach a connection pool.end() is still closing; that is not an error here.
  pool.on("error", () => {})
  let child: Child | undefined
  try {
    if (o.migrateFirst) await applyMigration(db.url)
    child = spawnChild(label, o.nodeArgs, {
      POSTGRES_URL: db.url,
      REDIS_URL: o.redisUrl,
      REDIS_STREAM: streams.stream,
      REDIS_DLQ_STREAM: streams.dlq,
      REDIS_GROUP: streams.group,
      REDIS_CONSUMER: streams.consumer,
      HTTP_PORT: "0",
      LOG_LEVEL: "Warning",
      ...o.env
    })
    // Ready: the consumer has made its first read, which follows the migrations. Then it sits in a blocking read.
    const deadline = Date.now() + 60_000
    while (!(await consumerExists(o.redis, streams.stream, streams.group, streams.consumer))) {
      child.assertAlive()
      if (Date.now() > deadline) throw new Error(`${label}: the worker did not start reading within 60 s:\n${child.output().slice(-4000)}`)
      await sleep(50)
    }
    await sleep(500)
    const idleRssMiB = (readMemory(child.pid)?.rssKiB ?? NaN) / 1024
    const cpuBefore = child.cpuSeconds()
    log(`${label}: worker idle; sending ${o.rate}/s for ${o.warmup} s warm-up + ${o.duration} s`)
    const paced = await pacedLoad(o.redis, streams.stream, {
      rate: o.rate,
      duration: o.duration,
      warmup: o.warmup,
      devices: o.devices,
      seed: o.seed
    })
    await awaitDrained(o.redis, [child], streams.stream, streams.group, 60_000)
    const workerCpuMicrosPerRow = ((child.cpuSeconds() - cpuBefore) * 1e6) / paced.sent
    const memory = child.memory()
    const exit = await child.stop()
    const { rows: [r] } = await pool.query<{ rows: number; p: Array<number> | null; max: number | null; min: number | null; txns: number }>(
      PERCENTILES,
      [new Date(paced.measureFromMs)]
    )
    const total = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM positions")
    if (total.rows[0]!.n !== paced.sent) throw new Error(`${label}: ${total.rows[0]!.n} rows for ${paced.sent} entries sent`)
    const [p50, p95, p99] = r!.p ?? [NaN, NaN, NaN]
    const result: LatencyResult = {
      consumer: o.consumer,
      rate: o.rate,
      load: paced,
      rows: r!.rows,
      p50Ms: p50!,
      p95Ms: p95!,
      p99Ms: p99!,
      maxMs: r!.max ?? NaN,
      minMs: r!.min ?? NaN,
      transactions: r!.txns,
      workerCpuMicrosPerRow,
      peakRssMiB: memory.hwmKiB / 1024,
      idleRssMiB,
      exit,
      cpuLoad: load()
    }
    log(`${label}: sent ${paced.sent} at ${paced.achievedRate.toFixed(0)}/s (wake late p99 ${paced.wakeLateP99Ms.toFixed(1)} ms, ` +
      `max backlog ${paced.maxBacklog}, id skew max ${paced.idSkewMaxMs} ms); p50 ${p50!.toFixed(1)} p95 ${p95!.toFixed(1)} ` +
      `p99 ${p99!.toFixed(1)} max ${result.maxMs.toFixed(1)} ms over ${r!.rows} rows in ${r!.txns} transactions; worker CPU ${workerCpuMicrosPerRow.toFixed(1)} µs/row`)
    return result
  } finally {
    if (child !== undefined) await child.stop()
    await pool.end()
    await streams.delete()
    await db.drop()
  }
}
