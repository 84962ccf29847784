import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { AttributeValue, Position } from "../src/position/Position.js"
import { attributesJson } from "../src/position/attributesJson.js"
import {
  COPY_HEADER,
  COPY_TRAILER,
  copyData,
  copyDataNumbered,
  type CopyRow,
  eventIdOutOfRange,
  keyOf,
  readKey,
  RowEncoder,
  rowKey
} from "../src/writer/copyBinary.js"

const POSTGRES_EPOCH_MS = 946_684_800_000

/** Reads one row back as PostgreSQL's binary COPY input would: field count, then (length, bytes) per field. */
const readRow = (row: CopyRow) => {
  const b = row.block.subarray(row.start, row.end)
  expect(b.readInt16BE(0)).toBe(11)
  const fields: Array<Buffer> = []
  let at = 2
  for (let i = 0; i < 11; i++) {
    const length = b.readInt32BE(at)
    fields.push(b.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  expect(at).toBe(b.length)
  const [id, ts, lat, lon, alt, angle, speed, sats, prio, event, attrs] = fields as [Buffer, ...Array<Buffer>]
  expect([ts, lat, lon, alt, angle, speed].map((f) => f!.length)).toEqual([8, 8, 8, 8, 8, 8])
  // integer, as positions.event_id is; int8 only for a value that does not fit (refused by the writer).
  expect([4, 8]).toContain(event!.length)
  expect([sats, prio].map((f) => f!.length)).toEqual([2, 2])
  expect(attrs![0]).toBe(1)
  return {
    device_id: id.toString("utf8"),
    micros: ts!.readBigInt64BE(0),
    latitude: lat!.readDoubleBE(0),
    longitude: lon!.readDoubleBE(0),
    altitude: alt!.readDoubleBE(0),
    angle: angle!.readDoubleBE(0),
    speed: speed!.readDoubleBE(0),
    satellites: sats!.readInt16BE(0),
    priority: prio!.readInt16BE(0),
    event_id: event!.length === 4 ? BigInt(event!.readInt32BE(0)) : event!.readBigInt64BE(0),
    attributes: attrs!.subarray(1).toString("utf8")
  }
}

const position = (overrides: Partial<Position> = {}): Position => ({
  device_id: "356307042441013",
  timestamp: new Date(Date.UTC(2026, 4, 1, 10, 0, 0, 250)),
  latitude: 54.6872,
  longitude: -25.2797,
  altitude: 112.5,
  angle: 270,
  speed: 0,
  satellites: 11,
  priority: 2,
  event_id: 240,
  attributes: { "16": 123456, "78": 18446744073709551615n, "385": new Uint8Array([1, 2, 3]) },
  ...overrides
})

describe("RowEncoder", () => {
  it("writes the 11 columns in their binary forms", () => {
    const p = position()
    const json = attributesJson(p.attributes)
    expect(readRow(new RowEncoder().encode(p, json))).toStrictEqual({
      device_id: "356307042441013",
      micros: BigInt(Date.UTC(2026, 4, 1, 10, 0, 0, 250) - POSTGRES_EPOCH_MS) * 1000n,
      latitude: 54.6872,
      longitude: -25.2797,
      altitude: 112.5,
      angle: 270,
      speed: 0,
      satellites: 11,
      priority: 2,
      event_id: 240n,
      attributes: "{\"16\":123456,\"78\":18446744073709551615,\"385\":\"010203\"}"
    })
  })

  it("writes text as UTF-8 bytes, unescaped, and -0 as 0", () => {
    const row = readRow(new RowEncoder().encode(position({ device_id: "dév\t1\\ü✓", speed: -0 }), "{\"n\":\"a\\nb ✓\"}"))
    expect(row.device_id).toBe("dév\t1\\ü✓")
    expect(row.attributes).toBe("{\"n\":\"a\\nb ✓\"}")
    expect(Object.is(row.speed, 0)).toBe(true)
  })

  it("refuses a value its column type cannot hold rather than wrapping it (a stage's record; the decoder lets none through)", () => {
    const encoder = new RowEncoder()
    expect(() => encoder.encode(position({ satellites: 70_000 }), "{}")).toThrow(RangeError)
    expect(() => encoder.encode(position({ priority: -40_000 }), "{}")).toThrow(RangeError)
    expect(() => encoder.encode(position({ event_id: 2 ** 64 }), "{}")).toThrow(RangeError)
    // The encoder goes on after a refusal.
    expect(readRow(encoder.encode(position({ satellites: 255 }), "{}")).satellites).toBe(255)
  })

  it("round-trips every value the decoder accepts, across blocks (property)", () => {
    const awkward = fc.string({ unit: fc.oneof(fc.constantFrom("\t", "\\", "\n", "é", "✓", "😀"), fc.char()) })
    const positionArb = fc.record({
      device_id: awkward.filter((s) => s.length > 0 && s.length <= 64),
      // Years 0000 to 9999: microseconds since 2000 beyond 2^53 for the far ends.
      ms: fc.integer({ min: -62_167_219_200_000, max: 253_402_300_799_999 }),
      latitude: fc.double({ min: -90, max: 90, noNaN: true }),
      longitude: fc.double({ min: -180, max: 180, noNaN: true }),
      altitude: fc.double({ noNaN: true, noDefaultInfinity: true }),
      angle: fc.double({ min: 0, max: 360, noNaN: true }),
      speed: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }),
      satellites: fc.integer({ min: 0, max: 255 }),
      priority: fc.integer({ min: 0, max: 2 }),
      event_id: fc.oneof(fc.integer({ min: 0, max: 2_147_483_647 }), fc.maxSafeNat()),
      note: awkward
    })
    // A small block size, so rows regularly start a new block.
    const encoder = new RowEncoder(512)
    fc.assert(
      fc.property(positionArb, ({ ms, note, ...rest }) => {
        const attributes: Record<string, AttributeValue> = { note }
        const p: Position = { ...rest, timestamp: new Date(ms), attributes }
        const json = attributesJson(attributes)
        const row = encoder.encode(p, json)
        const back = readRow(row)
        expect(back.device_id).toBe(p.device_id)
        expect(back.micros).toBe(BigInt(ms - POSTGRES_EPOCH_MS) * 1000n)
        expect([back.latitude, back.longitude, back.altitude, back.angle, back.speed])
          .toEqual([p.latitude, p.longitude, p.altitude, p.angle, p.speed].map((v) => v + 0))
        expect([back.satellites, back.priority, back.event_id]).toEqual([p.satellites, p.priority, BigInt(p.event_id)])
        expect(eventIdOutOfRange(row)).toBe(p.event_id > 2_147_483_647 ? p.event_id : undefined)
        expect(JSON.parse(back.attributes)).toEqual({ note })
        expect(readKey(row)).toEqual({ deviceId: p.device_id, ms })
        expect(rowKey(row)).toBe(keyOf(p.device_id, ms))
      }),
      { numRuns: 1000 }
    )
  })
})

