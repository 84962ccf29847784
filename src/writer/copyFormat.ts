import type { AttributeValue, Position } from "../position/Position.js"

// PostgreSQL's COPY text format: tab-separated columns, one row a line, backslash escapes.

const SPECIAL = /[\\\t\n\r]/
const SPECIAL_ALL = /[\\\t\n\r]/g
const ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }

export const escapeCopy = (s: string): string => (SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : s)

const attributeJson = (v: AttributeValue): string => {
  switch (typeof v) {
    case "bigint":
      // Exact: jsonb keeps numbers as numeric, so a bigint stays a JSON number with every digit.
      return v.toString()
    case "object":
      return `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")}"`
    default:
      return JSON.stringify(v)
  }
}

/** The attributes as the JSON stored in positions.attributes: bigints as exact numbers, bytes as lowercase hex. */
export const attributesJson = (attributes: Readonly<Record<string, AttributeValue>>): string => {
  let out = "{"
  for (const key in attributes) {
    if (out.length > 1) out += ","
    out += JSON.stringify(key) + ":" + attributeJson(attributes[key]!)
  }
  return out + "}"
}

export const toCopyRow = (p: Position): string =>
  escapeCopy(p.device_id) + "\t" + p.timestamp.toISOString() + "\t" + p.latitude + "\t" + p.longitude + "\t" +
  p.altitude + "\t" + p.angle + "\t" + p.speed + "\t" + p.satellites + "\t" + p.priority + "\t" + p.event_id + "\t" +
  escapeCopy(attributesJson(p.attributes)) + "\n"
