import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import type { StreamEntry } from "../src/consumer/Consumer.js"
import { type Reason, render } from "../src/deadletter/Reason.js"
import { type Decoded, decodeEntry, type Limits } from "../src/position/decode.js"
import { unstorable } from "../src/position/Position.js"
import { readKey, RowEncoder } from "../src/writer/copyBinary.js"
import { position } from "./support/MemoryConsumer.js"

// Issue #9: nothing inside one entry, however it is built, may throw out of decoding, message formatting or
// encoding. Generated hostile payload texts go through decodeEntry; each is accepted (and then encodes, every
// string unchanged) or refused with a typed reason whose rendering is one short line naming a field.

const HOLE = "\u0001hole\u0001"
const hole = JSON.stringify(HOLE)

const template = position("356307042441013", "2026-05-01T10:00:00.000Z", {
  priority: 1,
  event_id: 240,
  attributes: { "16": 123456, "78": { __bigint: "18446744073709551615" }, ibutton: "0000012345AB" }
})

const FIELDS = Object.keys(template)

/** A JSON value nested `depth` levels deep: arrays, objects, or both. */
const deep: fc.Arbitrary<string> = fc.record({
  depth: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 20_000 })),
  open: fc.constantFrom("[", "{\"k\":", "[{\"__bigint\":")
}).map(({ depth, open }) => {
  const close = open === "[" ? "]" : open === "{\"k\":" ? "}" : "}]"
  return open.repeat(depth) + "1" + close.repeat(depth)
})

const hugeNumber: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("1e400", "-1e400", "1e-400", "-0", "0e0", "9007199254740993", "-9007199254740993"),
  fc.integer({ min: 1, max: 3_000 }).map((n) => "9".repeat(n)),
  fc.integer({ min: 1, max: 3_000 }).map((n) => `0.${"0".repeat(n)}1`),
  fc.integer({ min: 1, max: 3_000 }).map((n) => `{"__bigint":"${"9".repeat(n)}"}`)
)

/** JSON strings: long ones, and ones with escapes PostgreSQL cannot store (U+0000, lone surrogates) or can. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 0, max: 100_000 }).map((n) => JSON.stringify("x".repeat(n))),
  fc.array(fc.constantFrom("\\u0000", "\\ud800", "\\udbff", "\\udc00", "\\ud83d\\ude00", "\\ufffd", "a", "\\\"", "\\\\", "é"), {
    maxLength: 12
  }).map((parts) => `"${parts.join("")}"`),
  fc.string({ unit: "binary", maxLength: 40 }).map((s) => JSON.stringify(s))
)

const manyKeys: fc.Arbitrary<string> = fc.record({ n: fc.integer({ min: 0, max: 20_000 }), bad: fc.boolean() }).map(({ bad, n }) =>
  `{${Array.from({ length: n }, (_, i) => `"k${i}":${bad && i % 2 ? "null" : i}`).join(",")}}`
)

const hostileValue: fc.Arbitrary<string> = fc.oneof(
  deep,
  hugeNumber,
  hostileString,
  manyKeys,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))
)

/** Text that need not be JSON at all: any code units, or random bytes read as UTF-8 or Latin-1. */
const randomText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("utf8")),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("latin1"))
)

const withHole = (object: unknown, value: string) => JSON.stringify(object).replace(hole, () => value)

/** A payload text: the template with one hostile part placed somewhere, or something else entirely. */
const hostilePayload: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom(...FIELDS), hostileValue).map(([field, v]) => withHole({ ...template, [field]: HOLE }, v)),
  hostileValue.map((v) => withHole({ ...template, attributes: { ...template.attributes, driver: HOLE } }, v)),
  // An attribute name.
  hostileString.map((name) => withHole({ ...template, attributes: { ...template.attributes, [HOLE]: 1 } }, name)),
  hostileValue.map((v) => withHole({ ...template, extra: HOLE }, v)),
  hostileValue,
  randomText,
  // Valid text cut or spliced with random text at a random place.
  fc.tuple(fc.nat(), randomText).map(([at, text]) => {
    const valid = JSON.stringify(template)
    const i = at % (valid.length + 1)
    return valid.slice(0, i) + text + valid.slice(i)
  })
)

