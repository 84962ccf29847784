// The baseline: a bare consumer on ioredis and pg, as a competent engineer would write it without a framework.
// One read connection with the next XREADGROUP in flight while a batch is written; JSON.parse and minimal
// validation; one INSERT … SELECT FROM unnest(…) per batch (one array parameter per column); XACK after the
// INSERT on a second connection. Self-contained: the bench transpiles this file alone and runs it on bare node.
// Env: POSTGRES_URL, REDIS_URL, REDIS_STREAM, REDIS_GROUP, REDIS_CONSUMER, READ_COUNT (5000).
import { Redis } from "ioredis"
import pg from "pg"

const env = (name: string, fallback?: string): string => {
  const value = process.env[name] ?? fallback
  if (value === undefined) throw new Error(`${name} is required`)
  return value
}
const stream = env("REDIS_STREAM")
const group = env("REDIS_GROUP", "baseline")
const consumer = env("REDIS_CONSUMER", "baseline-1")
const count = Number(env("READ_COUNT", "5000"))

const INSERT = `INSERT INTO positions (device_id, ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id, attributes)
  SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
                       $8::int2[], $9::int2[], $10::int4[], $11::jsonb[])
  ON CONFLICT (device_id, ts) DO NOTHING`

type Entry = [id: string, fields: Array<string>]
type Reply = Array<[string, Array<Entry>]> | null

const reader = new Redis(env("REDIS_URL", "redis://127.0.0.1:6379"), { connectionName: "baseline:reads" })
const commands = new Redis(env("REDIS_URL", "redis://127.0.0.1:6379"), { connectionName: "baseline:commands" })
const pool = new pg.Pool({ connectionString: env("POSTGRES_URL"), max: 1, application_name: "baseline" })

const isNum = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

const read = () =>
  reader.xreadgroup("GROUP", group, consumer, "COUNT", count, "BLOCK", 1000, "STREAMS", stream, ">") as Promise<Reply>

const write = async (entries: Array<Entry>) => {
  const cols: Array<Array<unknown>> = Array.from({ length: 11 }, () => [])
  const ids: Array<string> = []
  let invalid = 0
  for (const [id, fields] of entries) {
    ids.push(id)
    const at = fields.indexOf("payload")
    let p: Record<string, unknown>
    try {
      p = JSON.parse(fields[at + 1] ?? "") as Record<string, unknown>
    } catch {
      invalid++
      continue
    }
    const { device_id, timestamp, latitude, longitude, altitude, angle, speed, satellites, priority } = p
    if (
      typeof device_id !== "string" || typeof timestamp !== "string" || !isNum(latitude) || !isNum(longitude) ||
      !isNum(altitude) || !isNum(angle) || !isNum(speed) || !isNum(satellites) || !isNum(priority)
    ) {
      invalid++
      continue
    }
    const values = [device_id, timestamp, latitude, longitude, altitude, angle, speed, satellites, priority,
      p["event_id"] ?? 0, JSON.stringify(p["attributes"] ?? {})]
    for (let c = 0; c < 11; c++) cols[c]!.push(values[c])
  }
  if (cols[0]!.length > 0) await pool.query(INSERT, cols)
  // A real service would dead-letter the invalid ones; here they are counted and acknowledged.
  if (invalid > 0) process.stderr.write(`${invalid} invalid entries skipped\n`)
  // Acknowledged after the commit; not awaited, so the next batch does not wait for it (same connection, in order).
  return commands.xack(stream, group, ...ids)
}

let stopping = false
process.once("SIGTERM", () => (stopping = true))
process.once("SIGINT", () => (stopping = true))

const main = async () => {
  await commands.xgroup("CREATE", stream, group, "0", "MKSTREAM").catch((e: Error) => {
    if (!e.message.includes("BUSYGROUP")) throw e
  })
  let acks: Promise<unknown> = Promise.resolve()
  let next = read()
  while (!stopping) {
    const reply = await next
    next = read() // the next read is in flight while this batch is written
    const entries = reply?.[0]?.[1] ?? []
    if (entries.length > 0) {
      const ack = await write(entries)
      acks = Promise.all([acks, ack])
    }
  }
  await acks
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
