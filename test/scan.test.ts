import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { streamIdTime } from "../src/consumer/Consumer.js"
import { attributesJson } from "../src/position/attributesJson.js"
import { decodeEntry, decodePayload, type Limits } from "../src/position/decode.js"
import { type AttributeValue, parseInstant } from "../src/position/Position.js"
import { ScannedPosition, scanPayload } from "../src/position/scan.js"
import { generatePayloads } from "../src/simulate/Generator.js"
import { bytesEntry, checkAgainstToday, decodedDifference } from "./support/ScanCheck.js"

// The byte-level fast path (src/position/scan.ts) against today's decoder (decode.ts), on bytes: the producer's
// own payloads, payloads built the way it builds them, and every kind of damage to them. Whenever the fast path
// accepts, its record is today's; and decodeEntry's verdict is the same whether the entry's bytes are scanned or not.

const NOW = Date.UTC(2026, 4, 1, 12)
const limits: Limits = { maxPayloadBytes: 32_768, maxFutureSkewMs: 24 * 3_600_000 }
const ID = `${NOW}-0`

const template = {
  device_id: "356307042441013",
  timestamp: "2026-05-01T10:00:00.000Z",
  latitude: 54.6872,
  longitude: 25.2797,
  altitude: 112,
  angle: 270,
  speed: 43.5,
  satellites: 11,
  priority: 1,
  event_id: 240,
  attributes: { "1": true, "16": 123456, "78": { __bigint: "18446744073709551615" }, "385": { __bytes: "AQID" }, ign: true, name: "x" }
}
const text = (u: unknown) => Buffer.from(JSON.stringify(u))
const withField = (field: string, value: unknown) => ({ ...template, [field]: value })

/** A valid payload's JSON text with `replacement` in place of one field's value text (raw JSON, any bytes). */
const withRawField = (field: string, raw: string): Buffer => {
  const json = JSON.stringify(withField(field, "\u0001HOLE\u0001"))
  return Buffer.from(json.replace(JSON.stringify("\u0001HOLE\u0001"), raw))
}
const withRawAttribute = (raw: string): Buffer =>
  Buffer.from(JSON.stringify(withField("attributes", { "16": 1, v: "\u0001HOLE\u0001" })).replace(JSON.stringify("\u0001HOLE\u0001"), raw))

// Number texts: JSON's grammar and around it.
const numberText: fc.Arbitrary<string> = fc.oneof(
  fc.double().map(String),
  fc.double({ min: -400, max: 400, noNaN: true }).map(String),
  fc.integer().map(String),
  fc.maxSafeInteger().map(String),
  fc.tuple(
    fc.constantFrom("", "-", "+"),
    fc.oneof(fc.constantFrom("0", "00", "01", ""), fc.stringMatching(/^[1-9][0-9]{0,18}$/)),
    fc.oneof(fc.constant(""), fc.constant("."), fc.stringMatching(/^\.[0-9]{1,24}$/)),
    fc.oneof(fc.constant(""), fc.stringMatching(/^[eE][+-]?[0-9]{1,3}$/))
  ).map(([sign, int, frac, exp]) => sign + int + frac + exp),
  fc.constantFrom(
    "-0", "0", "0.0", "-0.0", "1.50", "1e21", "1E2", "1e-7", "0.1", "0.30000000000000004", "123456789012345",
    "1234567890123456", "12345678901234567890", "0.000001", "0.0000001", "0.0000010", "9007199254740993", "90",
    "90.0000000000001", "-90", "360", "255", "2", "1.0", "5e-324", "1.7976931348623157e308", "1e400", "-1e400",
    "0.1234567890123456789012", "12.3456789012345", "99999999999999.9", "0.00000123", "4294967295"
  )
)

