import { attributesJson } from "../position/attributesJson.js"
import type { Position } from "../position/Position.js"

// PostgreSQL's COPY text format: tab-separated columns, one row a line, backslash escapes.

const SPECIAL = /[\\\t\n\r]/
const SPECIAL_ALL = /[\\\t\n\r]/g
const ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" }

export const escapeCopy = (s: string): string => (SPECIAL.test(s) ? s.replace(SPECIAL_ALL, (c) => ESCAPES[c]!) : s)

export const toCopyRow = (p: Position): string =>
  escapeCopy(p.device_id) + "\t" + p.timestamp.toISOString() + "\t" + p.latitude + "\t" + p.longitude + "\t" +
  p.altitude + "\t" + p.angle + "\t" + p.speed + "\t" + p.satellites + "\t" + p.priority + "\t" + p.event_id + "\t" +
  escapeCopy(attributesJson(p.attributes)) + "\n"
