import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { Context, Effect, Layer } from "effect"
import type pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { Pg, PgError, RETRYABLE_ATTEMPTS } from "../postgres/Pg.js"
import { copyData, copyDataNumbered, type CopyRow, eventIdOutOfRange } from "./copyBinary.js"

export type Outcome =
  | { readonly _tag: "Inserted" }
  /** The same position (every column but ingested_at; attributes compared as jsonb) is stored already. */
  | { readonly _tag: "Duplicate" }
  /** A different position is stored with this record's (device_id, ts): the record was not written. */
  | { readonly _tag: "Conflict" }
  /** permanent: the database rejected this record's data; otherwise the write may succeed later. */
  | { readonly _tag: "Failed"; readonly reason: string; readonly permanent: boolean }

export const Inserted: Outcome = { _tag: "Inserted" }
export const Duplicate: Outcome = { _tag: "Duplicate" }
export const Conflict: Outcome = { _tag: "Conflict" }

/** How a batch reached the table: COPY straight into `positions`, or through the staging table. */
export type WritePath = "direct" | "staged"

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

// The common case, after the method of Timescale's own loader (timescaledb-parallel-copy): binary COPY
// straight into the table, one statement. A key that is stored already, or twice in the batch, fails it
// with 23505 (unique_violation); the batch is then written again through the staging table below.
export const COPY_DIRECT = `COPY positions (${COLUMNS}) FROM STDIN (FORMAT binary)`

// The fallback: a session-local staging table, then INSERT … SELECT … ON CONFLICT DO NOTHING. ON COMMIT
// DELETE ROWS empties it after every batch. `n` is the record's index in the batch (`copyDataNumbered`), so
// that the records not inserted can be named; the column types are those of `positions`, because binary
// COPY takes the same bytes into both.
export const CREATE_STAGING = `CREATE TEMP TABLE IF NOT EXISTS positions_staging (
  n integer, device_id text, ts timestamptz, latitude double precision, longitude double precision,
  altitude double precision, angle double precision, speed double precision,
  satellites smallint, priority smallint, event_id integer, attributes jsonb
) ON COMMIT DELETE ROWS`
/** COPY into the staging table without `n` (the benchmark's write limit). */
export const COPY = `COPY positions_staging (${COLUMNS}) FROM STDIN (FORMAT binary)`
const COPY_NUMBERED = `COPY positions_staging (n, ${COLUMNS}) FROM STDIN (FORMAT binary)`
// No RETURNING: it costs PostgreSQL about a tenth of its write time, and in the common case (no duplicates)
// the row count alone says every record was inserted.
export const INSERT = `INSERT INTO positions (${COLUMNS})
  SELECT ${COLUMNS} FROM positions_staging
  ON CONFLICT (device_id, ts) DO NOTHING`
// Only when some rows were skipped: each staging row that was not the one inserted, and whether it is the
// same position as the stored row. The stored row was inserted here when its xmin is this transaction's
// xid; then the first staging row equal to it (lowest n) is the one inserted (or, should a trigger have
// changed the row on its way in, the first with its key), and any other one is a duplicate (equal) or a
// conflict (different). Floats compare exactly (-0 and NaN never reach the table); jsonb compares numbers
// as numeric, so a bigint attribute compares to the last digit.
const SKIPPED = `SELECT n, same FROM (
  SELECT n, same, here,
         coalesce(min(n) FILTER (WHERE same) OVER key, min(n) OVER key) AS first FROM (
    SELECT s.n, s.device_id, s.ts,
           (s.latitude, s.longitude, s.altitude, s.angle, s.speed, s.satellites, s.priority, s.event_id, s.attributes)
             = (p.latitude, p.longitude, p.altitude, p.angle, p.speed, p.satellites, p.priority, p.event_id, p.attributes) AS same,
           p.xmin::text::bigint = txid_current() % 4294967296 AS here
      FROM positions_staging s JOIN positions p ON p.device_id = s.device_id AND p.ts = s.ts
  ) joined
  WINDOW key AS (PARTITION BY device_id, ts)
) ranked WHERE NOT (here AND n = first)`

const UNIQUE_VIOLATION = "23505"

const copyIn = (client: pg.PoolClient, statement: string, data: Buffer) =>
  pipeline(Readable.from([data]), client.query(copyFrom(statement)))

/** Writes the batch through the staging table; per record, in order: Inserted, Duplicate or Conflict. */
const stagedWrite = async (client: pg.PoolClient, batch: ReadonlyArray<CopyRow>): Promise<Array<Outcome>> => {
  // Every time: a table created by a transaction that then failed is gone, and "IF NOT EXISTS" on a
  // table that exists costs a catalog lookup, nothing next to a batch.
  await client.query(CREATE_STAGING)
  await copyIn(client, COPY_NUMBERED, copyDataNumbered(batch))
  const result = await client.query(INSERT)
  const outcomes = batch.map((): Outcome => Inserted)
  if (result.rowCount === batch.length) return outcomes
  const skipped = await client.query<[number, boolean]>({ text: SKIPPED, rowMode: "array" })
  for (const [n, same] of skipped.rows) outcomes[n] = same ? Duplicate : Conflict
  return outcomes
}

const failed = (reason: string, permanent: boolean): Outcome => ({ _tag: "Failed", reason, permanent })

/** Pieces of at most `size` records, in order. */
const pieces = <A>(all: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size))
  return out
}

/**
 * The writer on this Pg service. `observe` is told which path each written batch (or part of a batch)
 * took; for tests.
 */
