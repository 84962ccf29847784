import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { Reason, render } from "../src/deadletter/Reason.js"
import { attributesJson, memberOpening, openingsSize } from "../src/position/attributesJson.js"
import { decodeEntry, decodePayload, fastDecode, type Limits } from "../src/position/decode.js"
import {
  decodeAttribute,
  decodeStrict,
  MAX_ATTRIBUTE_KEY_LENGTH,
  parseInstant,
  type Position,
  unstorable
} from "../src/position/Position.js"
import { MAX_ATTRIBUTES } from "../src/position/Position.js"
import { readKey, RowEncoder } from "../src/writer/copyBinary.js"
import { checkAgainstToday } from "./support/ScanCheck.js"

/** The decoders' positions; their attributes' stored JSON is checked in the properties below. */
const decodePosition = (payload: string | undefined): Either.Either<Position, string> =>
  Either.map(decodePayload(payload), (d) => d.position)
const fastPosition = (u: unknown): Position | undefined => fastDecode(u)?.position

const canonical = {
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
  attributes: { "16": 123456, "78": { __bigint: "18446744073709551615" }, "385": { __bytes: "AQID" }, ign: true, name: "x" }
}

const expected: Position = {
  device_id: "356307042441013",
  timestamp: new Date(Date.UTC(2026, 4, 1, 10, 0, 0, 0)),
  latitude: 54.6872,
  longitude: 25.2797,
  altitude: 112,
  angle: 270,
  speed: 43.5,
  satellites: 11,
  priority: 1,
  event_id: 240,
  attributes: { "16": 123456, "78": 18446744073709551615n, "385": new Uint8Array([1, 2, 3]), ign: true, name: "x" }
}

const withField = (field: string, value: unknown): Record<string, unknown> => ({ ...canonical, [field]: value })
const without = (field: string): Record<string, unknown> => {
  const copy: Record<string, unknown> = { ...canonical }
  delete copy[field]
  return copy
}
const withAttribute = (value: unknown) => withField("attributes", { "78": value })

const leftOf = (result: Either.Either<Position, string>): string => {
  if (Either.isRight(result)) throw new Error(`expected a rejection, got ${String(result.right.device_id)}`)
  return result.left
}
const rightOf = (result: Either.Either<Position, string>): Position => {
  if (Either.isLeft(result)) throw new Error(`expected a position, got: ${result.left}`)
  return result.right
}

