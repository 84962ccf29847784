import { Duration, Either } from "effect"
import { type StreamEntry, streamIdTime } from "../consumer/Consumer.js"
import { quote, Reason } from "../deadletter/Reason.js"
import { attributesJson, attributeValueJson, checkedMemberOpening } from "./attributesJson.js"
import {
  type AttributeValue,
  decodeAttribute,
  decodeStrict,
  EARLIEST_TIMESTAMP_MS,
  FORBIDDEN_ATTRIBUTE,
  MAX_ATTRIBUTES,
  parseInstant,
  type Position,
  unstorable
} from "./Position.js"
import { scanPayload } from "./scan.js"

// Two fast paths, then the Schema. decodeEntry first hands an entry's bytes to scan.ts, which reads the
// producer's compact form without JSON.parse and only ever accepts; whatever it does not take comes here.
// decodeFast, on the object JSON.parse made, accepts exactly what the Schema accepts (property-tested in
// test/decode.test.ts) and, on rejection, defers to the Schema for the message, so errors stay precise
// while valid records never pay for the Schema's generality.

/**
 * A valid record: the position, and its attributes as stored (positions.attributes), built while validating.
 * A position from the byte scanner is a ScannedPosition (scan.ts), whose `attributes` map is made on first read.
 */
export interface Decoded {
  readonly position: Position
  readonly attributesJson: string
}

const isNum = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)
const inRange = (u: unknown, min: number, max: number): u is number => typeof u === "number" && u >= min && u <= max
const isIntIn = (u: unknown, min: number, max: number): u is number => Number.isInteger(u) && (u as number) >= min && (u as number) <= max

// Validates and builds the stored JSON in one pass over the object JSON.parse made, and keeps that object:
// an attribute map with numeric keys ("16", "385") is slow to build afresh. Sentinels are resolved in place
// only once every value is known to be valid, so a rejected payload reaches the Schema untouched.
const fastAttributes = (u: unknown, owned: boolean): readonly [Record<string, AttributeValue>, string] | undefined => {
  if (u === undefined) return [{}, "{}"]
  if (typeof u !== "object" || u === null || Array.isArray(u)) return undefined
  const source = u as Record<string, unknown>
  let json = "{"
  let first = true
  let sentinels: Array<string> | undefined
  let resolved: Array<AttributeValue> | undefined
  let count = 0
  for (const key in source) {
    if (key === FORBIDDEN_ATTRIBUTE || ++count > MAX_ATTRIBUTES) return undefined
    // Cached for names seen before, which are known to be valid; undefined for an invalid name.
    const opening = checkedMemberOpening(key, first)
    if (opening === undefined) return undefined
    const raw = source[key]
    let text: string
    switch (typeof raw) {
      case "number":
        if (!Number.isFinite(raw)) return undefined
        text = "" + raw
        break
      case "string":
        if (unstorable(raw) !== undefined) return undefined
        text = JSON.stringify(raw)
        break
      case "boolean":
        text = raw ? "true" : "false"
        break
      case "object": {
        const value = decodeAttribute(raw)
        if (value === undefined) return undefined
        ;(sentinels ??= []).push(key)
        ;(resolved ??= []).push(value)
        text = attributeValueJson(value)
        break
      }
      default:
        return undefined
    }
    json += opening
    json += text
    first = false
  }
  // A caller's object is copied rather than changed.
  const target = owned ? source : { ...source }
  if (sentinels !== undefined) for (let i = 0; i < sentinels.length; i++) target[sentinels[i]!] = resolved![i]
  return [target as Record<string, AttributeValue>, json + "}"]
}

// `owned`: `u` is ours to change (it comes from our own JSON.parse).
const decodeFast = (u: unknown, owned: boolean): Decoded | undefined => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return undefined
  const o = u as Record<string, unknown>
  const deviceId = o["device_id"]
  if (typeof deviceId !== "string" || deviceId.length === 0 || deviceId.length > 64 || unstorable(deviceId) !== undefined) {
    return undefined
  }
  const timestamp = o["timestamp"]
  if (typeof timestamp !== "string") return undefined
  const ms = parseInstant(timestamp)
  // NaN fails this too.
  if (!(ms >= EARLIEST_TIMESTAMP_MS)) return undefined
  const { latitude, longitude, altitude, angle, speed, satellites, priority } = o
  if (!inRange(latitude, -90, 90) || !inRange(longitude, -180, 180) || !isNum(altitude)) return undefined
  if (!inRange(angle, 0, 360) || !isNum(speed) || speed < 0) return undefined
  if (!isIntIn(satellites, 0, 255) || !isIntIn(priority, 0, 2)) return undefined
  let eventId = o["event_id"]
  if (eventId === undefined) eventId = 0
  else if (!Number.isSafeInteger(eventId) || (eventId as number) < 0) return undefined
  const attributes = fastAttributes(o["attributes"], owned)
  if (attributes === undefined) return undefined
  return {
    position: {
      device_id: deviceId,
      timestamp: new Date(ms),
      latitude,
      longitude,
      altitude,
      angle,
      speed,
      satellites,
      priority,
      event_id: eventId as number,
      attributes: attributes[0]
    },
    attributesJson: attributes[1]
  }
}