const pad = (n: number, width: number) => String(n).padStart(width, "0")
const timestampText: fc.Arbitrary<string> = fc.oneof(
  fc.date({ min: new Date(Date.UTC(1999, 0, 1)), max: new Date(Date.UTC(2200, 0, 1)), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.tuple(
    fc.oneof(fc.integer({ min: 1999, max: 2101 }), fc.constantFrom(0, 1970, 9999)),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: 0, max: 24 }),
    fc.integer({ min: 0, max: 60 }),
    fc.integer({ min: 0, max: 60 }),
    fc.oneof(fc.constant(""), fc.stringMatching(/^\.[0-9]{0,10}$/)),
    fc.constantFrom("Z", "Z", "Z", "+02:00", "-00:30", "z", "", "+24:00")
  ).map(([y, mo, d, h, mi, s, frac, zone]) => `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}${frac}${zone}`)
)

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const attributeName = fc.oneof(
  fc.integer({ min: 0, max: 400 }).map(String),
  fc.constantFrom("0", "01", "4294967294", "4294967295", "-1", "1.5", "ign", "name", "__proto__", "__bigint", ""),
  fc.string({ maxLength: 8 }),
  fc.string({ minLength: 63, maxLength: 65 })
)
const attributeValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: fc.oneof(fc.nat({ max: 1_000_000 }), fc.boolean(), fc.stringMatching(/^[A-Z0-9 ]{0,17}$/), fc.bigUint({ max: 2n ** 64n - 1n }).map((b) => ({ __bigint: b.toString() })), fc.uint8Array({ maxLength: 8 }).map((bytes) => ({ __bytes: Buffer.from(bytes).toString("base64") }))) },
  { weight: 1, arbitrary: fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((n) => n / 1000),
  fc.boolean(),
  fc.string({ maxLength: 12 }),
  fc.fullUnicodeString({ maxLength: 4 }),
  fc.bigInt().map((b) => ({ __bigint: b.toString() })),
  fc.constantFrom({ __bigint: "-0" }, { __bigint: "007" }, { __bigint: "" }, { __bigint: "-" }, { __bigint: 1 }, null, [], {}),
  fc.uint8Array({ maxLength: 20 }).map((bytes) => ({ __bytes: Buffer.from(bytes).toString("base64") })),
  // Regex-valid base64 whose last character has bits beyond the last byte ("AB==").
  fc.stringMatching(/^(?:[A-Za-z0-9+/]{4}){0,3}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/).map((s) => ({ __bytes: s })),
  fc.string({ maxLength: 9, unit: fc.constantFrom(...B64, "=", "-", "_") }).map((s) => ({ __bytes: s })),
  fc.constantFrom({ __bytes: "AQID", x: 1 }, { __bigint: "1", __bytes: "" })
  ) }
)

/** A payload as the producer makes it (JSON.stringify of the wire object), most of them valid. */
const producerPayload: fc.Arbitrary<Record<string, unknown>> = fc.record({
  device_id: fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^3563070[0-9]{8}$/) }, fc.string({ minLength: 1, maxLength: 66 }), fc.fullUnicodeString({ maxLength: 4 })),
  timestamp: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }).map((ms) => new Date(ms).toISOString()) }, { weight: 1, arbitrary: timestampText }),
  latitude: fc.oneof(fc.integer({ min: -900_000_000, max: 900_000_000 }).map((n) => n / 1e7), fc.double({ min: -91, max: 91, noNaN: true })),
  longitude: fc.oneof(fc.integer({ min: -1_800_000_000, max: 1_800_000_000 }).map((n) => n / 1e7), fc.double({ min: -181, max: 181, noNaN: true })),
  altitude: fc.oneof(fc.integer({ min: -500, max: 9000 }), fc.double({ noNaN: true, noDefaultInfinity: true })),
  angle: fc.oneof(fc.integer({ min: 0, max: 360 }), fc.double({ min: -1, max: 361, noNaN: true })),
  speed: fc.oneof(fc.integer({ min: 0, max: 3000 }).map((n) => n / 10), fc.double({ min: -1, max: 1e6, noNaN: true })),
  satellites: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 255 }) }, fc.constantFrom(-1, 256, 1.5)),
  priority: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 2 }) }, fc.constantFrom(-1, 3, 0.5)),
  event_id: fc.oneof({ weight: 6, arbitrary: fc.nat({ max: 400 }) }, fc.maxSafeNat(), fc.constantFrom(-1, 2 ** 53, 1.5)),
  attributes: fc.array(fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 400 }).map(String) }, { weight: 1, arbitrary: attributeName }), attributeValue), { maxLength: 12 })
    .map((entries) => Object.fromEntries(entries))
}, { requiredKeys: ["device_id", "timestamp", "latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority"] })

/** Raw byte sequences that break the producer's form: whitespace, escapes, syntax, non-ASCII, invalid UTF-8. */
const insertion: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(" ", "\n", "\t", "\r", ",", ":", "\"", "\\", "{", "}", "[", "]", "0", "-", ".", "e", "é", "😀", "\u0000", "\u007f", "\\u0000", "\\n", "\\\"")
    .map((s) => Buffer.from(s)),
  fc.constantFrom([0xff], [0xc3], [0x80], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x98], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80])
    .map((bytes) => Buffer.from(bytes)),
  fc.uint8Array({ minLength: 1, maxLength: 3 }).map((bytes) => Buffer.from(bytes))
)

