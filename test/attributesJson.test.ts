import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { AttributeValue } from "../src/position/Position.js"
import { attributesJson } from "../src/position/attributesJson.js"

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