describe("RowEncoder, ASCII known (append with ascii)", () => {
  it("writes the same bytes as the UTF-8 path for ASCII text, across blocks, and rows of both kinds interleave (property)", () => {
    const asciiText = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)) })
    const asciiEncoder = new RowEncoder(512)
    const reference = new RowEncoder(512)
    fc.assert(
      fc.property(asciiText.filter((s) => s.length > 0 && s.length <= 64), asciiText, fc.boolean(), (deviceId, note, mixed) => {
        const p = position({ device_id: deviceId, attributes: { note } })
        const json = attributesJson(p.attributes)
        // A non-ASCII row in between (the UTF-8 path of the same encoder) moves the offsets.
        if (mixed) asciiEncoder.append(position({ device_id: "dév✓" }), "{\"n\":\"😀\"}")
        const start = asciiEncoder.append(p, json, true)
        const row = { block: asciiEncoder.lastBlock, start, end: asciiEncoder.lastEnd }
        const expected = reference.encode(p, json)
        expect(row.block.subarray(row.start, row.end)).toEqual(expected.block.subarray(expected.start, expected.end))
        expect(readRow(row).device_id).toBe(deviceId)
      }),
      { numRuns: 1000 }
    )
  })
})

describe("copyData", () => {
  it("is the header, the rows in order, and the trailer, whether rows share a block or not", () => {
    const small = new RowEncoder(300)
    const p = (n: number) => position({ device_id: `dev-${n}`, event_id: n })
    const rows = Array.from({ length: 7 }, (_, n) => small.encode(p(n), "{}"))
    // Out of order and with a gap, so adjacent runs are not the whole story.
    const picked = [rows[0]!, rows[1]!, rows[3]!, rows[2]!, rows[4]!, rows[5]!, rows[6]!]
    expect(new Set(picked.map((r) => r.block)).size).toBeGreaterThan(1)
    const expected = Buffer.concat([COPY_HEADER, ...picked.map((r) => r.block.subarray(r.start, r.end)), COPY_TRAILER])
    expect(copyData(picked).equals(expected)).toBe(true)
    expect(copyData([]).equals(Buffer.concat([COPY_HEADER, COPY_TRAILER]))).toBe(true)
    expect(COPY_HEADER.toString("latin1", 0, 11)).toBe("PGCOPY\n\xff\r\n\0")
  })
})

describe("event_id", () => {
  it("is an int4 up to 2^31-1, and an int8 the writer finds and refuses above", () => {
    const encoder = new RowEncoder()
    expect(eventIdOutOfRange(encoder.encode(position({ event_id: 2_147_483_647 }), "{}"))).toBeUndefined()
    expect(eventIdOutOfRange(encoder.encode(position({ device_id: "d", event_id: 2_147_483_648 }), "{}"))).toBe(2_147_483_648)
    expect(eventIdOutOfRange(encoder.encode(position({ event_id: Number.MAX_SAFE_INTEGER }), "{}"))).toBe(Number.MAX_SAFE_INTEGER)
  })
})

describe("copyDataNumbered", () => {
  it("puts each row's index first, as a 12th field, and the row's fields after it", () => {
    const encoder = new RowEncoder(300)
    const rows = Array.from({ length: 5 }, (_, n) => encoder.encode(position({ device_id: `dev-${n}` }), "{}"))
    const data = copyDataNumbered(rows)
    let at = COPY_HEADER.length
    expect(data.subarray(0, at).equals(COPY_HEADER)).toBe(true)
    rows.forEach((row, i) => {
      expect(data.readInt16BE(at)).toBe(12)
      expect(data.readInt32BE(at + 2)).toBe(4)
      expect(data.readInt32BE(at + 6)).toBe(i)
      const fields = row.block.subarray(row.start + 2, row.end)
      expect(data.subarray(at + 10, at + 10 + fields.length).equals(fields)).toBe(true)
      at += 10 + fields.length
    })
    expect(data.subarray(at).equals(COPY_TRAILER)).toBe(true)
  })
})
