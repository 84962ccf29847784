// The baseline: the fastest straightforward consumer on ioredis + pg + pg-copy-streams, as a competent engineer
// would write it without a framework. One read connection with the next XREADGROUP in flight; JSON.parse and
// type checks; each batch in one transaction (text COPY into a session-local staging table, then INSERT … SELECT
// … ON CONFLICT DO NOTHING), up to WRITERS batches at once on their own connections; XACK after each commit on a
// second Redis connection, not awaited (pipelined). Measured against an INSERT … SELECT FROM unnest($1::text[], …)
// per batch and against one writer: this was the fastest (notes/bench-*.md). Self-contained: the bench transpiles
// this file alone and runs it on bare node.
// Env: POSTGRES_URL, REDIS_URL, REDIS_STREAM, REDIS_GROUP, REDIS_CONSUMER, READ_COUNT (5000), WRITERS (2).
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { Redis } from "ioredis"
import pg from "pg"
import { from as copyFrom } from "pg-copy-streams"

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback
  if (value === undefined) throw new Error(`${name} is required`)
  return value
}
const stream = env("REDIS_STREAM")
const group = env("REDIS_GROUP", "baseline")
const consumer = env("REDIS_CONSUMER", "baseline-1")
const count = Number(env("READ_COUNT", "5000"))
const writers = Number(env("WRITERS", "2"))

const COLUMNS = "device_id, ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id, attributes"
const STAGING = "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE positions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
const COPY = `COPY staging (${COLUMNS}) FROM STDIN`
const INSERT = `INSERT INTO positions (${COLUMNS}) SELECT ${COLUMNS} FROM staging ON CONFLICT (device_id, ts) DO NOTHING`

// COPY's text format: backslash, tab, newline and carriage return are escaped with a backslash.
const SPECIAL = /[\\\t\n\r]/g
const ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }
const esc = (s: string) => (s.search(SPECIAL) === -1 ? s : s.replace(SPECIAL, (c) => ESCAPES[c]!))

type Entry = [id: string, fields: Array<string>]
type Reply = Array<[string, Array<Entry>]> | null

const reader = new Redis(env("REDIS_URL", "redis://127.0.0.1:6379"), { connectionName: "baseline:reads" })
const commands = new Redis(env("REDIS_URL", "redis://127.0.0.1:6379"), { connectionName: "baseline:commands" })
const pool = new pg.Pool({ connectionString: env("POSTGRES_URL"), max: writers, application_name: "baseline" })

const isNum = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)
const isInt = (u: unknown): u is number => Number.isInteger(u)

const read = () =>
  reader.xreadgroup("GROUP", group, consumer, "COUNT", count, "BLOCK", 1000, "STREAMS", stream, ">") as Promise<Reply>

const toRow = (text: string | undefined): string | undefined => {
  let p: Record<string, unknown>
  try {
    p = JSON.parse(text ?? "") as Record<string, unknown>
  } catch {
    return undefined
  }
  const { device_id, timestamp, latitude, longitude, altitude, angle, speed, satellites, priority } = p
  const event_id = p["event_id"] ?? 0
  if (
    typeof device_id !== "string" || typeof timestamp !== "string" || Number.isNaN(Date.parse(timestamp)) ||
    !isNum(latitude) || !isNum(longitude) || !isNum(altitude) || !isNum(angle) || !isNum(speed) ||
    !isInt(satellites) || !isInt(priority) || !isInt(event_id)
  ) return undefined
  return `${esc(device_id)}\t${esc(timestamp)}\t${latitude}\t${longitude}\t${altitude}\t${angle}\t${speed}\t` +
    `${satellites}\t${priority}\t${event_id}\t${esc(JSON.stringify(p["attributes"] ?? {}))}\n`
}

const write = async (entries: Array<Entry>) => {
  let data = ""
  let invalid = 0
  for (const [, fields] of entries) {
    const row = toRow(fields[fields.indexOf("payload") + 1])
    if (row === undefined) invalid++
    else data += row
  }
  if (data !== "") {
    const client = await pool.connect()
    try {
      await client.query("BEGIN")
      await client.query(STAGING)
      await pipeline(Readable.from([data]), client.query(copyFrom(COPY)))
      await client.query(INSERT)
      await client.query("COMMIT")
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }
  // A real service would dead-letter the invalid ones; here they are counted and acknowledged.
  if (invalid > 0) process.stderr.write(`${invalid} invalid entries skipped\n`)
  return commands.xack(stream, group, ...entries.map(([id]) => id))
}

let stopping = false
process.once("SIGTERM", () => (stopping = true))
process.once("SIGINT", () => (stopping = true))

const main = async () => {
  await commands.xgroup("CREATE", stream, group, "0", "MKSTREAM").catch((e: Error) => {
    if (!e.message.includes("BUSYGROUP")) throw e
  })
  // A blocking read on an empty stream does not register the consumer; the bench waits for it to appear.
  await commands.xgroup("CREATECONSUMER", stream, group, consumer)
  const inFlight = new Set<Promise<unknown>>()
  let next = read()
  while (!stopping) {
    const reply = await next
    next = read() // the next read is in flight while this batch is written
    const entries = reply?.[0]?.[1] ?? []
    if (entries.length === 0) continue
    const written: Promise<unknown> = write(entries).finally(() => inFlight.delete(written))
    inFlight.add(written)
    if (inFlight.size >= writers) await Promise.race(inFlight)
  }
  await Promise.all(inFlight)
  await next.catch(() => null)
}

main()
  .catch((error) => {
    process.stderr.write(`baseline failed: ${error instanceof Error ? error.stack : String(error)}\n`)
    process.exitCode = 1
  })
  .finally(async () => {
    reader.disconnect()
    await commands.quit().catch(() => {})
    await pool.end().catch(() => {})
  })
