import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { AttributeValue, Position } from "../src/position/Position.js"
import { attributesJson } from "../src/position/attributesJson.js"
import { copyText, escapeCopy, escapeJsonCopy, keyOf, rowKey, toCopyRow } from "../src/writer/copyFormat.js"

/** What PostgreSQL's COPY text format reads back from an escaped column. */
const unescapeCopy = (s: string): string =>
  s.replace(/\\(.)/g, (_, c: string) => (c === "t" ? "\t" : c === "n" ? "\n" : c === "r" ? "\r" : c))

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

describe("escapeCopy", () => {
  it("escapes backslash, tab, newline and carriage return", () => {
    expect(escapeCopy("a\\b")).toBe("a\\\\b")
    expect(escapeCopy("a\tb")).toBe("a\\tb")
    expect(escapeCopy("a\nb")).toBe("a\\nb")
    expect(escapeCopy("a\rb")).toBe("a\\rb")
  })

  it("escapes every occurrence and leaves other text alone", () => {
    expect(escapeCopy("\\\t\n\r\\\t\n\r")).toBe("\\\\\\t\\n\\r\\\\\\t\\n\\r")
    expect(escapeCopy("plain text, \"quoted\" é ✓")).toBe("plain text, \"quoted\" é ✓")
    expect(escapeCopy("")).toBe("")
  })

  it("round-trips through COPY's unescaping and never leaves a raw separator (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("a", "\\", "\t", "\n", "\r", "t", "n", "é") }), (s) => {
        const escaped = escapeCopy(s)
        expect(escaped).not.toMatch(/[\t\n\r]/)
        expect(unescapeCopy(escaped)).toBe(s)
      }),
      { numRuns: 500 }
    )
  })
})

describe("attributesJson", () => {
  it("writes an empty object as {}", () => {
    expect(attributesJson({})).toBe("{}")
  })

  it("writes a bigint as a JSON number with every digit", () => {
    expect(attributesJson({ "78": 18446744073709551615n })).toBe("{\"78\":18446744073709551615}")
    expect(attributesJson({ n: -9223372036854775808n })).toBe("{\"n\":-9223372036854775808}")
  })

  it("writes bytes as a lowercase hex string", () => {
    expect(attributesJson({ b: new Uint8Array([0, 1, 0xab, 0xff]) })).toBe("{\"b\":\"0001abff\"}")
    expect(attributesJson({ b: new Uint8Array([]) })).toBe("{\"b\":\"\"}")
  })

  it("writes only the bytes a view covers", () => {
    const view = new Uint8Array(new Uint8Array([0xde, 0xad, 0xbe, 0xef]).buffer, 1, 2)
    expect(attributesJson({ b: view })).toBe("{\"b\":\"adbe\"}")
  })

  it("JSON-escapes strings and keys", () => {
    const text = attributesJson({ "k\"ey": "a \"quote\", a \\ and a\nnewline", t: true, f: false })
    expect(text).toBe("{\"k\\\"ey\":\"a \\\"quote\\\", a \\\\ and a\\nnewline\",\"t\":true,\"f\":false}")
  })

  it("parses back as the same attributes for small values", () => {
    const attributes: Record<string, AttributeValue> = {
      "16": 123456,
      "21": -2.5e-7,
      name: "Ünïcödé \"x\"\t\u0001",
      ign: true,
      "78": 42n,
      "385": new Uint8Array([1, 2, 3])
    }
    expect(JSON.parse(attributesJson(attributes))).toEqual({
      "16": 123456,
      "21": -2.5e-7,
      name: "Ünïcödé \"x\"\t\u0001",
      ign: true,
      "78": 42,
      "385": "010203"
    })
  })

  it("parses back as the same attributes (property)", () => {
    const value: fc.Arbitrary<AttributeValue> = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.string(),
      fc.boolean(),
      fc.bigInt({ min: -(2n ** 53n) + 1n, max: 2n ** 53n - 1n }),
      fc.uint8Array({ maxLength: 8 })
    )
    const key = fc.string({ maxLength: 5 }).filter((k) => k !== "__proto__")
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), { maxLength: 6 }), (entries) => {
        const attributes: Record<string, AttributeValue> = Object.fromEntries(entries)
        const expected = Object.fromEntries(
          Object.entries(attributes).map(([k, v]) => [
            k,
            typeof v === "bigint"
              ? Number(v)
              : v instanceof Uint8Array
              ? Buffer.from(v).toString("hex")
              : Object.is(v, -0)
              ? 0
              : v
          ])
        )
        expect(JSON.parse(attributesJson(attributes))).toStrictEqual(expected)
      }),
      { numRuns: 500 }
    )
  })
})

describe("toCopyRow", () => {
  it("writes 11 tab-separated columns; copyText ends every row with one newline", () => {
    const row = toCopyRow(position())
    expect(row).not.toMatch(/[\n\r]/)
    expect(copyText([row, row])).toBe(`${row}\n${row}\n`)
    const columns = row.split("\t")
    expect(columns).toEqual([
      "356307042441013",
      "2026-05-01T10:00:00.250Z",
      "54.6872",
      "-25.2797",
      "112.5",
      "270",
      "0",
      "11",
      "2",
      "240",
      "{\"16\":123456,\"78\":18446744073709551615,\"385\":\"010203\"}"
    ])
  })

  it("escapes the device id and the attributes so a row stays one line of 11 columns", () => {
    const p = position({ device_id: "dev\t1\\x", attributes: { note: "line1\nline2\ttab \\ back" } })
    const row = toCopyRow(p)
    expect(row).not.toMatch(/[\n\r]/)
    const columns = row.split("\t")
    expect(columns).toHaveLength(11)
    expect(unescapeCopy(columns[0]!)).toBe("dev\t1\\x")
    expect(JSON.parse(unescapeCopy(columns[10]!))).toEqual({ note: "line1\nline2\ttab \\ back" })
  })

  it("writes the timestamp as an ISO string in UTC", () => {
    const columns = toCopyRow(position({ timestamp: new Date("2026-05-01T12:30:00.001+02:30") })).split("\t")
    expect(columns[1]).toBe("2026-05-01T10:00:00.001Z")
  })
})

describe("the fast escapes agree with escapeCopy", () => {
  const awkward = fc.string({ unit: fc.constantFrom("a", "\\", "\t", "\n", "\r", "\"", "\u0001", "é", "\u2028") })

  it("escapeJsonCopy(json) = escapeCopy(json) for any stored attributes JSON (property)", () => {
    fc.assert(
      fc.property(fc.dictionary(awkward, fc.oneof(awkward, fc.double(), fc.boolean())), (raw) => {
        const attributes: Record<string, AttributeValue> = {}
        for (const [k, v] of Object.entries(raw)) if (typeof v !== "number" || Number.isFinite(v)) attributes[k] = v
        const json = attributesJson(attributes)
        expect(escapeJsonCopy(json)).toBe(escapeCopy(json))
      }),
      { numRuns: 500 }
    )
  })

  it("rowKey reads back from a line the key keyOf writes for a stored row (property)", () => {
    fc.assert(
      fc.property(awkward.filter((s) => s.length > 0), fc.integer({ min: 0, max: 4_102_444_800_000 }), (deviceId, ms) => {
        const row = toCopyRow(position({ device_id: deviceId, timestamp: new Date(ms) }))
        expect(rowKey(row)).toBe(keyOf(deviceId, ms))
      }),
      { numRuns: 500 }
    )
  })
})