const splice = (b: Buffer, at: number, remove: number, add: Buffer): Buffer =>
  Buffer.concat([b.subarray(0, at), add, b.subarray(Math.min(b.length, at + remove))])

/** One change to a payload's bytes, at a position given as a fraction of its length. */
type Mutation = (b: Buffer) => Buffer
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.double({ min: 0, max: 1, noNaN: true }).map((f): Mutation => (b) => b.subarray(0, Math.floor(f * b.length))),
  fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), insertion).map(([f, add]): Mutation => (b) => splice(b, Math.floor(f * b.length), 0, add)),
  fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), insertion).map(([f, add]): Mutation => (b) => splice(b, Math.floor(f * b.length), 1, add)),
  fc.double({ min: 0, max: 1, noNaN: true }).map((f): Mutation => (b) => splice(b, Math.floor(f * b.length), 1, Buffer.alloc(0))),
  // A key twice (top level or in the attributes), an unknown key, a field moved to the end.
  fc.constantFrom(`"latitude":1,`, `"device_id":"x",`, `"attributes":{},`, `"extra":1,`, `"__proto__":{},`, `"event_id":0,`)
    .map((member): Mutation => (b) => splice(b, 1, 0, Buffer.from(member))),
  fc.constantFrom(`,"latitude":1`, `,"attributes":{"1":1}`, `,"timestamp":"2026-05-01T10:00:00Z"`, `,"x":null`)
    .map((member): Mutation => (b) => splice(b, b.length - 1, 0, Buffer.from(member))),
  fc.constantFrom(`"16":1,`, `"1":2,`, `"ign":false,`, `"zz":1,`, `"999":1,`, `"__proto__":1,`).map((member): Mutation => (b) => {
    const at = b.indexOf(`"attributes":{`)
    return at < 0 ? b : splice(b, at + 14, 0, Buffer.from(member))
  }),
  // A character of a string written as an escape.
  fc.double({ min: 0, max: 1, noNaN: true }).map((f): Mutation => (b) => {
    const quotes: Array<number> = []
    for (let i = 0; i < b.length; i++) if (b[i] === 0x22 && b[i + 1] !== 0x3a && b[i + 1] !== 0x2c && b[i + 1] !== 0x7d) quotes.push(i)
    if (quotes.length === 0) return b
    const at = quotes[Math.floor(f * quotes.length) % quotes.length]! + 1
    const c = b[at]
    if (c === undefined || c === 0x22 || c === 0x5c || c >= 0x80) return b
    return splice(b, at, 1, Buffer.from(`\\u${c.toString(16).padStart(4, "0")}`))
  })
)

const mutated: fc.Arbitrary<Buffer> = fc.tuple(producerPayload, fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([u, changes]) => changes.reduce<Buffer>((b, change) => change(b), text(u)))

const entryId = fc.constantFrom(ID, `${NOW - 2 * 86_400_000}-0`, `${Date.UTC(2100, 0, 1)}-3`, "0-1", "custom")
const limitsArb: fc.Arbitrary<Limits> = fc.record({
  maxPayloadBytes: fc.constantFrom(32_768, 32_768, 300, 64),
  maxFutureSkewMs: fc.constantFrom(24 * 3_600_000, 0, 1)
})

