import { attributeKeyProblem, type AttributeValue } from "./Position.js"

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
// (`"16":`, and `,"16":` after the first) is made once, and only for valid names (attributeKeyProblem), so a
// name found here needs no check. Bounded by bytes, not count: a producer inventing names, however long,
// cannot grow it past OPENINGS_BYTES; when full it is emptied and refills with the names still in use.
const OPENINGS_BYTES = 1024 * 1024
// A Map entry, the tuple and three strings' headers, roughly (V8, 64-bit).
const ENTRY_OVERHEAD = 120
const openings = new Map<string, readonly [first: string, rest: string]>()
let openingsBytes = 0

const remember = (key: string): readonly [string, string] => {
  const json = JSON.stringify(key) + ":"
  const known = [json, "," + json] as const
  // Two bytes per UTF-16 unit at most: the name, and the two openings.
  const bytes = ENTRY_OVERHEAD + 2 * (key.length + 2 * json.length + 1)
  if (openingsBytes + bytes > OPENINGS_BYTES) {
    openings.clear()
    openingsBytes = 0
  }
  openings.set(key, known)
  openingsBytes += bytes
  return known
}

/** The cache's size: names and an estimate of their bytes (for tests). */
export const openingsSize = (): { readonly names: number; readonly bytes: number } => ({ names: openings.size, bytes: openingsBytes })

/** `"key":` (first member) or `,"key":` (any other). */
export const memberOpening = (key: string, first: boolean): string => {
  let known = openings.get(key)
  if (known === undefined) {
    if (attributeKeyProblem(key) !== undefined) {
      const json = JSON.stringify(key) + ":"
      return first ? json : "," + json
    }
    known = remember(key)
  }
  return first ? known[0] : known[1]
}

/** As memberOpening, for the decoder: undefined when `key` is not a valid attribute name (attributeKeyProblem). */
export const checkedMemberOpening = (key: string, first: boolean): string | undefined => {
  let known = openings.get(key)
  if (known === undefined) {
    if (attributeKeyProblem(key) !== undefined) return undefined
    known = remember(key)
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
