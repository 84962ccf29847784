import { latin1Write, utf8Write } from "../Bytes.js"
import type { Position } from "../position/Position.js"

// PostgreSQL's binary COPY format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"):
// a signature, then per row a 16-bit field count and, per field, a 32-bit byte length and the value in the
// type's binary form (big-endian). Numbers go over as their IEEE bytes: no number is formatted as text on
// this side or parsed on the server's, and no value needs escaping.

/** Signature, flags (0), header extension length (0). */
export const COPY_HEADER = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)])
/** A field count of -1 ends the data. */
export const COPY_TRAILER = Buffer.from([0xff, 0xff])

const FIELDS = 11
// Field count, 11 lengths, ts, five doubles, two smallints, event_id (at most 8 bytes), the jsonb version byte.
const FIXED_BYTES = 2 + FIELDS * 4 + 8 + 5 * 8 + 2 + 2 + 8 + 1
// From a row's start to event_id's length, less the device id's bytes: the field count, the device id's
// length, ts, five doubles and two smallints, each field with its length.
const EVENT_ID_AT = 2 + 4 + (4 + 8) + 5 * (4 + 8) + 2 * (4 + 2)
const INT4_MAX = 2_147_483_647
const POSTGRES_EPOCH_MS = 946_684_800_000
const TWO_32 = 4_294_967_296

/** One encoded row: bytes `start` to `end` of `block`. Many rows share a block. */
export interface CopyRow {
  readonly block: Buffer
  readonly start: number
  readonly end: number
}

// One field each: its byte length, then the value in the type's binary form. Each returns the offset after it.

// A string's bytes as UTF-8 at `at`; `ascii`: the caller knows it is ASCII, whose UTF-8 is its Latin-1 (a
// byte per character, no encoding).
const utf8 = (b: Buffer, value: string, at: number, ascii: boolean): number =>
  ascii ? latin1Write(b, value, at) : utf8Write(b, value, at)

const int2 = (b: Buffer, value: number, at: number): number => b.writeInt16BE(value, b.writeInt32BE(2, at))

const int4 = (b: Buffer, value: number, at: number): number => b.writeInt32BE(value, b.writeInt32BE(4, at))

// A safe integer as int8.
const int8 = (b: Buffer, value: number, at: number): number => {
  const high = Math.floor(value / TWO_32)
  b.writeInt32BE(high, b.writeInt32BE(8, at))
  return b.writeUInt32BE(value - high * TWO_32, at + 8)
}

// timestamptz: microseconds since 2000-01-01 UTC as int8. In doubles while that is exact (within some 285
// years of 2000), in BigInt beyond.
const timestamptz = (b: Buffer, ms: number, at: number): number => {
  const micros = (ms - POSTGRES_EPOCH_MS) * 1000
  if (Number.isSafeInteger(micros)) return int8(b, micros, at)
  return b.writeBigInt64BE(BigInt(ms - POSTGRES_EPOCH_MS) * 1000n, b.writeInt32BE(8, at))
}

// The encoder's own writers: a DataView over the block (big-endian by default), whose setters the JIT makes
// plain stores, where Buffer's writeInt32BE/writeDoubleBE check and store byte by byte (about 100 ns a row
// more, measured). A value outside a setter's range (which a DataView would wrap) goes to the Buffer writer
// above, which throws as it always has.
const INT2_MIN = -32_768
const INT2_MAX = 32_767
const INT4_MIN = -INT4_MAX - 1

// `+ 0` stores JSON's -0 as 0, as the text form did.
const float8At = (v: DataView, value: number, at: number): number => {
  v.setInt32(at, 8)
  v.setFloat64(at + 4, value + 0)
  return at + 12
}

const int2At = (b: Buffer, v: DataView, value: number, at: number): number => {
  if (!(value >= INT2_MIN && value <= INT2_MAX)) return int2(b, value, at)
  v.setInt32(at, 2)
  v.setInt16(at + 4, value)
  return at + 6
}

const int4At = (v: DataView, value: number, at: number): number => {
  v.setInt32(at, 4)
  v.setInt32(at + 4, value)
  return at + 8
}

const int8At = (b: Buffer, v: DataView, value: number, at: number): number => {
  const high = Math.floor(value / TWO_32)
  if (!(high >= INT4_MIN && high <= INT4_MAX)) return int8(b, value, at)
  v.setInt32(at, 8)
  v.setInt32(at + 4, high)
  v.setUint32(at + 8, value - high * TWO_32)
  return at + 12
}

const timestamptzAt = (b: Buffer, v: DataView, ms: number, at: number): number => {
  const micros = (ms - POSTGRES_EPOCH_MS) * 1000
  return Number.isSafeInteger(micros) ? int8At(b, v, micros, at) : timestamptz(b, ms, at)
}

const textAt = (b: Buffer, v: DataView, value: string, at: number, ascii: boolean): number => {
  const bytes = utf8(b, value, at + 4, ascii)
  v.setInt32(at, bytes)
  return at + 4 + bytes
}

// jsonb: a version byte (1), then the JSON text.
const jsonbAt = (b: Buffer, v: DataView, json: string, at: number, ascii: boolean): number => {
  b[at + 4] = 1
  const bytes = utf8(b, json, at + 5, ascii)
  v.setInt32(at, 1 + bytes)
  return at + 5 + bytes
}

