import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import type { Decoded } from "../src/position/decode.js"
import { copyData, type CopyRow, RowEncoder } from "../src/writer/copyBinary.js"
import { COPY, CREATE_STAGING, INSERT } from "../src/writer/Writer.js"
import { applyMigration, freshDatabase, ingestStats, load, log } from "./infra.js"

// The worker's own statements (src/writer/Writer.ts), so the limit is measured on the path the worker takes.
const RETURNING = " RETURNING device_id, (extract(epoch FROM ts) * 1000)::float8"

export const BATCH = 5_000

export interface WriteLimitVariant {
  readonly label: string
  readonly concurrency: number
  readonly returning: boolean
  readonly rows: number
  readonly seconds: number
  readonly rowsPerSecond: number
  readonly load: ReadonlyArray<number>
}

export interface CopyBatches {
  readonly batches: ReadonlyArray<Buffer>
  readonly rows: number
  /** Encoding the rows with the worker's own encoder (RowEncoder) into COPY data, µs per row. */
  readonly formatMicrosPerRow: number
}

/** The binary COPY data of every batch, built once with the worker's own encoder, outside any timed write. */
export const copyBatches = (positions: ReadonlyArray<Decoded>): CopyBatches => {
  const started = performance.now()
  const batches: Array<Buffer> = []
  const encoder = new RowEncoder()
  for (let from = 0; from < positions.length; from += BATCH) {
    const rows: Array<CopyRow> = []
    for (let i = from, end = Math.min(from + BATCH, positions.length); i < end; i++) {
      const d = positions[i]!
      rows.push(encoder.encode(d.position, d.attributesJson))
    }
    batches.push(copyData(rows))
  }
  const formatMicrosPerRow = ((performance.now() - started) * 1000) / positions.length
  log(`COPY data for ${positions.length} rows built in ${((performance.now() - started) / 1000).toFixed(1)} s (${formatMicrosPerRow.toFixed(1)} µs/row, not timed below)`)
  return { batches, rows: positions.length, formatMicrosPerRow }
}

/**
 * Writes the batches into a fresh database, one transaction each: BEGIN; COPY into the session's staging table;
 * INSERT … SELECT … ON CONFLICT DO NOTHING; COMMIT. The COPY data is ready beforehand, so the clock covers only
 * the round trips and PostgreSQL's work: the most the database takes in by this path on this machine.
 */
export const writeLimitVariant = async (
  adminUrl: string,
  { batches, rows }: CopyBatches,
  options: { readonly concurrency: number; readonly returning: boolean }
): Promise<WriteLimitVariant> => {
  const label = `COPY+INSERT, ${options.concurrency} connection${options.concurrency > 1 ? "s" : ""}${options.returning ? ", RETURNING" : ""}`
  const db = await freshDatabase(adminUrl, "limit")
  try {
    await applyMigration(db.url)
    const pool = new pg.Pool({ connectionString: db.url, max: options.concurrency, application_name: "bench-limit" })
    // DROP DATABASE … WITH (FORCE) may reach a connection pool.end() is still closing; that is not an error here.
    pool.on("error", () => {})
    try {
      const clients = await Promise.all(Array.from({ length: options.concurrency }, () => pool.connect()))
      for (const c of clients) await c.query(CREATE_STAGING)
      const insert = options.returning ? INSERT + RETURNING : INSERT
      let next = 0
      const started = performance.now()
      await Promise.all(clients.map(async (client) => {
        while (next < batches.length) {
          const batch = batches[next++]!
          await client.query("BEGIN")
          await pipeline(Readable.from([batch]), client.query(copyFrom(COPY)))
          await client.query({ text: insert, rowMode: "array" })
          await client.query("COMMIT")
        }
      }))
      const seconds = (performance.now() - started) / 1000
      for (const c of clients) c.release()
      const stats = await ingestStats(pool)
      if (stats.rows !== rows) throw new Error(`write limit: ${stats.rows} rows in the table, expected ${rows}`)
      const result = {
        label,
        concurrency: options.concurrency,
        returning: options.returning,
        rows,
        seconds,
        rowsPerSecond: rows / seconds,
        load: load()
      }
      log(`write limit [${label}]: ${Math.round(result.rowsPerSecond)} rows/s (${seconds.toFixed(2)} s)`)
      return result
    } finally {
      await pool.end()
    }
  } finally {
    await db.drop()
  }
}
