import { isUtf8 } from "node:buffer"
import { Either } from "effect"
import { expect } from "vitest"
import type { StreamEntry } from "../../src/consumer/Consumer.js"
import { type Decoded, decodeEntry, decodePayload, type Limits } from "../../src/position/decode.js"
import type { Position } from "../../src/position/Position.js"
import { scanPayload } from "../../src/position/scan.js"

// Holds the byte-level fast path (src/position/scan.ts) to today's decoder, for test/scan.test.ts and
// test/decode.test.ts.

const FIELDS = ["device_id", "latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority", "event_id"] as const

/** The first difference between two attribute values or maps, or undefined (numbers by Object.is, bytes by value). */
const valueDifference = (a: unknown, b: unknown, path: string): string | undefined => {
  if (typeof a === "number" && typeof b === "number") return Object.is(a, b) ? undefined : `${path}: ${a} ≠ ${b}`
  if (a instanceof Uint8Array) {
    return b instanceof Uint8Array && Object.getPrototypeOf(a) === Object.getPrototypeOf(b) && Buffer.from(a).equals(Buffer.from(b))
      ? undefined
      : `${path}: bytes differ`
  }
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: prototypes differ`
    // Key order matters too: the stored JSON follows it.
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    if (ka.join("\u0000") !== kb.join("\u0000")) return `${path}: keys ${JSON.stringify(ka)} ≠ ${JSON.stringify(kb)}`
    for (const k of ka) {
      const d = valueDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`)
      if (d !== undefined) return d
    }
    return undefined
  }
  return a === b ? undefined : `${path}: ${String(a)} ≠ ${String(b)}`
}

/** The first difference between two decoded records (every position field, the attributes map, the stored JSON). */
export const decodedDifference = (a: Decoded, b: Decoded): string | undefined => {
  const pa: Position = a.position
  const pb: Position = b.position
  for (const field of FIELDS) {
    if (!Object.is(pa[field], pb[field])) return `${field}: ${String(pa[field])} ≠ ${String(pb[field])}`
  }
  if (pa.timestamp.getTime() !== pb.timestamp.getTime()) return `timestamp: ${pa.timestamp.getTime()} ≠ ${pb.timestamp.getTime()}`
  if (a.attributesJson !== b.attributesJson) return `attributesJson: ${a.attributesJson} ≠ ${b.attributesJson}`
  return valueDifference(pa.attributes, pb.attributes, "attributes")
}

/** An entry as RedisConsumer reads it: the bytes, and the text and UTF-8 flag it would give when asked. */
export const bytesEntry = (id: string, bytes: Buffer): StreamEntry => ({
  id,
  payloadBytes: bytes,
  payload: bytes.toString("utf8"),
  invalidUtf8: isUtf8(bytes) ? undefined : true
})

/** The same entry as it was read before the fast path: text only (what decodeEntry then decodes as ever). */
export const textEntry = (id: string, bytes: Buffer): StreamEntry =>
  isUtf8(bytes) ? { id, payload: bytes.toString("utf8") } : { id, payload: bytes.toString("utf8"), invalidUtf8: true }

/**
 * Checks one payload's bytes: the fast path throws nothing; when it accepts, the bytes are valid UTF-8 and today's
 * decodePayload gives the same record; and decodeEntry's verdict (Right value or Left reason) on the entry read
 * as bytes is the one it gives on the entry read as text. Returns whether the fast path accepted.
 */
export const checkAgainstToday = (bytes: Buffer, limits: Limits, id = "1777629600000-0"): boolean => {
  const fast = scanPayload(bytes)
  if (fast !== undefined) {
    expect(isUtf8(bytes), "accepted bytes that are not valid UTF-8").toBe(true)
    const today = decodePayload(bytes.toString("utf8"))
    if (Either.isLeft(today)) expect.fail(`fast path accepts what today's decoder refuses: ${today.left}`)
    expect(decodedDifference(fast, today.right)).toBeUndefined()
  }
  const viaBytes = decodeEntry(bytesEntry(id, bytes), limits)
  const viaText = decodeEntry(textEntry(id, bytes), limits)
  if (Either.isLeft(viaText)) expect(viaBytes).toStrictEqual(viaText)
  else {
    if (Either.isLeft(viaBytes)) expect.fail(`decodeEntry refuses via bytes (${viaBytes.left._tag}) what it accepts via text`)
    expect(decodedDifference(viaBytes.right, viaText.right)).toBeUndefined()
  }
  return fast !== undefined
}
