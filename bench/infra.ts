import { randomBytes } from "node:crypto"
import { readFile } from "node:fs/promises"
import { loadavg } from "node:os"
import { fileURLToPath } from "node:url"
import { Redis as IORedis } from "ioredis"
import pg from "pg"

export const ROOT = fileURLToPath(new URL("../", import.meta.url))
export const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url))
const MIGRATION = fileURLToPath(new URL("../migrations/0001_positions.sql", import.meta.url))

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`

export const load = () => loadavg().map((l) => Math.round(l * 100) / 100)

export const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 23)}] ${line}\n`)

// ---- cleanup ------------------------------------------------------------------------------------------------
// Every resource the bench creates registers its removal here. Figures release their own resources as they
// finish; whatever is left (a failure, Ctrl-C) is released by releaseAll, newest first.

type Release = () => Promise<void>
const releases = new Map<number, { readonly what: string; readonly release: Release }>()
let nextRelease = 0
let aborting = false

/** Throws once the bench is being interrupted, so no figure creates anything more. */
export const checkAborted = () => {
  if (aborting) throw new Error("interrupted")
}

/** Interrupted (a signal): release everything now, and anything created from here on as soon as it is registered. */
export const abort = async () => {
  aborting = true
  await releaseAll()
}

export const defer = (what: string, release: Release): (() => Promise<void>) => {
  if (aborting) {
    // Created by an operation that was already under way when the interruption came.
    void runRelease(what, release)
    throw new Error("interrupted")
  }
  const id = nextRelease++
  releases.set(id, { what, release })
  return async () => {
    const entry = releases.get(id)
    if (entry === undefined) return
    releases.delete(id)
    await runRelease(entry.what, entry.release)
  }
}

const runRelease = async (what: string, release: Release) => {
  try {
    await Promise.race([release(), sleep(30_000).then(() => Promise.reject(new Error("timed out after 30 s")))])
  } catch (error) {
    log(`cleanup of ${what} failed: ${error instanceof Error ? error.message : String(error)}`)
  }
}

export const releaseAll = async () => {
  const pending = [...releases.entries()].sort(([a], [b]) => b - a)
  releases.clear()
  for (const [, { what, release }] of pending) await runRelease(what, release)
}

// ---- PostgreSQL ---------------------------------------------------------------------------------------------

export const withClient = async <A>(url: string, f: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url, application_name: "bench" })
  client.on("error", () => {})
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

export interface Database {
  readonly name: string
  readonly url: string
  /** Drops the database (closing its connections); safe to call twice. */
  readonly drop: () => Promise<void>
}

export const freshDatabase = async (adminUrl: string, label: string): Promise<Database> => {
  checkAborted()
  const name = uniqueName(`bench_${label}`)
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`))
  const drop = defer(`database ${name}`, async () => {
    await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  })
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop }
}

/** The schema as the worker creates it: the same SQL file, run as one script. */
export const applyMigration = async (url: string) => {
  const sql = await readFile(MIGRATION, "utf8")
  await withClient(url, (c) => c.query(sql))
}

export interface IngestStats {
  readonly rows: number
  /** Seconds between the first and the last transaction start (ingested_at is now(), the transaction start). */
  readonly spanSeconds: number
  /** Rows of the transaction(s) that started last: they are inside the count but their write is not in the span. */
  readonly lastTxnRows: number
  /** Distinct ingested_at values: one per write transaction (two starting in the same microsecond would merge). */
  readonly transactions: number
  readonly first: string | null
  readonly last: string | null
}

export const ingestStats = (client: pg.Client | pg.Pool) =>
  client.query<{ rows: number; span: number | null; last_rows: number; txns: number; first: Date | null; last: Date | null }>(`
    SELECT count(*)::int AS rows,
           extract(epoch FROM max(ingested_at) - min(ingested_at))::float8 AS span,
           count(*) FILTER (WHERE ingested_at = (SELECT max(ingested_at) FROM positions))::int AS last_rows,
           count(DISTINCT ingested_at)::int AS txns,
           min(ingested_at) AS first, max(ingested_at) AS last
      FROM positions`).then(({ rows: [r] }): IngestStats => ({
    rows: r!.rows,
    spanSeconds: r!.span ?? 0,
    lastTxnRows: r!.last_rows,
    transactions: r!.txns,
    first: r!.first?.toISOString() ?? null,
    last: r!.last?.toISOString() ?? null
  }))

/**
 * Summed CPU seconds of the client backends serving `database` (not the observer's own connection, nor an
 * autovacuum worker that happens to be there at one of the two samples).
 */
export const backendCpuSeconds = async (observer: pg.Pool, database: string, cpu: (pid: number) => number) => {
  const { rows } = await observer.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    [database]
  )
  let total = 0
  for (const { pid } of rows) {
    const s = cpu(pid)
    if (Number.isFinite(s)) total += s
  }
  return total
}

// ---- Redis --------------------------------------------------------------------------------------------------

export interface Streams {
  readonly stream: string
  readonly dlq: string
  readonly group: string
  readonly consumer: string
  readonly delete: () => Promise<void>
}

export const connectRedis = async (url: string): Promise<IORedis> => {
  const redis = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 3, connectionName: "bench" })
  redis.on("error", () => {})
  await redis.connect()
  return redis
}

export const freshStreams = (redis: IORedis, label: string): Streams => {
  checkAborted()
  const prefix = uniqueName(`bench:${label}`)
  const stream = `${prefix}:t`
  const dlq = `${prefix}:t:dlq`
  const remove = defer(`stream ${stream}`, async () => {
    await redis.del(stream, dlq)
  })
  return { stream, dlq, group: "bench", consumer: "bench-1", delete: remove }
}

export interface GroupInfo {
  readonly exists: boolean
  readonly lag: number | null
  readonly pending: number
  readonly entriesRead: number | null
}

/** XINFO GROUPS (lag, entries-read) plus the XPENDING summary. */
export const groupInfo = async (redis: IORedis, stream: string, group: string): Promise<GroupInfo> => {
  const groups = (await redis.xinfo("GROUPS", stream).catch(() => [])) as Array<Array<unknown>>
  for (const g of groups) {
    const info = new Map<unknown, unknown>()
    for (let i = 0; i < g.length; i += 2) info.set(g[i], g[i + 1])
    if (info.get("name") !== group) continue
    const summary = (await redis.xpending(stream, group)) as [number, ...Array<unknown>]
    const lag = info.get("lag")
    const read = info.get("entries-read")
    return {
      exists: true,
      lag: lag === null || lag === undefined ? null : Number(lag),
      pending: Number(summary[0]),
      entriesRead: read === null || read === undefined ? null : Number(read)
    }
  }
  return { exists: false, lag: null, pending: 0, entriesRead: null }
}

export const consumerExists = async (redis: IORedis, stream: string, group: string, consumer: string) => {
  const consumers = (await redis.xinfo("CONSUMERS", stream, group).catch(() => [])) as Array<Array<unknown>>
  return consumers.some((c) => c[0] === "name" && c[1] === consumer)
}
