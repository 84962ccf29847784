import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { Context, Effect, Layer } from "effect"
import type pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { Pg, type PgError } from "../postgres/Pg.js"
import { copyData, type CopyRow, keyOf, rowKey } from "./copyBinary.js"

export type Outcome =
  | { readonly _tag: "Inserted" }
  | { readonly _tag: "Duplicate" }
  /** permanent: the database rejected this record's data; otherwise the write may succeed later. */
  | { readonly _tag: "Failed"; readonly reason: string; readonly permanent: boolean }

export const Inserted: Outcome = { _tag: "Inserted" }
export const Duplicate: Outcome = { _tag: "Duplicate" }

export class Writer extends Context.Tag("processor/Writer")<Writer, {
  /**
   * Writes a batch idempotently on (device_id, ts) and tells, per record and in order, what happened.
   * Never fails: failures are outcomes. Transient database trouble is retried inside (the call waits).
   *
   * Records come as their binary COPY rows (`RowEncoder`), made right after the domain stage: a batch
   * waiting for the database then holds a few bytes per record, not the positions, which die young.
   */
  readonly write: (rows: ReadonlyArray<CopyRow>) => Effect.Effect<ReadonlyArray<Outcome>>
}>() {
  static readonly layer = Layer.effect(Writer, Effect.map(Pg, (pg) => Writer.of({ write: makeWrite(pg) })))
}

export const COLUMNS = "device_id, ts, latitude, longitude, altitude, angle, speed, satellites, priority, event_id, attributes"

// A session-local staging table: binary COPY into it is the cheapest way to move rows into PostgreSQL, and
// the INSERT … SELECT from it keeps the write idempotent. ON COMMIT DELETE ROWS empties it after every batch.
// event_id is bigint here so that a value too large for positions.event_id fails in the INSERT, as a data
// error (22003) naming the value, like any other value the table refuses.
export const CREATE_STAGING = `CREATE TEMP TABLE IF NOT EXISTS positions_staging (
  device_id text, ts timestamptz, latitude double precision, longitude double precision,
  altitude double precision, angle double precision, speed double precision,
  satellites smallint, priority smallint, event_id bigint, attributes jsonb
) ON COMMIT DELETE ROWS`
export const COPY = `COPY positions_staging (${COLUMNS}) FROM STDIN (FORMAT binary)`
// A duplicate key inside one batch is fine: DO NOTHING skips the second row like any other conflict.
// No RETURNING: it costs PostgreSQL about a tenth of its write time, and in the common case (no duplicates)
// the row count alone says every record was inserted.
export const INSERT = `INSERT INTO positions (${COLUMNS})
  SELECT ${COLUMNS} FROM positions_staging
  ON CONFLICT (device_id, ts) DO NOTHING`
// Only when some rows were skipped: which keys this transaction inserted (their xmin is its own xid).
const INSERTED_HERE = `SELECT s.device_id, (extract(epoch FROM s.ts) * 1000)::float8
  FROM positions_staging s JOIN positions p ON p.device_id = s.device_id AND p.ts = s.ts
  WHERE p.xmin::text::bigint = txid_current() % 4294967296`

/** Writes the batch; returns the keys it inserted, or "all" when every record was inserted. */
const copyInsert = async (client: pg.PoolClient, batch: ReadonlyArray<CopyRow>): Promise<Set<string> | "all"> => {
  await pipeline(Readable.from([copyData(batch)]), client.query(copyFrom(COPY)))
  const result = await client.query(INSERT)
  if (result.rowCount === batch.length) return "all"
  const here = await client.query<[string, number]>({ text: INSERTED_HERE, rowMode: "array" })
  const inserted = new Set<string>()
  for (const [deviceId, ms] of here.rows) inserted.add(keyOf(deviceId, ms))
  return inserted
}

const makeWrite = (pg: Pg["Type"]) => {
  const attempt = (batch: ReadonlyArray<CopyRow>) =>
    pg.retryTransient(
      Effect.suspend(() =>
        pg.transaction("write batch", async (client) => {
          // Every time: a table created by a transaction that then failed is gone, and "IF NOT EXISTS" on a
          // table that exists costs a catalog lookup, nothing next to a batch.
          await client.query(CREATE_STAGING)
          return copyInsert(client, batch)
        })
      )
    )

  const outcomes = (batch: ReadonlyArray<CopyRow>, inserted: Set<string> | "all"): Array<Outcome> =>
    inserted === "all" ? batch.map(() => Inserted) : batch.map((row) => {
      const key = rowKey(row)
      // The first record with a key takes the insert; any later copy in the same batch is a duplicate.
      return inserted.delete(key) ? Inserted : Duplicate
    })

  // A batch the database refuses is halved until the failing records are alone; the rest is written in
  // the same pass. That holds for data errors (the record is dead-lettered) and for the others too (the
  // record stays pending and comes back through a reclaim until MAX_DELIVERIES): one record that cannot be
  // written must not hold back the good records that happened to share its batch. A systemic error (a
  // missing table, a privilege) would fail every half alike: the batch stays pending as a whole.
  const split = (batch: ReadonlyArray<CopyRow>): Effect.Effect<Array<Outcome>> =>
    attempt(batch).pipe(
      Effect.map((inserted) => outcomes(batch, inserted)),
      Effect.catchAll((error: PgError) => {
        if (error.kind === "systemic") {
          return Effect.succeed(batch.map((): Outcome => ({ _tag: "Failed", reason: error.message, permanent: false })))
        }
        if (batch.length === 1) {
          return Effect.succeed([
            error.kind === "data"
              ? { _tag: "Failed", reason: error.message, permanent: true }
              : { _tag: "Failed", reason: error.message, permanent: false }
          ] as Array<Outcome>)
        }
        const middle = batch.length >> 1
        return Effect.zipWith(split(batch.slice(0, middle)), split(batch.slice(middle)), (a, b) => a.concat(b))
      })
    )

  const write = (batch: ReadonlyArray<CopyRow>): Effect.Effect<Array<Outcome>> =>
    Effect.tap(split(batch), (results) => {
      const stuck = results.filter((o): o is Extract<Outcome, { _tag: "Failed" }> => o._tag === "Failed" && !o.permanent)
      return stuck.length === 0
        ? Effect.void
        : Effect.logError(`${stuck.length} of ${batch.length} records not written, entries stay pending: ${stuck[0]!.reason}`)
    })

  return write
}