const limitsArb: fc.Arbitrary<Limits> = fc.record({
  maxPayloadBytes: fc.constantFrom(1_024, 65_536, 1_000_000),
  maxFutureSkewMs: fc.constantFrom(0, 1_000, 86_400_000)
})

const entryArb: fc.Arbitrary<StreamEntry> = fc.record({
  // When Redis accepted it: around the template's timestamp, or not an id of the usual form.
  id: fc.oneof(
    fc.integer({ min: -3 * 86_400_000, max: 3 * 86_400_000 }).map((d) => `${Date.UTC(2026, 4, 1, 10) + d}-0`),
    fc.constantFrom("0-1", "custom", "-5")
  ),
  payload: fc.oneof({ weight: 20, arbitrary: hostilePayload }, { weight: 1, arbitrary: fc.constant(undefined) })
})

const FIELD_PATH = new RegExp(`^(payload|${FIELDS.join("|")})[.:]`)

const checkAccepted = (decoded: Decoded) => {
  const { position } = decoded
  expect(unstorable(position.device_id)).toBeUndefined()
  for (const [key, value] of Object.entries(position.attributes)) {
    expect(unstorable(key)).toBeUndefined()
    if (typeof value === "string") expect(unstorable(value)).toBeUndefined()
  }
  // Encoding never throws, and reads back the same key: no string changed on its way to the table.
  const row = new RowEncoder().encode(position, decoded.attributesJson)
  expect(readKey(row)).toStrictEqual({ deviceId: position.device_id, ms: position.timestamp.getTime() })
  JSON.parse(decoded.attributesJson)
}

const checkRefused = (reason: Reason) => {
  const text = render(reason)
  expect(text.length).toBeGreaterThan(0)
  expect(text.length).toBeLessThanOrEqual(1_300)
  expect(text).not.toContain("\n")
  if (reason._tag === "Invalid") expect(reason.message).toMatch(FIELD_PATH)
  else expect(reason._tag).toBe("TooLarge")
}

describe("hostile payloads (property)", () => {
  it("decodeEntry never throws: it accepts a storable, encodable record or names a short reason", () => {
    let accepted = 0
    fc.assert(
      fc.property(entryArb, limitsArb, (entry, limits) => {
        const result = decodeEntry(entry, limits)
        if (Either.isRight(result)) {
          accepted++
          checkAccepted(result.right)
        } else checkRefused(result.left)
      }),
      { numRuns: 600 }
    )
    // Some generated entries are valid (an unknown field, a replaced value that is still valid…).
    expect(accepted).toBeGreaterThan(0)
  })

  it("the issue's payloads: 2,190 levels in 4.5 KB, and 200,000 nested arrays", () => {
    const limits: Limits = { maxPayloadBytes: 65_536, maxFutureSkewMs: 86_400_000 }
    const id = `${Date.UTC(2026, 4, 1, 10)}-0`
    const deepText = withHole({ ...template, attributes: { x: HOLE } }, "[".repeat(2190) + "]".repeat(2190))
    expect(deepText.length).toBeGreaterThan(4_400)
    const deepReason = decodeEntry({ id, payload: deepText }, limits)
    expect(Either.isLeft(deepReason) && render(deepReason.left)).toBe(
      "attributes: nested more than 3 levels deep (objects or arrays); a valid value nests at most 2"
    )
    const arrays = "[".repeat(200_000) + "]".repeat(200_000)
    const tooLarge = decodeEntry({ id, payload: arrays }, limits)
    expect(Either.isLeft(tooLarge) && render(tooLarge.left)).toBe("payload: 400000 bytes, more than MAX_PAYLOAD_BYTES=65536; not parsed")
    const parsed = decodeEntry({ id, payload: arrays }, { ...limits, maxPayloadBytes: 1_000_000 })
    expect(Either.isLeft(parsed) && render(parsed.left)).toBe("payload: Expected a JSON object, actual an array")
  })
})
