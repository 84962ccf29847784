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

// The decoder already walks every attribute; it leaves the JSON it built here so the writer need not walk
// them again. Keyed by the attributes object, so a record built any other way is simply serialized.
const known = new WeakMap<object, string>()

export const rememberAttributesJson = (attributes: object, json: string): void => {
  known.set(attributes, json)
}

/** The attributes as stored in positions.attributes. */
export const attributesJson = (attributes: Readonly<Record<string, AttributeValue>>): string => {
  const cached = known.get(attributes)
  if (cached !== undefined) return cached
  let out = "{"
  for (const key in attributes) {
    if (out.length > 1) out += ","
    out += JSON.stringify(key) + ":" + attributeValueJson(attributes[key]!)
  }
  return out + "}"
}
