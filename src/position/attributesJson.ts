import type { AttributeValue } from "./Position.js"

// The stored form of a position's attributes (positions.attributes): bigints as exact JSON numbers (jsonb keeps
// numbers as numeric, so every digit survives), bytes as lowercase hex strings.

/** Bytes as stored: lowercase hex, read in place (no copy of the bytes). */
const bytesHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

export const attributeValueJson = (v: AttributeValue): string => {
  switch (typeof v) {
    case "bigint":
      return v.toString()
    case "object":
      return `"${bytesHex(v)}"`
    default:
      return JSON.stringify(v)
  }
}

// Attribute names repeat from record to record (IO element ids): the JSON that opens each member
// (`"16":`, and `,"16":` after the first) is made once. Bounded, so a producer inventing names cannot grow
// it without end; past the bound, names are simply serialized.
const KEY_JSON_LIMIT = 10_000
const memberStart = new Map<string, readonly [first: string, rest: string]>()
export const memberOpening = (key: string, first: boolean): string => {
  let known = memberStart.get(key)
  if (known === undefined) {
    const json = JSON.stringify(key) + ":"
    known = [json, "," + json]
    if (memberStart.size < KEY_JSON_LIMIT) memberStart.set(key, known)
  }
  return first ? known[0] : known[1]
}

/**
 * The attributes as stored in positions.attributes. The decoder builds the same text while it validates
 * (`Decoded.attributesJson`); this is for positions made any other way.
 */
export const attributesJson = (attributes: Readonly<Record<string, AttributeValue>>): string => {
  let out = "{"
  let first = true
  for (const key in attributes) {
    out += memberOpening(key, first)
    out += attributeValueJson(attributes[key]!)
    first = false
  }
  return out + "}"
}
