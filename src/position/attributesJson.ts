import type { AttributeValue } from "./Position.js"

// The stored form of a position's attributes (positions.attributes): bigints as exact JSON numbers (jsonb keeps
// numbers as numeric, so every digit survives), bytes as lowercase hex strings.

/** Bytes as stored: lowercase hex, read in place (no copy of the bytes). */
export const bytesHex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

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

/**
 * The attributes as stored in positions.attributes. The decoder builds the same text while it validates
 * (`Decoded.attributesJson`); this is for positions made any other way.
 */
export const attributesJson = (attributes: Readonly<Record<string, AttributeValue>>): string => {
  let out = "{"
  for (const key in attributes) {
    if (out.length > 1) out += ","
    out += JSON.stringify(key) + ":" + attributeValueJson(attributes[key]!)
  }
  return out + "}"
}