/** The first difference between two decoded values, or undefined. Numbers compare with Object.is unless `signedZero` is false. */
const difference = (a: unknown, b: unknown, path: string, signedZero = true): string | undefined => {
  if (typeof a === "number" && typeof b === "number") {
    return Object.is(a, b) || (!signedZero && a === b) ? undefined : `${path}: ${a} ≠ ${b}`
  }
  if (typeof a === "bigint" || typeof a === "string" || typeof a === "boolean" || a === null || a === undefined) {
    return a === b ? undefined : `${path}: ${String(a)} ≠ ${String(b)}`
  }
  if (a instanceof Date) {
    return b instanceof Date && a.getTime() === b.getTime() ? undefined : `${path}: dates differ`
  }
  if (a instanceof Uint8Array) {
    return b instanceof Uint8Array && Object.getPrototypeOf(b) === Uint8Array.prototype &&
        Buffer.from(a).equals(Buffer.from(b)) ?
      undefined :
      `${path}: bytes differ`
  }
  if (typeof a === "object" && typeof b === "object" && b !== null) {
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: prototypes differ`
    const ka = Object.keys(a).sort()
    const kb = Object.keys(b).sort()
    if (ka.join("\u0000") !== kb.join("\u0000")) return `${path}: keys ${JSON.stringify(ka)} ≠ ${JSON.stringify(kb)}`
    for (const k of ka) {
      const d = difference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, signedZero)
      if (d !== undefined) return d
    }
    return undefined
  }
  return `${path}: ${typeof a} vs ${typeof b}`
}

describe("decodeStrict and fastDecode, by example", () => {
  it("decode the canonical payload, sentinels resolved", () => {
    const strict = rightOf(decodeStrict(canonical))
    expect(strict).toStrictEqual(expected)
    expect(strict.attributes["78"]).toBe(18446744073709551615n)
    expect(difference(fastPosition(canonical), expected, "fast")).toBeUndefined()
    expect(difference(rightOf(decodePosition(JSON.stringify(canonical))), expected, "payload")).toBeUndefined()
  })

  it("accept the boundaries of every range", () => {
    const edges: Array<[string, unknown]> = [
      ["device_id", "d".repeat(64)],
      ["device_id", "x"],
      ["latitude", -90],
      ["latitude", 90],
      ["longitude", -180],
      ["longitude", 180],
      ["altitude", -1e300],
      ["angle", 0],
      ["angle", 360],
      ["speed", 0],
      ["satellites", 0],
      ["satellites", 255],
      ["priority", 0],
      ["priority", 2],
      ["event_id", 0],
      ["event_id", Number.MAX_SAFE_INTEGER]
    ]
    for (const [field, value] of edges) {
      const strict = rightOf(decodeStrict(withField(field, value)))
      expect((strict as unknown as Record<string, unknown>)[field]).toBe(value)
      expect(fastPosition(withField(field, value)), field).toBeDefined()
    }
  })

  it.each<[string, unknown]>([
    ["device_id", ""],
    ["device_id", "d".repeat(65)],
    ["device_id", 356307042441013],
    ["device_id", null],
    ["timestamp", "2026-05-01T10:00:00"],
    ["timestamp", "2026-05-01 10:00:00Z"],
    ["timestamp", "2026-05-01"],
    ["timestamp", "2026-05-01T10:00:00+0530"],
    ["timestamp", "2026-13-01T10:00:00Z"],
    ["timestamp", "2026-05-01T10:00:00.1234567890Z"],
    ["timestamp", " 2026-05-01T10:00:00Z"],
    ["timestamp", 1777629600000],
    ["latitude", 90.000001],
    ["latitude", -90.5],
    ["latitude", "54.6"],
    ["longitude", 180.000001],
    ["longitude", -181],
    ["altitude", "112"],
    ["altitude", null],
    ["angle", -0.1],
    ["angle", 360.5],
    ["speed", -0.001],
    ["speed", true],
    ["satellites", 256],
    ["satellites", -1],
    ["satellites", 3.5],
    ["priority", 3],
    ["priority", -1],
    ["priority", 0.5],
    ["event_id", -1],
    ["event_id", 1.5],
    ["event_id", "7"],
    ["event_id", null],
    ["event_id", 2 ** 53],
    ["event_id", 1e21],
    ["attributes", null],
    ["attributes", []],
    ["attributes", "16=1"]
  ])("reject %s = %j, naming the field", (field, value) => {
    const payload = withField(field, value)
    expect(leftOf(decodeStrict(payload)).startsWith(`${field}: `)).toBe(true)
    expect(fastPosition(payload)).toBeUndefined()
    expect(leftOf(decodePosition(JSON.stringify(payload))).startsWith(`${field}: `)).toBe(true)
  })

  it.each(["device_id", "timestamp", "latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority"])(
    "reject a payload without %s",
    (field) => {
      expect(leftOf(decodeStrict(without(field)))).toMatch(new RegExp(`^${field}: .*missing`))
      expect(fastPosition(without(field))).toBeUndefined()
    }
  )

  it("reject numbers too large for a double (Infinity once parsed), naming the field", () => {
    for (const field of ["altitude", "speed", "latitude"]) {
      const text = JSON.stringify(withField(field, 0)).replace(`"${field}":0`, `"${field}":1e400`)
      expect(leftOf(decodePosition(text))).toMatch(new RegExp(`^${field}: `))
    }
    expect(leftOf(decodeStrict(withField("altitude", Infinity)))).toMatch(/^altitude: /)
    expect(leftOf(decodeStrict(withField("speed", Number.NaN)))).toMatch(/^speed: /)
    expect(fastPosition(withField("altitude", -Infinity))).toBeUndefined()
  })

  it("name every offending field, on one line", () => {
    const message = leftOf(decodeStrict({ ...canonical, latitude: 91, longitude: "x", satellites: 1.5 }))
    expect(message).toContain("latitude: ")
    expect(message).toContain("longitude: ")
    expect(message).toContain("satellites: ")
    expect(message).not.toContain("\n")
  })

  it("default event_id to 0 and attributes to {}", () => {
    const bare = without("event_id")
    delete bare["attributes"]
    const strict = rightOf(decodeStrict(bare))
    expect(strict.event_id).toBe(0)
    expect(strict.attributes).toStrictEqual({})
    const fast = fastPosition(bare)
    expect(fast?.event_id).toBe(0)
    expect(fast?.attributes).toStrictEqual({})
  })

  it("ignore unknown top-level fields and leave them out of the result", () => {
    const payload = { ...canonical, firmware: "03.28", extra: { nested: [1, 2] } }
    const strict = rightOf(decodeStrict(payload))
    expect(strict).toStrictEqual(expected)
    expect("firmware" in strict).toBe(false)
    expect(difference(fastPosition(payload), expected, "fast")).toBeUndefined()
  })

  it("decode the timestamp's offset and fraction into the right instant", () => {
    const at = (timestamp: string) => rightOf(decodeStrict(withField("timestamp", timestamp))).timestamp.getTime()
    expect(at("2026-05-01T12:30:00.250+02:30")).toBe(Date.UTC(2026, 4, 1, 10, 0, 0, 250))
    expect(at("2026-05-01T05:00:00-05:00")).toBe(Date.UTC(2026, 4, 1, 10, 0, 0, 0))
    expect(at("2026-05-01T10:00:00.123456789Z")).toBe(Date.UTC(2026, 4, 1, 10, 0, 0, 123))
    expect(at("2026-05-01T10:00:00.5Z")).toBe(Date.UTC(2026, 4, 1, 10, 0, 0, 500))
    expect(fastPosition(withField("timestamp", "2026-05-01T12:30:00.250+02:30"))?.timestamp.getTime())
      .toBe(Date.UTC(2026, 4, 1, 10, 0, 0, 250))
  })

  // Date.parse alone would roll these over into the next month (30 February → 2 March).
  it("reject impossible calendar dates and times", () => {
    expect(parseInstant("2024-02-29T00:00:00Z")).toBe(Date.UTC(2024, 1, 29))
    for (const timestamp of ["2026-02-30T10:00:00Z", "2025-02-29T00:00:00Z", "2026-04-31T00:00:00+02:00", "2026-05-01T24:00:00Z", "2026-13-01T00:00:00Z", "2026-05-01T10:00:00+24:00"]) {
      expect(Number.isNaN(parseInstant(timestamp)), timestamp).toBe(true)
      expect(leftOf(decodeStrict(withField("timestamp", timestamp)))).toMatch(/^timestamp: /)
    }
  })
})

describe("attribute sentinels", () => {
  it("resolve valid sentinels and plain values", () => {
    expect(decodeAttribute({ __bigint: "18446744073709551615" })).toBe(18446744073709551615n)
    expect(decodeAttribute({ __bigint: "-42" })).toBe(-42n)
    expect(decodeAttribute({ __bigint: "0" })).toBe(0n)
    expect(decodeAttribute({ __bytes: "AQID" })).toStrictEqual(new Uint8Array([1, 2, 3]))
    expect(decodeAttribute({ __bytes: "AQI=" })).toStrictEqual(new Uint8Array([1, 2]))
    expect(decodeAttribute({ __bytes: "/w==" })).toStrictEqual(new Uint8Array([255]))
    expect(decodeAttribute({ __bytes: "" })).toStrictEqual(new Uint8Array([]))
    expect(decodeAttribute(-1.5)).toBe(-1.5)
    expect(decodeAttribute("")).toBe("")
    expect(decodeAttribute(false)).toBe(false)
  })

  it.each<[string, unknown]>([
    ["a sentinel with an extra key", { __bigint: "1", note: "x" }],
    ["bytes with an extra key", { __bytes: "AQID", __bigint: "1" }],
    ["a non-decimal bigint", { __bigint: "12x" }],
    ["a fractional bigint", { __bigint: "1.0" }],
    ["an exponent bigint", { __bigint: "1e3" }],
    ["a hexadecimal bigint", { __bigint: "0x10" }],
    ["a padded bigint", { __bigint: " 1" }],
    ["an empty bigint", { __bigint: "" }],
    ["a numeric bigint", { __bigint: 12 }],
    ["truncated base64", { __bytes: "A" }],
    ["badly padded base64", { __bytes: "AQ=" }],
    ["base64 with a foreign character", { __bytes: "AQ!D" }],
    ["numeric bytes", { __bytes: 1 }],
    ["an empty object", {}],
    ["an arbitrary object", { a: 1 }],
    ["an array", [1, 2, 3]],
    ["null", null],
    ["Infinity", Infinity],
    ["NaN", Number.NaN]
  ])("reject %s, with the attribute's path in the message", (_, value) => {
    expect(decodeAttribute(value)).toBeUndefined()
    const payload = withAttribute(value)
    expect(leftOf(decodeStrict(payload))).toMatch(/^attributes\.78: /)
    expect(fastPosition(payload)).toBeUndefined()
  })

  it("name a nested attribute in the message of the whole payload", () => {
    const message = leftOf(decodePosition(JSON.stringify(withAttribute({ __bigint: "12x" }))))
    expect(message).toContain("attributes.78: ")
    expect(message).toContain("__bigint")
  })

  // JSON.parse makes "__proto__" an own key; copying it into a plain object would replace the prototype
  // and write the bytes as keys "0", "1", "2". Both decoders refuse the name instead.
  it("reject an attribute named __proto__", () => {
    const text = JSON.stringify(canonical).replace('"ign":true', '"__proto__":{"__bytes":"AQID"}')
    expect(text).toContain("__proto__")
    expect(fastPosition(JSON.parse(text))).toBeUndefined()
    expect(leftOf(decodeStrict(JSON.parse(text)))).toBe("attributes: the attribute name __proto__ is not allowed")
  })
})

describe("decodePayload", () => {
  it("reject an entry without a payload", () => {
    expect(leftOf(decodePosition(undefined))).toMatch(/^payload: /)
  })

  it("reject text that is not JSON", () => {
    expect(leftOf(decodePosition("{\"device_id\":"))).toMatch(/^payload: not valid JSON/)
    expect(leftOf(decodePosition(""))).toMatch(/^payload: not valid JSON/)
  })

  it.each(["42", "null", "\"text\"", "[]", "true"])("reject the JSON value %s that is not an object", (text) => {
    expect(leftOf(decodePosition(text))).toMatch(/^payload: /)
  })
})

describe("parseInstant", () => {
  it("parse date, time, optional fraction and a Z or ±hh:mm offset", () => {
    expect(parseInstant("2026-05-01T10:00:00Z")).toBe(Date.UTC(2026, 4, 1, 10))
    expect(parseInstant("2026-05-01T10:00:00.1+00:00")).toBe(Date.UTC(2026, 4, 1, 10, 0, 0, 100))
    expect(parseInstant("2026-05-01T11:00:00+01:00")).toBe(Date.UTC(2026, 4, 1, 10))
  })

  it.each([
    "2026-05-01T10:00:00",
    "2026-05-01T10:00Z",
    "2026-05-01",
    "2026-05-01T10:00:00+01",
    "2026-05-01T10:00:00+0100",
    "2026-05-01T10:00:00.Z",
    "26-05-01T10:00:00Z",
    "2026-05-01T10:00:00Z ",
    "May 1, 2026 10:00:00 GMT",
    "2026-05-01T25:00:00Z",
    "2026-05-01T10:00:00+99:00",
    ""
  ])("give NaN for %j", (text) => {
    expect(parseInstant(text)).toBeNaN()
  })
})

// ---------------------------------------------------------------------------------------------------------
// Property: the fast path accepts exactly what the Schema accepts, and decodes it to the same value.
// ---------------------------------------------------------------------------------------------------------

const pad = (n: number, width: number) => String(n).padStart(width, "0")

interface InstantParts {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
  readonly fraction: string
  readonly separator: string
  readonly zone: string
}

const formatInstant = (t: InstantParts) =>
  `${pad(t.year, 4)}-${pad(t.month, 2)}-${pad(t.day, 2)}${t.separator}${pad(t.hour, 2)}:${pad(t.minute, 2)}:` +
  `${pad(t.second, 2)}${t.fraction}${t.zone}`

const offset = (hours: fc.Arbitrary<number>, minutes: fc.Arbitrary<number>) =>
  fc.tuple(fc.constantFrom("+", "-"), hours, minutes).map(([sign, h, m]) => `${sign}${pad(h, 2)}:${pad(m, 2)}`)

const validTimestamp: fc.Arbitrary<string> = fc.record({
  year: fc.integer({ min: 2000, max: 9999 }),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 28 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.integer({ min: 0, max: 59 }),
  fraction: fc.oneof(fc.constant(""), fc.stringMatching(/^\.[0-9]{1,9}$/)),
  separator: fc.constant("T"),
  zone: fc.oneof(fc.constant("Z"), offset(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })))
}).map(formatInstant)

/** Timestamps that look like instants but break one rule (or, for impossible calendar days, should). */
const weirdTimestamp: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 0, max: 13 }),
    day: fc.integer({ min: 0, max: 32 }),
    hour: fc.integer({ min: 0, max: 25 }),
    minute: fc.integer({ min: 0, max: 60 }),
    second: fc.integer({ min: 0, max: 60 }),
    fraction: fc.oneof(fc.constant(""), fc.stringMatching(/^\.[0-9]{0,11}$/)),
    separator: fc.constantFrom("T", " ", "t", ""),
    zone: fc.oneof(
      fc.constantFrom("Z", "", "z", "+0100", "+01", "UTC", " Z", "+1:00"),
      offset(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 }))
    )
  }).map(formatInstant),
  fc.constantFrom("2026-02-30T10:00:00Z", "2025-02-29T00:00:00+01:00", "2026-05-01", "2026-05-01T10:00:00", ""),
  // Either side of the earliest valid instant, 2000-01-01T00:00:00Z.
  fc.constantFrom("1999-12-31T23:59:59.999Z", "2000-01-01T00:00:00Z", "2000-01-01T00:30:00+01:00", "1999-12-31T23:30:00-00:30"),
  fc.string(),
  fc.integer()
)

const weirdNumbers = fc.constantFrom(
  -0, 0, 1.5, -1, 2, 3, 90, -90, 90.000001, 180, -180, 180.5, 255, 256, 360, 360.0001, 2 ** 53 - 1, 2 ** 53, 1e21,
  1e308, Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE, Infinity, -Infinity, Number.NaN
)

/** A value of the wrong kind or out of range: what a perturbation puts in place of a field. */
const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: weirdNumbers },
  { weight: 3, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.constantFrom("1", "", "NaN", "1e400", "0x10", null, true, false) },
  { weight: 1, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.constantFrom([], [1], {}, { value: 1 }) }
)

const safeKey = fc.string({ maxLength: 6 }).filter((k) => k !== "__proto__")

/**
 * Strings built from characters PostgreSQL cannot store (U+0000, lone surrogates) and ones it can (an emoji is a
 * surrogate pair; "\ud800" followed by "\udc00" makes one too; U+FFFD is a character like any other).
 */
const trickyString = (maxLength: number) =>
  fc.array(fc.constantFrom("a", "7", "é", "\u0000", "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00", "\ufffd"), {
    maxLength
  }).map((parts) => parts.join(""))

/** Attribute names that break a rule (or nearly): unstorable characters, lengths about MAX_ATTRIBUTE_KEY_LENGTH. */
const trickyKey: fc.Arbitrary<string> = fc.oneof(
  trickyString(4),
  fc.string({ minLength: MAX_ATTRIBUTE_KEY_LENGTH - 2, maxLength: MAX_ATTRIBUTE_KEY_LENGTH + 2 })
).filter((k) => k !== "__proto__")

const validAttribute: fc.Arbitrary<unknown> = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.string(),
  fc.boolean(),
  fc.bigInt().map((b) => ({ __bigint: b.toString() })),
  fc.uint8Array({ maxLength: 12 }).map((bytes) => ({ __bytes: Buffer.from(bytes).toString("base64") }))
)

const badAttribute: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    { __bigint: "12x" },
    { __bigint: "1.5" },
    { __bigint: "" },
    { __bigint: 7 },
    { __bytes: "A" },
    { __bytes: "AQ=" },
    { __bytes: 1 },
    { __bigint: "1", __bytes: "AQID" },
    {},
    [],
    null,
    Infinity,
    Number.NaN
  ),
  fc.string().map((s) => ({ __bigint: s })),
  fc.string().map((s) => ({ __bytes: s })),
  trickyString(6),
  // A valid sentinel with one more key, or a plain value wrapped in an object.
  fc.tuple(validAttribute, safeKey).map(([v, k]) => (typeof v === "object" && v !== null ? { ...v, [k]: 1 } : { [k]: v }))
)

const attributesOf = (value: fc.Arbitrary<unknown>, key: fc.Arbitrary<string> = safeKey) =>
  fc.array(fc.tuple(fc.oneof(fc.constantFrom("16", "78", "385", "ibutton"), key), value), { maxLength: 6 })
    .map((entries) => Object.fromEntries(entries))

const validPayload = fc.record(
  {
    device_id: fc.string({ minLength: 1, maxLength: 64 }),
    timestamp: validTimestamp,
    latitude: fc.double({ min: -90, max: 90, noNaN: true }),
    longitude: fc.double({ min: -180, max: 180, noNaN: true }),
    altitude: fc.double({ noNaN: true, noDefaultInfinity: true }),
    angle: fc.double({ min: 0, max: 360, noNaN: true }),
    speed: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }),
    satellites: fc.integer({ min: 0, max: 255 }),
    priority: fc.integer({ min: 0, max: 2 }),
    event_id: fc.oneof(fc.nat(), fc.maxSafeNat()),
    attributes: attributesOf(validAttribute)
  },
  { requiredKeys: ["device_id", "timestamp", "latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority"] }
)

const MISSING = Symbol("missing")

const fields = [
  "device_id",
  "timestamp",
  "latitude",
  "longitude",
  "altitude",
  "angle",
  "speed",
  "satellites",
  "priority",
  "event_id",
  "attributes"
] as const

/** Field-specific near misses, beside the generic wrong values. */
const nearMiss = (name: (typeof fields)[number]): fc.Arbitrary<unknown> =>
  name === "timestamp"
    ? weirdTimestamp
    : name === "attributes"
    ? fc.oneof(
      attributesOf(fc.oneof({ weight: 3, arbitrary: validAttribute }, { weight: 1, arbitrary: badAttribute })),
      attributesOf(fc.oneof(validAttribute, trickyString(6)), fc.oneof(safeKey, trickyKey))
    )
    : name === "device_id"
    ? fc.oneof(fc.string({ minLength: 60, maxLength: 70 }), trickyString(8))
    : weirdNumbers

/** One change to a valid payload: a field removed or given a wrong value. */
const perturbation: fc.Arbitrary<readonly [string, unknown]> = fc.constantFrom(...fields).chain((name) =>
  fc.tuple(
    fc.constant(name),
    fc.oneof(
      { weight: 1, arbitrary: fc.constant(MISSING) },
      { weight: 3, arbitrary: weirdValue },
      { weight: 3, arbitrary: nearMiss(name) }
    )
  )
)

const extraField = fc.tuple(safeKey.filter((k) => !(fields as ReadonlyArray<string>).includes(k)), fc.jsonValue({ maxDepth: 2 }))

/** A valid payload with one string that PostgreSQL may not be able to store: the device id, an attribute name or value. */
const trickyStrings: fc.Arbitrary<unknown> = fc.tuple(validPayload, fc.constantFrom("device_id", "name", "value"), fc.oneof(trickyString(6), trickyKey))
  .map(([valid, where, text]) => {
    const payload: Record<string, unknown> = { ...valid }
    if (where === "device_id") payload["device_id"] = text
    else payload["attributes"] = { ...valid.attributes, ...(where === "name" ? { [text]: 1 } : { driver: text }) }
    return payload
  })

const payloadArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: trickyStrings },
  {
    weight: 30,
    arbitrary: fc.tuple(validPayload, fc.array(perturbation, { maxLength: 2 }), fc.array(extraField, { maxLength: 3 }))
      .map(([valid, changes, extra]) => {
        const payload: Record<string, unknown> = { ...Object.fromEntries(extra), ...valid }
        for (const [key, value] of changes) {
          if (value === MISSING) delete payload[key]
          else payload[key] = value
        }
        return payload
      })
  },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom(null, [], "payload", 42), fc.jsonValue({ maxDepth: 1 })) }
)

const INFINITY = "\u0001+Infinity\u0001"
const NEG_INFINITY = "\u0001-Infinity\u0001"

/** JSON text for a generated payload; ±Infinity become 1e400 and -1e400, which JSON.parse reads back as ±Infinity. */
const toJsonText = (u: unknown): string =>
  JSON.stringify(u, (_, v: unknown) => (v === Infinity ? INFINITY : v === -Infinity ? NEG_INFINITY : v))
    .replaceAll(JSON.stringify(INFINITY), "1e400")
    .replaceAll(JSON.stringify(NEG_INFINITY), "-1e400")

describe("fastDecode against the Schema (property)", () => {
  it("the generator yields both valid and invalid payloads", () => {
    const sample = fc.sample(payloadArb, { numRuns: 2000, seed: 42 })
    const valid = sample.filter((u) => Either.isRight(decodeStrict(u))).length
    expect(valid).toBeGreaterThan(400)
    expect(valid).toBeLessThan(1800)
  })

  it("fastDecode(u) is defined iff decodeStrict(u) is Right, with the same value and its stored JSON", () => {
    fc.assert(
      fc.property(payloadArb, (u) => {
        const strict = decodeStrict(u)
        const fast = fastPosition(u)
        if (Either.isLeft(strict)) {
          expect(fast, `Schema rejects (${strict.left}) but fastDecode accepts`).toBeUndefined()
        } else {
          expect(fast, "Schema accepts but fastDecode rejects").toBeDefined()
          expect(difference(fast, strict.right, "position")).toBeUndefined()
          expect(fastDecode(u)!.attributesJson).toBe(attributesJson({ ...strict.right.attributes }))
        }
      }),
      { numRuns: 3000 }
    )
  })

  it("decodePayload of the JSON text agrees with decodeStrict", () => {
    fc.assert(
      fc.property(payloadArb, (u) => {
        const strict = decodeStrict(u)
        const viaText = decodePayload(toJsonText(u))
        expect(Either.isRight(viaText)).toBe(Either.isRight(strict))
        if (Either.isRight(viaText) && Either.isRight(strict)) {
          // JSON has no negative zero, so only the sign of zero may differ.
          expect(difference(viaText.right.position, strict.right, "position", false)).toBeUndefined()
          // The JSON the decoder built on the way is the JSON of what it returned, as if serialized afresh.
          expect(viaText.right.attributesJson).toBe(attributesJson({ ...strict.right.attributes }))
          expect(viaText.right.attributesJson).toBe(attributesJson(viaText.right.position.attributes))
        }
      }),
      { numRuns: 2000 }
    )
  })
})

describe("the byte-level fast path against today's decoder (property)", () => {
  // The Schema's generated payloads as bytes: whenever scanPayload accepts, it gives decodePayload's record, and
  // decodeEntry's verdict is the same with the bytes scanned or not (test/scan.test.ts has the byte-level damage).
  it("scanPayload agrees with decodePayload, and decodeEntry's verdict does not change", () => {
    const limits: Limits = { maxPayloadBytes: 32_768, maxFutureSkewMs: 0 }
    let accepted = 0
    fc.assert(
      fc.property(payloadArb, (u) => {
        if (checkAgainstToday(Buffer.from(toJsonText(u)), limits)) accepted++
      }),
      { numRuns: 3000 }
    )
    expect(accepted).toBeGreaterThan(100)
  })
})

// ---------------------------------------------------------------------------------------------------------
// Issue #9: strings PostgreSQL cannot store, attribute names, timestamps, hostile shapes, entry limits.
// ---------------------------------------------------------------------------------------------------------

/** Every decoder's verdict on one payload: the Schema's message, after checking the others agree. */
const rejectedByAll = (payload: Record<string, unknown>): string => {
  const message = leftOf(decodeStrict(payload))
  expect(fastPosition(payload), message).toBeUndefined()
  // JSON.stringify writes U+0000 and lone surrogates as escapes; JSON.parse reads them back unchanged.
  expect(leftOf(decodePosition(JSON.stringify(payload)))).toBe(message)
  return message
}

const acceptedByAll = (payload: Record<string, unknown>): Position => {
  const strict = rightOf(decodeStrict(payload))
  expect(difference(fastPosition(payload), strict, "fast")).toBeUndefined()
  expect(difference(rightOf(decodePosition(JSON.stringify(payload))), strict, "payload")).toBeUndefined()
  return strict
}

describe("strings PostgreSQL cannot store", () => {
  it("reject U+0000 in an attribute value, naming the attribute (fixed-width fields padded with NULs)", () => {
    expect(rejectedByAll(withField("attributes", { driver: "JONAS\u0000\u0000" })))
      .toMatch(/^attributes\.driver: contains U\+0000/)
  })

  it.each<[string, string]>([
    ["a lone high surrogate at the end", "350000000000021\ud800"],
    ["a lone low surrogate", "350000000000021\udc00"],
    ["a pair in the wrong order", "35000\udc00\ud800"],
    ["U+0000", "3500\u00000000021"]
  ])("reject a device id with %s, naming device_id", (_, deviceId) => {
    expect(rejectedByAll(withField("device_id", deviceId))).toMatch(/^device_id: contains (U\+0000|an unpaired surrogate U\+D[89AB-F][0-9A-F]{2})/)
  })

  it("reject attribute names with U+0000 or a lone surrogate, quoting the name", () => {
    expect(rejectedByAll(withField("attributes", { "dri\u0000ver": 1 }))).toMatch(/^attributes\."dri\\u0000ver": contains U\+0000/)
    expect(rejectedByAll(withField("attributes", { "a\udfff": 1 }))).toMatch(/^attributes\."a\\udfff": contains an unpaired surrogate U\+DFFF/)
  })

  it("accept surrogate pairs (emoji), U+FFFD and other characters PostgreSQL stores", () => {
    const p = acceptedByAll({ ...canonical, device_id: "dev-\ud83d\ude00-\ufffd", attributes: { "ključ\ud83d\ude00": "vardas \ud83d\ude97 \ufffd", "": "" } })
    expect(p.device_id).toBe("dev-😀-\ufffd")
    expect(p.attributes["ključ😀"]).toBe("vardas 🚗 \ufffd")
  })

  it("leave strings outside the table alone: sentinels are checked by their own rules, unknown fields are ignored", () => {
    acceptedByAll({ ...canonical, note: "\u0000\ud800" })
    expect(rejectedByAll(withAttribute({ __bigint: "1\u0000" }))).toMatch(/^attributes\.78: Expected/)
  })

  it("unstorable names the first offending character and its index", () => {
    expect(unstorable("plain")).toBeUndefined()
    expect(unstorable("\ud83d\ude00")).toBeUndefined()
    expect(unstorable("ab\u0000")).toBe("contains U+0000 at index 2, which PostgreSQL cannot store")
    expect(unstorable("\ud83d\ude00\ud83d")).toBe("contains an unpaired surrogate U+D83D at index 2, which PostgreSQL cannot store")
  })
})

describe("attribute names", () => {
  it(`accept names of up to ${MAX_ATTRIBUTE_KEY_LENGTH} characters and reject longer ones, with a short message`, () => {
    acceptedByAll(withField("attributes", { ["k".repeat(MAX_ATTRIBUTE_KEY_LENGTH)]: 1 }))
    const message = rejectedByAll(withField("attributes", { ["k".repeat(100_000)]: 1 }))
    expect(message).toMatch(/^attributes\."k{40}…": the name is 100000 characters long, more than 64$/)
  })

  it("cache member openings within a byte budget, and never an invalid name", () => {
    // 4,000 records with unique names of the longest valid length, then names far too long.
    for (let i = 0; i < 4_000; i++) {
      fastDecode({ ...canonical, attributes: { [String(i).padStart(MAX_ATTRIBUTE_KEY_LENGTH, "n")]: i } })
      expect(openingsSize().bytes).toBeLessThanOrEqual(1024 * 1024)
    }
    const before = openingsSize().names
    for (let i = 0; i < 100; i++) {
      const name = String(i).padStart(100_000, "x")
      expect(fastDecode({ ...canonical, attributes: { [name]: 1 } })).toBeUndefined()
      expect(memberOpening(name, true)).toBe(JSON.stringify(name) + ":")
    }
    expect(openingsSize().names).toBeLessThanOrEqual(before)
    expect(openingsSize().bytes).toBeLessThanOrEqual(1024 * 1024)
    // The names in use are cached again after the cache was emptied.
    expect(fastDecode(canonical)?.attributesJson).toBe(attributesJson(expected.attributes))
  })
})

describe("timestamps", () => {
  it("reject instants before 2000-01-01T00:00:00Z (clock resets: year 0000, 1970, the GPS epoch)", () => {
    for (const timestamp of ["0000-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1980-01-06T00:00:00Z", "1999-12-31T23:59:59.999Z", "2000-01-01T00:30:00+01:00"]) {
      expect(rejectedByAll(withField("timestamp", timestamp)), timestamp).toMatch(/^timestamp: Expected an instant from 2000-01-01T00:00:00Z on/)
    }
    expect(acceptedByAll(withField("timestamp", "2000-01-01T00:00:00Z")).timestamp.getTime()).toBe(Date.UTC(2000, 0, 1))
  })

  it("encode every accepted instant, up to the last one of year 9999 at offset -23:59", () => {
    const encoder = new RowEncoder()
    for (const timestamp of ["2000-01-01T00:00:00Z", "2262-04-11T23:47:16.854Z", "9999-12-31T23:59:59.999-23:59"]) {
      const p = acceptedByAll(withField("timestamp", timestamp))
      const row = encoder.encode(p, "{}")
      expect(readKey(row).ms).toBe(p.timestamp.getTime())
    }
  })
})

/** The first attribute nested `depth` arrays deep: the payload is 4.5 KB nested 2,190 levels. */
const nested = (depth: number, open = "[", close = "]", inner = "") => open.repeat(depth) + inner + close.repeat(depth)
const withRaw = (field: string, raw: string) => JSON.stringify(withField(field, 0)).replace(`"${field}":0`, `"${field}":${raw}`)

describe("hostile shapes: never a throw, always a short reason", () => {
  it("name an attribute nested 2,190 levels deep (the issue's 4.5 KB payload) without formatting it", () => {
    const text = withRaw("attributes", `{"x":${nested(2190)}}`)
    expect(text.length).toBeGreaterThan(4_400)
    expect(leftOf(decodePosition(text))).toBe("attributes: nested more than 3 levels deep (objects or arrays); a valid value nests at most 2")
  })

  it("reject 200,000 nested arrays as the whole payload", () => {
    expect(leftOf(decodePosition(nested(200_000)))).toBe("payload: Expected a JSON object, actual an array")
  })

  it.each(["device_id", "timestamp", "latitude", "satellites", "event_id"])("reject %s nested deep, naming it", (field) => {
    expect(leftOf(decodePosition(withRaw(field, nested(50_000, '{"a":', "}", "1"))))).toMatch(new RegExp(`^${field}: nested more than 1 level deep`))
  })

  it("accept a record whose unknown field nests deep: it is ignored", () => {
    expect(difference(rightOf(decodePosition(withRaw("extra", nested(100_000)))), expected, "position")).toBeUndefined()
  })

  it("quote at most a short prefix of a long bad value", () => {
    const message = leftOf(decodePosition(JSON.stringify(withField("device_id", "x".repeat(1_000_000)))))
    expect(message).toMatch(/^device_id: Expected a string at most 64 character\(s\) long, actual "x+…$/)
    expect(message.length).toBeLessThanOrEqual(241)
    const timestamp = leftOf(decodePosition(JSON.stringify(withField("timestamp", "2026".repeat(100_000)))))
    expect(timestamp.length).toBeLessThan(250)
    const notJson = leftOf(decodePosition(`{"device_id":"${"y".repeat(100_000)}`))
    expect(notJson).toMatch(/^payload: not valid JSON/)
    expect(notJson.length).toBeLessThan(200)
  })

  it("name at most five of many bad attributes, on one short line", () => {
    const attributes = Object.fromEntries(Array.from({ length: MAX_ATTRIBUTES }, (_, i) => [String(i), [i]]))
    const message = leftOf(decodePosition(JSON.stringify(withField("attributes", attributes))))
    expect(message.split("; ")).toHaveLength(5)
    expect(message.length).toBeLessThan(1_300)
  })

  it("refuse more than MAX_ATTRIBUTES attributes before looking at their values, valid or not", () => {
    for (const value of [1, null]) {
      const attributes = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [String(i), value]))
      expect(leftOf(decodePosition(JSON.stringify(withField("attributes", attributes))))).toBe(`attributes: more than ${MAX_ATTRIBUTES} attributes`)
    }
    const atLimit = Object.fromEntries(Array.from({ length: MAX_ATTRIBUTES }, (_, i) => [String(i), i]))
    expect(decodePosition(JSON.stringify(withField("attributes", atLimit)))._tag).toBe("Right")
  })
})