/**
 * Encodes rows into shared blocks, in the column order of Writer.COLUMNS and the types of `positions`
 * (binary COPY takes each value in exactly its column's type). One encoder per pipeline: it is not for
 * concurrent use.
 *
 * event_id is an `integer` column while the wire contract allows any safe integer ≥ 0: a value above
 * 2^31−1 is written as int8, which no table of ours accepts; the writer finds such rows with
 * `eventIdOutOfRange` and refuses them before the COPY, naming the value.
 */
export class RowEncoder {
  private block: Buffer = Buffer.alloc(0)
  private view = new DataView(this.block.buffer, this.block.byteOffset, 0)
  private offset = 0

  constructor(private readonly blockBytes = 256 * 1024) {}

  /** The block the last row went into (`append`). */
  get lastBlock(): Buffer {
    return this.block
  }

  /** The end of the last row in its block (`append`). */
  get lastEnd(): number {
    return this.offset
  }

  encode(p: Position, attributesJson: string, ascii = false): CopyRow {
    const start = this.append(p, attributesJson, ascii)
    return { block: this.block, start, end: this.offset }
  }

  /**
   * Encodes a row as `encode` does and returns its start, for a caller that keeps the row in an object of its
   * own (`lastBlock`, start, `lastEnd`). `ascii`: `p.device_id` and `attributesJson` are known to be ASCII (as
   * the byte scanner's are): they are copied a byte per character, not encoded; a string that is not ASCII
   * would be written wrong, so without that knowledge leave it false.
   */
  append(p: Position, attributesJson: string, ascii = false): number {
    // UTF-8 takes at most three bytes per UTF-16 unit.
    const bound = FIXED_BYTES + (ascii ? 1 : 3) * (p.device_id.length + attributesJson.length)
    if (this.offset + bound > this.block.length) {
      this.block = Buffer.allocUnsafeSlow(Math.max(this.blockBytes, bound))
      this.view = new DataView(this.block.buffer, this.block.byteOffset, this.block.length)
      this.offset = 0
    }
    const b = this.block
    const v = this.view
    const start = this.offset
    v.setInt16(start, FIELDS)
    let at = textAt(b, v, p.device_id, start + 2, ascii)
    at = timestamptzAt(b, v, p.timestamp.getTime(), at)
    at = float8At(v, p.latitude, at)
    at = float8At(v, p.longitude, at)
    at = float8At(v, p.altitude, at)
    at = float8At(v, p.angle, at)
    at = float8At(v, p.speed, at)
    at = int2At(b, v, p.satellites, at)
    at = int2At(b, v, p.priority, at)
    at = p.event_id <= INT4_MAX && p.event_id >= INT4_MIN ? int4At(v, p.event_id, at) : int8At(b, v, p.event_id, at)
    at = jsonbAt(b, v, attributesJson, at, ascii)
    this.offset = at
    return start
  }
}

/** The COPY data of a batch: header, rows, trailer, in one buffer (rows adjacent in a block are copied at once). */
export const copyData = (rows: ReadonlyArray<CopyRow>): Buffer => {
  let size = COPY_HEADER.length + COPY_TRAILER.length
  for (const r of rows) size += r.end - r.start
  const out = Buffer.allocUnsafe(size)
  let at = COPY_HEADER.copy(out, 0)
  let i = 0
  while (i < rows.length) {
    const first = rows[i]!
    let end = first.end
    while (++i < rows.length && rows[i]!.block === first.block && rows[i]!.start === end) end = rows[i]!.end
    at += first.block.copy(out, at, first.start, end)
  }
  COPY_TRAILER.copy(out, at)
  return out
}

/**
 * The COPY data of a batch with each row's index in the batch as a first int4 column (`n`): for the
 * staging table, whose rows are then told apart by it. Copies row by row: only for the fallback path.
 */
export const copyDataNumbered = (rows: ReadonlyArray<CopyRow>): Buffer => {
  let size = COPY_HEADER.length + COPY_TRAILER.length + rows.length * 8
  for (const r of rows) size += r.end - r.start
  const out = Buffer.allocUnsafe(size)
  let at = COPY_HEADER.copy(out, 0)
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    at = out.writeInt16BE(FIELDS + 1, at)
    at = int4(out, i, at)
    at += row.block.copy(out, at, row.start + 2, row.end)
  }
  COPY_TRAILER.copy(out, at)
  return out
}

/** The event_id of a row encoded as int8 because it does not fit `integer`; undefined for every other row. */
export const eventIdOutOfRange = (row: CopyRow): number | undefined => {
  const b = row.block
  const at = row.start + EVENT_ID_AT + b.readInt32BE(row.start + 2)
  if (b.readInt32BE(at) === 4) return undefined
  return Number(b.readBigInt64BE(at + 4))
}

/** The key (device_id, ts) of a row, read back from its bytes, as `keyOf` writes it. */
export const rowKey = (row: CopyRow): string => {
  const { deviceId, ms } = readKey(row)
  return keyOf(deviceId, ms)
}

/** The device id and timestamp (ms) of an encoded row. */
export const readKey = (row: CopyRow): { readonly deviceId: string; readonly ms: number } => {
  const b = row.block
  const idBytes = b.readInt32BE(row.start + 2)
  const idAt = row.start + 6
  const micros = b.readBigInt64BE(idAt + idBytes + 4)
  return { deviceId: b.toString("utf8", idAt, idAt + idBytes), ms: Number(micros / 1000n) + POSTGRES_EPOCH_MS }
}

export const keyOf = (deviceId: string, ms: number): string => `${deviceId}\u0000${ms}`