export const makeWrite = (pg: Pg["Type"], observe: (path: WritePath, records: number) => void = () => {}) => {
  const inTransaction = <A>(f: (client: pg.PoolClient) => Promise<A>, attempts: number, singleStatement = false) =>
    pg.retryTransient(Effect.suspend(() => pg.transaction("write batch", f, { singleStatement })), { attempts })

  const staged = (batch: ReadonlyArray<CopyRow>, attempts: number) =>
    inTransaction((client) => stagedWrite(client, batch), attempts).pipe(
      Effect.tap(() => Effect.sync(() => observe("staged", batch.length)))
    )

  /** The direct COPY, then the staging path on a unique violation; `onStaged` is called when it falls back. */
  const attempt = (batch: ReadonlyArray<CopyRow>, attempts: number, onStaged: () => void): Effect.Effect<Array<Outcome>, PgError> =>
    // One COPY: atomic by itself (a unique violation leaves nothing behind), so no BEGIN/COMMIT round trips.
    inTransaction((client) => copyIn(client, COPY_DIRECT, copyData(batch)), attempts, true).pipe(
      Effect.map(() => {
        observe("direct", batch.length)
        return batch.map((): Outcome => Inserted)
      }),
      Effect.catchIf(
        (error) => error.sqlstate === UNIQUE_VIOLATION,
        () => Effect.zipRight(Effect.sync(onStaged), staged(batch, attempts))
      )
    )

  // A batch the database refuses is halved until the failing records are alone; the rest is written in
  // the same pass. That holds for data errors (the record is dead-lettered) and for the others too (the
  // record stays pending and comes back through a reclaim until MAX_DELIVERIES): one record that cannot be
  // written must not hold back the good records that happened to share its batch. A systemic error (a
  // missing table, a privilege) would fail every half alike: the batch stays pending as a whole.
  //
  // A batch that fails with the same retryable error RETRYABLE_ATTEMPTS times (a statement timeout that
  // keeps coming back) is isolated too, but each failing try may cost a whole statement timeout: it is cut
  // into about √n pieces, not halves, and each piece is tried once (a piece that fails so again is cut
  // again). One slow record in 5,000 then costs three failing tries after the batch's own, not thirteen.
  //
  // Parts of a batch that fell back to the staging table go there at once: the stored key that failed the
  // direct COPY is in one of them, and a failed COPY costs as much as the rows it wrote before failing.
  const split = (batch: ReadonlyArray<CopyRow>, attempts: number, direct: boolean): Effect.Effect<Array<Outcome>> =>
    Effect.suspend(() => {
      let viaStaging = !direct
      const written = direct ? attempt(batch, attempts, () => (viaStaging = true)) : staged(batch, attempts)
      return written.pipe(
        Effect.catchAll((error: PgError) => {
          if (error.kind === "systemic") return Effect.succeed(batch.map(() => failed(error.message, false)))
          if (batch.length === 1) return Effect.succeed([failed(error.message, error.kind === "data")])
          if (error.kind === "retryable") {
            const size = batch.length <= 4 ? 1 : Math.ceil(Math.sqrt(batch.length))
            return Effect.map(Effect.forEach(pieces(batch, size), (piece) => split(piece, 1, !viaStaging)), (parts) => parts.flat())
          }
          const middle = batch.length >> 1
          return Effect.zipWith(
            split(batch.slice(0, middle), attempts, !viaStaging),
            split(batch.slice(middle), attempts, !viaStaging),
            (a, b) => a.concat(b)
          )
        })
      )
    })

  // A row whose event_id does not fit positions.event_id is refused here, naming the value, before any
  // statement: binary COPY would refuse the whole batch, not say which row.
  const refuseOutOfRange = (batch: ReadonlyArray<CopyRow>): Effect.Effect<Array<Outcome>> => {
    // Nearly always none: one pass that allocates nothing.
    let any = false
    for (let i = 0; i < batch.length && !any; i++) any = eventIdOutOfRange(batch[i]!) !== undefined
    if (!any) return split(batch, RETRYABLE_ATTEMPTS, true)
    const outcomes: Array<Outcome | undefined> = batch.map(() => undefined)
    const writable: Array<CopyRow> = []
    for (let i = 0; i < batch.length; i++) {
      const value = eventIdOutOfRange(batch[i]!)
      if (value === undefined) writable.push(batch[i]!)
      else {
        const cause = Object.assign(new Error(`event_id: value "${value}" is out of range for type integer`), { code: "22003" })
        outcomes[i] = failed(new PgError({ op: "write batch", cause }).message, true)
      }
    }
    if (writable.length === batch.length) return split(batch, RETRYABLE_ATTEMPTS, true)
    return Effect.map(writable.length === 0 ? Effect.succeed([]) : split(writable, RETRYABLE_ATTEMPTS, true), (written) => {
      let next = 0
      return outcomes.map((o) => o ?? written[next++]!)
    })
  }

  const write = (batch: ReadonlyArray<CopyRow>): Effect.Effect<Array<Outcome>> =>
    Effect.tap(refuseOutOfRange(batch), (results) => {
      const stuck = results.filter((o): o is Extract<Outcome, { _tag: "Failed" }> => o._tag === "Failed" && !o.permanent)
      return stuck.length === 0
        ? Effect.void
        : Effect.logError(`${stuck.length} of ${batch.length} records not written, entries stay pending: ${stuck[0]!.reason}`)
    })

  return write
}