/** The fast path on a value the caller keeps: `u` is left as it is. */
export const fastDecode = (u: unknown): Decoded | undefined => decodeFast(u, false)

/**
 * Decodes a payload field: a position, or a one-line reason naming the field (at most a short prefix of any
 * bad value). Never throws, whatever the text.
 */
export const decodePayload = (payload: string | undefined): Either.Either<Decoded, string> => {
  if (payload === undefined) return Either.left("payload: the entry has no payload field")
  try {
    let json: unknown
    try {
      json = JSON.parse(payload)
    } catch (error) {
      return Either.left(`payload: not valid JSON (${quote(String((error as Error).message))})`)
    }
    const decoded = decodeFast(json, true)
    if (decoded !== undefined) return Either.right(decoded)
    return Either.map(decodeStrict(json), (position) => ({ position, attributesJson: attributesJson(position.attributes) }))
  } catch (error) {
    // Not expected (the Schema is guarded against deep values); one bad entry must still not stop the worker.
    return Either.left(`payload: could not be decoded (${quote(String(error instanceof Error ? error.message : error))})`)
  }
}

/** What decodeEntry enforces beyond the payload's own contract (src/config/Config.ts). */
export interface Limits {
  /** MAX_PAYLOAD_BYTES: the largest payload field, in UTF-8 bytes; a larger one is not parsed. */
  readonly maxPayloadBytes: number
  /** MAX_FUTURE_SKEW in milliseconds: how far a timestamp may be ahead of the entry's stream id time; 0: no check. */
  readonly maxFutureSkewMs: number
}

// Whole seconds, rounded up (so "more than" reads true): a difference of dates far apart formatted to the
// nanosecond shows floating-point leftovers.
const human = (ms: number): string => Duration.format(Duration.seconds(Math.ceil(ms / 1000)))

/**
 * One stream entry: its position, or why it is dead-lettered: TooLarge (payload above `maxPayloadBytes`,
 * not parsed), Invalid (not valid UTF-8, not JSON, breaks the wire contract of Position.ts, or a timestamp more
 * than `maxFutureSkewMs` ahead of the time Redis accepted the entry). Never throws, whatever the entry holds.
 */
export const decodeEntry = (entry: StreamEntry, limits: Limits): Either.Either<Decoded, Reason> => {
  // The fast path first, on the bytes when the consumer read them as bytes: what it accepts is ASCII (so valid
  // UTF-8) within the size limit, and decoded as decodePayload would decode it. Anything else goes the way it
  // always went, text and verdict and message.
  const bytes = entry.payloadBytes
  if (bytes !== undefined && bytes.length <= limits.maxPayloadBytes) {
    const scanned = scanPayload(bytes)
    if (scanned !== undefined) return checkSkew(entry, scanned, limits)
  }
  const payload = entry.payload
  // First: the size of bytes that are not UTF-8 cannot be told from their decoded text.
  if (entry.invalidUtf8 === true) {
    return Either.left(Reason.Invalid({ message: "payload: not valid UTF-8 (its bytes cannot be read as text without changing them)" }))
  }
  // UTF-8 takes at most three bytes per UTF-16 unit: only a long payload needs its bytes counted.
  if (payload !== undefined && payload.length * 3 > limits.maxPayloadBytes) {
    const bytes = Buffer.byteLength(payload, "utf8")
    if (bytes > limits.maxPayloadBytes) return Either.left(Reason.TooLarge({ bytes, limit: limits.maxPayloadBytes }))
  }
  const decoded = decodePayload(payload)
  if (decoded._tag === "Left") return Either.left(Reason.Invalid({ message: decoded.left }))
  return checkSkew(entry, decoded.right, limits)
}

/** A decoded entry, or Invalid when its timestamp is more than `maxFutureSkewMs` ahead of its stream id time. */
const checkSkew = (entry: StreamEntry, decoded: Decoded, limits: Limits): Either.Either<Decoded, Reason> => {
  if (limits.maxFutureSkewMs > 0) {
    const { timestamp } = decoded.position
    const at = streamIdTime(entry.id)
    const ahead = timestamp.getTime() - at
    if (ahead > limits.maxFutureSkewMs) {
      return Either.left(Reason.Invalid({
        message: `timestamp: ${timestamp.toISOString()} is ${human(ahead)} ahead of the time Redis ` +
          `accepted the entry (${new Date(at).toISOString()}), more than MAX_FUTURE_SKEW=${human(limits.maxFutureSkewMs)}`
      }))
    }
  }
  return Either.right(decoded)
}