describe("scanPayload", () => {
  it("accepts every payload the simulator makes, with today's record", () => {
    const payloads = generatePayloads({ count: 5_000, devices: 500, seed: 7 })
    for (const payload of payloads) expect(checkAgainstToday(Buffer.from(payload), limits)).toBe(true)
  })

  it("accepts the README's example, whose attributes hold every kind of value", () => {
    const bytes = text(template)
    expect(checkAgainstToday(bytes, limits)).toBe(true)
    const scanned = scanPayload(bytes)!
    expect(scanned.attributesJson).toBe(`{"1":true,"16":123456,"78":18446744073709551615,"385":"010203","ign":true,"name":"x"}`)
    expect(scanned.position.attributes).toStrictEqual({ "1": true, "16": 123456, "78": 18446744073709551615n, "385": new Uint8Array([1, 2, 3]), ign: true, name: "x" })
  })

  it("without attributes: {} and \"{}\", as today", () => {
    const { attributes: _, ...bare } = template
    expect(checkAgainstToday(text(bare), limits)).toBe(true)
    const scanned = scanPayload(text(bare))!
    expect(scanned.attributesJson).toBe("{}")
    expect(scanned.position.attributes).toStrictEqual({})
    expect(checkAgainstToday(text({ ...bare, event_id: undefined }), limits)).toBe(true)
    expect(scanPayload(text({ ...bare, event_id: undefined }))!.position.event_id).toBe(0)
  })

  it("leaves to today's decoder what is not in the producer's form, and decodeEntry's verdict stays the same", () => {
    const valid = JSON.stringify(template)
    const others = [
      JSON.stringify(template, null, 1), // whitespace
      valid.replace(`"device_id"`, `"device\\u005fid"`), // an escape in a key
      valid.replace(`"356307042441013"`, `"35630704244101\\u0033"`), // an escape in a value
      valid.replace(`{"device_id"`, `{"x":1,"device_id"`), // an unknown key
      valid.replace(`{"device_id"`, `{"speed":1,"device_id"`), // a key twice
      valid.replace(`"ign":true`, `"ign":true,"ign":false`), // an attribute twice
      valid.replace(`{"1":true,"16":123456`, `{"16":123456,"1":true`), // an order JSON.parse changes
      valid.replace(`"356307042441013"`, `"35630704244101é"`), // non-ASCII
      valid.replace(`"16":123456`, `"16":1.50`), // an attribute number not in its stored form
      valid.replace(`"16":123456`, `"16":1.2e2`),
      valid.replace(`"16":123456`, `"16":-0`),
      valid.replace(`"16":123456`, `"16":0.0000001`),
      valid.replace(`"16":123456`, `"16":12345678901234567`),
      valid.replace(`"18446744073709551615"`, `"-0"`),
    ]
    for (const other of others) expect(checkAgainstToday(Buffer.from(other), limits), other).toBe(false)
    // Still scanned: only the attributes' stored JSON needs the shortest form, and parseInstant reads offsets.
    const scanned = [
      valid.replace(`"altitude":112`, `"altitude":112.0`),
      valid.replace(`"altitude":112`, `"altitude":1.12e2`),
      valid.replace(`"latitude":54.6872`, `"latitude":54.68720000000000000001`),
      valid.replace("2026-05-01T10:00:00.000Z", "2026-05-01T12:00:00.000+02:00")
    ]
    for (const other of scanned) expect(checkAgainstToday(Buffer.from(other), limits), other).toBe(true)
  })

  it("many attributes: indices up to MAX_ATTRIBUTES, at most 32 other names (more go to today's decoder)", () => {
    const indices = Object.fromEntries(Array.from({ length: 512 }, (_, i) => [String(i), i]))
    expect(checkAgainstToday(text(withField("attributes", indices)), limits)).toBe(true)
    expect(checkAgainstToday(text(withField("attributes", { ...indices, "512": 1 })), limits)).toBe(false)
    const named = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${"n".repeat(60)}${String(i).padStart(4, "0")}`, i]))
    expect(checkAgainstToday(text(withField("attributes", named(32))), limits)).toBe(true)
    expect(checkAgainstToday(text(withField("attributes", named(33))), limits)).toBe(false)
    expect(checkAgainstToday(text(withField("attributes", named(512))), limits)).toBe(false)
  })

  it("reads numbers as JSON.parse does, and copies an attribute's number only when its text is the stored one", () => {
    fc.assert(
      fc.property(numberText, fc.constantFrom("latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority", "event_id", "attribute"), (number, where) => {
        const bytes = where === "attribute" ? withRawAttribute(number) : withRawField(where, number)
        const accepted = checkAgainstToday(bytes, limits)
        if (accepted && where === "attribute") expect(String(Number(number))).toBe(number)
      }),
      { numRuns: 4000 }
    )
  })

  it("reads timestamps as parseInstant does (fractions, offsets, impossible dates)", () => {
    fc.assert(
      fc.property(timestampText, (timestamp) => {
        const bytes = withRawField("timestamp", JSON.stringify(timestamp))
        if (checkAgainstToday(bytes, limits)) expect(scanPayload(bytes)!.position.timestamp.getTime()).toBe(parseInstant(timestamp))
      }),
      { numRuns: 3000 }
    )
  })

  it("on payloads made as the producer makes them: today's record whenever it accepts, the same verdict always", () => {
    let accepted = 0
    fc.assert(
      fc.property(producerPayload, entryId, limitsArb, (u, id, l) => {
        if (checkAgainstToday(text(u), l, id)) accepted++
      }),
      { numRuns: 3000 }
    )
    // Not vacuous: a good share of them take the fast path.
    expect(accepted).toBeGreaterThan(300)
  })

  it("on damaged payloads (truncated, whitespace, escapes, keys twice, non-ASCII, invalid UTF-8 …): the same", () => {
    fc.assert(
      fc.property(mutated, entryId, limitsArb, (bytes, id, l) => {
        checkAgainstToday(bytes, l, id)
      }),
      { numRuns: 4000 }
    )
  })

  it("never throws, whatever the bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 8 }).map((tail) => Buffer.concat([text(template).subarray(0, 200), tail]))), (bytes) => {
        const b = Buffer.from(bytes)
        expect(() => scanPayload(b)).not.toThrow()
        checkAgainstToday(b, limits)
      }),
      { numRuns: 2000 }
    )
  })

  it("attributes: bytes as hex, bigints exact, the map made on first use with today's values", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 4, unit: fc.constantFrom(..."abc123") }), attributeValue), { maxLength: 10 }), (entries) => {
        const bytes = text(withField("attributes", Object.fromEntries(entries)))
        const scanned = scanPayload(bytes)
        checkAgainstToday(bytes, limits)
        if (scanned !== undefined) {
          expect(scanned.position).toBeInstanceOf(ScannedPosition)
          expect(scanned.attributesJson).toBe(attributesJson(scanned.position.attributes as Record<string, AttributeValue>))
          // The same object on every read.
          expect(scanned.position.attributes).toBe(scanned.position.attributes)
        }
      }),
      { numRuns: 2000 }
    )
  })

  it("a scanned position does not depend on the reply's buffer: overwritten after decoding, the attributes map is the same", () => {
    const withoutSentinels = { ...template, attributes: { "1": true, "16": 123456, name: "x" } }
    for (const payload of [template, withoutSentinels]) {
      const expected = decodePayload(JSON.stringify(payload))
      // The payload as a view in the middle of a larger reply buffer, as Redis replies are read.
      const reply = Buffer.concat([Buffer.from("*2\r\n"), text(payload), Buffer.from("\r\n")])
      const bytes = reply.subarray(4, reply.length - 2)
      const decoded = decodeEntry(bytesEntry(ID, bytes), limits)
      reply.fill(0x30)
      if (Either.isLeft(decoded) || Either.isLeft(expected)) throw new Error("the payload is valid")
      expect(decoded.right.position).toBeInstanceOf(ScannedPosition)
      expect(decoded.right.position.attributes).toEqual(expected.right.position.attributes)
      expect(decoded.right.attributesJson).toBe(expected.right.attributesJson)
    }
  })

  it("decodeEntry applies MAX_PAYLOAD_BYTES and MAX_FUTURE_SKEW to scanned entries as to others", () => {
    const bytes = text(template)
    expect(decodeEntry(bytesEntry(ID, bytes), { ...limits, maxPayloadBytes: bytes.length - 1 })).toStrictEqual(
      decodeEntry({ id: ID, payload: bytes.toString() }, { ...limits, maxPayloadBytes: bytes.length - 1 })
    )
    const far = text(withField("timestamp", "2026-05-03T12:00:00.001Z"))
    const result = decodeEntry(bytesEntry(ID, far), limits)
    expect(Either.isLeft(result) && result.left._tag).toBe("Invalid")
    const fine = decodeEntry(bytesEntry(ID, bytes), limits)
    const today = decodePayload(bytes.toString())
    expect(Either.isRight(fine) && Either.isRight(today) && decodedDifference(fine.right, today.right)).toBeUndefined()
  })
})

describe("streamIdTime", () => {
  it("reads an id's milliseconds as Number() of the part before the dash does", () => {
    const slow = (id: string) => {
      const dash = id.indexOf("-")
      return dash > 0 ? Number(id.slice(0, dash)) : NaN
    }
    const ids = fc.oneof(
      fc.tuple(fc.oneof(fc.nat().map(String), fc.maxSafeNat().map(String), fc.stringMatching(/^[0-9]{0,20}$/)), fc.nat()).map(([ms, seq]) => `${ms}-${seq}`),
      fc.string({ maxLength: 24, unit: fc.constantFrom(..."0123456789-+ .eExX") }),
      fc.string()
    )
    fc.assert(
      fc.property(ids, (id) => {
        expect(Object.is(streamIdTime(id), slow(id)), id).toBe(true)
      }),
      { numRuns: 5000 }
    )
    expect(streamIdTime("1777629600000-0")).toBe(1777629600000)
    expect(streamIdTime("custom")).toBeNaN()
  })
})