const limits: Limits = { maxPayloadBytes: 65_536, maxFutureSkewMs: 24 * 3_600_000 }
const NOW = Date.UTC(2026, 4, 1, 10, 0, 0)
const entryAt = (payload: string | undefined, ms = NOW, extra: { invalidUtf8?: true } = {}) => ({ id: `${ms}-0`, payload, ...extra })
const reasonOf = (result: Either.Either<unknown, Reason>) => {
  if (Either.isRight(result)) throw new Error("expected a reason")
  return result.left
}

describe("decodeEntry", () => {
  it("decode a valid entry as decodePayload does", () => {
    const decoded = decodeEntry(entryAt(JSON.stringify(canonical)), limits)
    expect(Either.isRight(decoded) && difference(decoded.right.position, expected, "position")).toBeUndefined()
  })

  it("refuse a payload above MAX_PAYLOAD_BYTES as too large, counting UTF-8 bytes, without parsing it", () => {
    // Exactly the limit, in two-byte characters: accepted. One byte more: too large.
    const fill = (bytes: number) => {
      const base = JSON.stringify({ ...canonical, pad: "" })
      const odd = (bytes - base.length) % 2
      return base.replace('"pad":""', `"pad":"${"a".repeat(odd)}${"é".repeat((bytes - base.length - odd) / 2)}"`)
    }
    const atLimit = fill(65_536)
    expect(Buffer.byteLength(atLimit)).toBe(65_536)
    expect(Either.isRight(decodeEntry(entryAt(atLimit), limits))).toBe(true)
    const over = atLimit.replace('"pad":"', '"pad":"a')
    expect(reasonOf(decodeEntry(entryAt(over), limits))).toStrictEqual(Reason.TooLarge({ bytes: 65_537, limit: 65_536 }))
    // Not parsed: text that is not JSON at all is too large, not invalid.
    const garbage = "{".repeat(100_000)
    expect(reasonOf(decodeEntry(entryAt(garbage), limits))._tag).toBe("TooLarge")
    expect(render(reasonOf(decodeEntry(entryAt(garbage), limits)))).toBe("payload: 100000 bytes, more than MAX_PAYLOAD_BYTES=65536; not parsed")
  })

  it("refuse a timestamp more than MAX_FUTURE_SKEW ahead of the time Redis accepted the entry", () => {
    const at = (iso: string, ms = NOW, skew = limits.maxFutureSkewMs) =>
      decodeEntry(entryAt(JSON.stringify(withField("timestamp", iso)), ms), { ...limits, maxFutureSkewMs: skew })
    expect(Either.isRight(at("2026-05-02T10:00:00.000Z"))).toBe(true)
    const reason = reasonOf(at("2026-05-02T10:00:00.001Z"))
    expect(reason).toStrictEqual(Reason.Invalid({
      message: "timestamp: 2026-05-02T10:00:00.001Z is 1d 1s ahead of the time Redis accepted the entry " +
        "(2026-05-01T10:00:00.000Z), more than MAX_FUTURE_SKEW=1d"
    }))
    expect(render(reasonOf(at("2080-01-01T00:00:00Z")))).toMatch(/^timestamp: 2080-01-01T00:00:00\.000Z is (\d+[dhms] ?)+ ahead .* MAX_FUTURE_SKEW=1d$/)
    // 0 turns the check off; an id not of the form <ms>-<seq> gives no time to compare with.
    expect(Either.isRight(at("2080-01-01T00:00:00Z", NOW, 0))).toBe(true)
    expect(Either.isRight(decodeEntry({ id: "custom", payload: JSON.stringify(withField("timestamp", "2080-01-01T00:00:00Z")) }, limits))).toBe(true)
  })

  it("refuse an entry whose payload bytes were not valid UTF-8, and one without a payload", () => {
    expect(reasonOf(decodeEntry(entryAt(JSON.stringify(canonical), NOW, { invalidUtf8: true }), limits)))
      .toStrictEqual(Reason.Invalid({ message: "payload: not valid UTF-8 (its bytes cannot be read as text without changing them)" }))
    expect(reasonOf(decodeEntry(entryAt(undefined), limits))).toStrictEqual(Reason.Invalid({ message: "payload: the entry has no payload field" }))
  })
})
