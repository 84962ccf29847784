import { attributesJson } from "../position/attributesJson.js"
import type { Position } from "../position/Position.js"

// PostgreSQL's COPY text format: tab-separated columns, one row a line, backslash escapes.

const SPECIAL_ALL = /[\\\t\n\r]/g
const ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }

/** Escapes a column value. A scan by character code: most values (device ids) have nothing to escape. */
export const escapeCopy = (s: string): string => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 92 || c === 9 || c === 10 || c === 13) return s.replace(SPECIAL_ALL, (m) => ESCAPES[m]!)
  }
  return s
}

/**
 * Escapes JSON text. JSON never holds a raw tab or line break (they are written \t, \n), so a backslash is
 * the only character to double, and a native search finds it fast.
 */
export const escapeJsonCopy = (json: string): string => (json.includes("\\") ? json.replaceAll("\\", "\\\\") : json)

/**
 * One row of COPY text, columns in Writer.COLUMNS order, without its line end (the writer joins rows with
 * newlines); `attributes` is the attributes' stored JSON. Built by one join, so the row is one flat string:
 * a chain of `+` would leave a tree of some 25 small strings per row alive while the row waits for its batch.
 */
export const toCopyRow = (p: Position, attributes: string = attributesJson(p.attributes)): string =>
  [
    escapeCopy(p.device_id),
    p.timestamp.toISOString(),
    p.latitude,
    p.longitude,
    p.altitude,
    p.angle,
    p.speed,
    p.satellites,
    p.priority,
    p.event_id,
    escapeJsonCopy(attributes)
  ].join("\t")

/** The COPY text of a batch of rows. */
export const copyText = (rows: ReadonlyArray<string>): string => rows.join("\n") + "\n"

/** The key (device_id, ts) of a COPY line, as the line writes it: its first two columns. */
export const rowKey = (row: string): string => row.slice(0, row.indexOf("\t", row.indexOf("\t") + 1))

/** The key of a stored row, written as `rowKey` reads it from the line. */
export const keyOf = (deviceId: string, ms: number): string => escapeCopy(deviceId) + "\t" + new Date(ms).toISOString()
