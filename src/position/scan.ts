import { latin1Text } from "../Bytes.js"
import type { Decoded } from "./decode.js"
import {
  type AttributeValue,
  decodeAttribute,
  EARLIEST_TIMESTAMP_MS,
  MAX_ATTRIBUTE_KEY_LENGTH,
  MAX_ATTRIBUTES,
  parseInstant,
  type Position
} from "./Position.js"

// The byte-level fast path: reads a payload's bytes as the producer writes them (JSON.stringify's compact form:
// known top-level keys, no whitespace, no escapes, ASCII) straight into a position and its attributes' stored
// JSON, without JSON.parse's object graph and without decoding the payload to a string first.
//
// It only ever accepts. Whenever a payload is not in that form, or anything about it is unusual (a number not in
// its shortest form, an exponent, more than 15 significant digits, a duplicate or unknown key, a key order that
// JSON.parse would change, non-ASCII bytes, a bigint "-0", a timestamp Date.UTC would read differently), it
// answers undefined and the caller asks today's decoder (decode.ts: JSON.parse, decodeFast, the Schema), which
// gives every verdict and message. So what it accepts is a subset of what the Schema accepts, and for it the
// result is what today's decoder gives (property-tested in test/scan.test.ts and test/decode.test.ts).
//
// Every byte of an accepted payload has been looked at and is ASCII: an accepted payload is valid UTF-8, and every
// string taken from it (device_id, attribute names and string values) is storable text (no U+0000, no surrogate).

const QUOTE = 0x22
const PLUS = 0x2b
const COMMA = 0x2c
const MINUS = 0x2d
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const COLON = 0x3a
const EQUALS = 0x3d
const UPPER_E = 0x45
const UPPER_T = 0x54
const UPPER_Z = 0x5a
const BACKSLASH = 0x5c
const LOWER_E = 0x65
const LOWER_F = 0x66
const LOWER_T = 0x74
const LEFT_BRACE = 0x7b
const RIGHT_BRACE = 0x7d

/** 10^0 … 10^22: every one exact as a double. */
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`))

/** Most significant digits read by the number scanner: 10^15 < 2^53, so the digits are an exact integer. */
const MAX_DIGITS = 15

const bytesOf = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0))

// The top-level fields, by index (a bit each in `seen`).
const DEVICE_ID = 0
const TIMESTAMP = 1
const LATITUDE = 2
const LONGITUDE = 3
const ALTITUDE = 4
const ANGLE = 5
const SPEED = 6
const SATELLITES = 7
const PRIORITY = 8
const EVENT_ID = 9
const ATTRIBUTES = 10
const FIELD_NAMES = [
  "device_id",
  "timestamp",
  "latitude",
  "longitude",
  "altitude",
  "angle",
  "speed",
  "satellites",
  "priority",
  "event_id",
  "attributes"
].map(bytesOf)
/** Each field's member opening, `"name":`: in the producer's order, each is found by one comparison. */
const FIELD_OPENINGS = FIELD_NAMES.map((name) => Uint8Array.from([QUOTE, ...name, QUOTE, COLON]))
/** Every field but event_id and attributes (optional, with defaults). */
const REQUIRED = (1 << EVENT_ID) - 1

const PROTO = bytesOf("__proto__")
const BIGINT_OPEN = bytesOf(`{"__bigint":"`)
const BYTES_OPEN = bytesOf(`{"__bytes":"`)

/** base64 alphabet value of each byte, or -1. */
const SEXTET = new Int8Array(256).fill(-1)
for (let i = 0; i < 64; i++) SEXTET["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".charCodeAt(i)] = i

const HEX = bytesOf("0123456789abcdef")

// The scanner's results beside the offset it returns (one payload at a time, on one thread; nothing awaits inside).
/** The value of the number just scanned. */
let numberValue = 0
/** Whether the number's text is what `String(numberValue)` gives (the stored form). */
let numberCanonical = false
/** Most attribute names that are not array indices in a payload this path reads. */
const MAX_NAMED = 32
/** Attribute members: the start and end offsets of each name, for the duplicate check. */
const names = new Int32Array(2 * MAX_ATTRIBUTES)
/** Sentinels found in the attributes: [start, end, kind, valueStart, valueEnd] each (kind 0 bigint, 1 bytes). */
const sentinels: Array<number> = []
/** How many numbers of `sentinels` belong to the payload being scanned (5 a sentinel). */
let sentinelsUsed = 0
let scratch = Buffer.allocUnsafe(4096)

/** The text of ASCII bytes `b[start..end)`. */
const ascii = latin1Text

const equalAt = (b: Buffer, at: number, end: number, expected: Uint8Array): boolean => {
  if (end - at !== expected.length) return false
  for (let i = 0; i < expected.length; i++) if (b[at + i] !== expected[i]) return false
  return true
}

const startsWith = (b: Buffer, at: number, expected: Uint8Array): boolean => {
  if (at + expected.length > b.length) return false
  for (let i = 0; i < expected.length; i++) if (b[at + i] !== expected[i]) return false
  return true
}

/**
 * The end (offset of the closing quote) of a string whose contents start at `at`: printable ASCII (0x20–0x7f)
 * without `"` or `\`, so the text is its bytes. -1 for anything else, or no closing quote.
 */
const stringEnd = (b: Buffer, at: number): number => {
  const n = b.length
  for (let i = at; i < n; i++) {
    const c = b[i]!
    if (c === QUOTE) return i
    if (c < 0x20 || c > 0x7f || c === BACKSLASH) return -1
  }
  return -1
}

/**
 * Scans a JSON number at `at` (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`): the offset after it, with
 * numberValue and numberCanonical set, or -1 when the bytes are not a number or it is not finite ("1e400").
 * Common numbers (no exponent, at most 15 significant digits, at most 22 decimals) are computed from their digits:
 * the digits m are then an exact integer and 10^k an exact double, so m / 10^k, one correctly rounded division,
 * is the double nearest the decimal, which is what JSON.parse gives. Others are read by Number(), which reads
 * JSON's numbers as JSON.parse does.
 */
const scanNumber = (b: Buffer, at: number): number => {
  const n = b.length
  let i = at
  const negative = b[i] === MINUS
  if (negative) i++
  if (i >= n) return -1
  let c = b[i]!
  let m = 0
  let digits = 0
  if (c === ZERO) i++
  else if (c > ZERO && c <= NINE) {
    do {
      m = m * 10 + (c - ZERO)
      digits++
      c = b[++i]!
    } while (i < n && c >= ZERO && c <= NINE)
  } else return -1
  let decimals = 0
  let canonical = true
  if (i < n && b[i] === DOT) {
    i++
    // Zeros between the point and the first significant digit ("0.00012"): String() switches to an exponent
    // below 1e-6, that is after more than five of them.
    let leadingZeros = 0
    const first = i
    while (i < n && (c = b[i]!) >= ZERO && c <= NINE) {
      if (m === 0 && c === ZERO) leadingZeros++
      else {
        m = m * 10 + (c - ZERO)
        digits++
      }
      i++
    }
    decimals = i - first
    if (decimals === 0) return -1
    // Trailing zeros ("1.50", "0.0") are not the shortest form.
    if (b[i - 1] === ZERO || leadingZeros > 5) canonical = false
  }
  let exponent = false
  if (i < n && ((c = b[i]!) === LOWER_E || c === UPPER_E)) {
    exponent = true
    i++
    if (i < n && ((c = b[i]!) === PLUS || c === MINUS)) i++
    const first = i
    while (i < n && (c = b[i]!) >= ZERO && c <= NINE) i++
    if (i === first) return -1
  }
  if (exponent || digits > MAX_DIGITS || decimals > 22) {
    const text = b.toString("latin1", at, i)
    const value = Number(text)
    if (!Number.isFinite(value)) return -1
    numberValue = value
    numberCanonical = String(value) === text
    return i
  }
  let value = decimals === 0 ? m : m / POW10[decimals]!
  if (negative) {
    value = -value
    // "-0" reads as -0, which String() writes "0".
    if (m === 0) canonical = false
  }
  numberValue = value
  numberCanonical = canonical
  return i
}

const digitAt = (b: Buffer, i: number): number => {
  const d = b[i]! - ZERO
  return d >= 0 && d <= 9 ? d : -1
}

const twoDigits = (b: Buffer, i: number): number => {
  const hi = digitAt(b, i)
  const lo = digitAt(b, i + 1)
  return hi < 0 || lo < 0 ? -1 : hi * 10 + lo
}

const daysInMonth = (year: number, month: number): number =>
  month === 2
    ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28)
    : month === 4 || month === 6 || month === 9 || month === 11
    ? 30
    : 31

/** Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/**
 * Milliseconds of the common form `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` between `at` and `end`, or NaN when the text is
 * of another form (an offset) or not a real instant; the caller then asks parseInstant.
 */
const instantMs = (b: Buffer, at: number, end: number): number => {
  const length = end - at
  if (length < 20 || b[at + 4] !== MINUS || b[at + 7] !== MINUS || b[at + 10] !== UPPER_T || b[at + 13] !== COLON ||
    b[at + 16] !== COLON || b[end - 1] !== UPPER_Z) return NaN
  const century = twoDigits(b, at)
  const yy = twoDigits(b, at + 2)
  const month = twoDigits(b, at + 5)
  const day = twoDigits(b, at + 8)
  const hour = twoDigits(b, at + 11)
  const minute = twoDigits(b, at + 14)
  const second = twoDigits(b, at + 17)
  if (century < 0 || yy < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
    minute > 59 || second < 0 || second > 59) return NaN
  const year = century * 100 + yy
  if (day > daysInMonth(year, month)) return NaN
  let ms = 0
  if (length > 20) {
    // `.` and 1 to 9 digits; beyond the millisecond they are dropped (as Date.parse does).
    const digits = length - 21
    if (b[at + 19] !== DOT || digits < 1 || digits > 9) return NaN
    for (let i = 0; i < digits; i++) {
      const d = digitAt(b, at + 20 + i)
      if (d < 0) return NaN
      if (i < 3) ms += d * (i === 0 ? 100 : i === 1 ? 10 : 1)
    }
  }
  return daysFromCivil(year, month, day) * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1000 + ms
}

/** The field index of the key between `at` and `end`, or -1. */
const fieldOf = (b: Buffer, at: number, end: number): number => {
  for (let f = 0; f < FIELD_NAMES.length; f++) if (equalAt(b, at, end, FIELD_NAMES[f]!)) return f
  return -1
}

/** An array index as JSON.parse's objects order them (ascending, before every other key): its value, or -1. */
const arrayIndex = (b: Buffer, at: number, end: number): number => {
  const length = end - at
  if (length === 0 || length > 10 || (length > 1 && b[at] === ZERO)) return -1
  let v = 0
  for (let i = at; i < end; i++) {
    const d = digitAt(b, i)
    if (d < 0) return -1
    v = v * 10 + d
  }
  return v <= 4_294_967_294 ? v : -1
}

const sameBytes = (b: Buffer, a0: number, a1: number, c0: number, c1: number): boolean => {
  if (a1 - a0 !== c1 - c0) return false
  for (let i = 0; i < a1 - a0; i++) if (b[a0 + i] !== b[c0 + i]) return false
  return true
}

/** Whether `b[at..end)` is base64 as Position.ts's BASE64 accepts it (groups of four, padding only at the end). */
const isBase64 = (b: Buffer, at: number, end: number): boolean => {
  const length = end - at
  if (length % 4 !== 0) return false
  for (let i = at; i < end; i++) {
    if (SEXTET[b[i]!]! < 0) {
      // Padding: "xx==" or "xxx=" as the last group.
      if (b[i] !== EQUALS) return false
      const rest = end - i
      if (rest === 1) return true
      return rest === 2 && b[i + 1] === EQUALS && (i - at) % 4 === 2
    }
  }
  return true
}

/**
 * Scans the attributes object at `at`: the offset after it, or -1. Sentinels are recorded in `sentinels`.
 * Accepts only what fastAttributes accepts and stores as these very bytes, sentinels aside: names that are valid
 * (not `__proto__`, at most 64 characters), in the order JSON.parse's object keeps them, none twice; values that
 * are strings, booleans, numbers in their shortest form, or well-formed sentinels.
 */
const scanAttributes = (b: Buffer, at: number): number => {
  const n = b.length
  let i = at + 1
  if (b[i] === RIGHT_BRACE) return i + 1
  let count = 0
  let lastIndex = -1
  let others = false
  let firstOther = 0
  let c: number
  for (;;) {
    if (b[i] !== QUOTE || count === MAX_ATTRIBUTES) return -1
    const nameStart = i + 1
    const nameEnd = stringEnd(b, nameStart)
    if (nameEnd < 0 || nameEnd - nameStart > MAX_ATTRIBUTE_KEY_LENGTH) return -1
    const index = arrayIndex(b, nameStart, nameEnd)
    if (index >= 0) {
      // Array indices come first, ascending: otherwise JSON.parse's object (and so the stored JSON) reorders them.
      if (others || index <= lastIndex) return -1
      lastIndex = index
    } else {
      if (equalAt(b, nameStart, nameEnd, PROTO)) return -1
      if (!others) {
        others = true
        firstOther = count
      }
      // Names that are not indices are checked against each other for duplicates, pairwise: past MAX_NAMED of
      // them (IO element ids are indices) today's decoder takes the payload, so no payload costs more than
      // MAX_NAMED² / 2 comparisons here.
      if (count - firstOther === MAX_NAMED) return -1
      for (let k = firstOther; k < count; k++) {
        if (sameBytes(b, names[2 * k]!, names[2 * k + 1]!, nameStart, nameEnd)) return -1
      }
    }
    names[2 * count] = nameStart
    names[2 * count + 1] = nameEnd
    count++
    i = nameEnd + 1
    if (b[i] !== COLON) return -1
    i++
    if (i >= n) return -1
    c = b[i]!
    if (c === QUOTE) {
      const end = stringEnd(b, i + 1)
      if (end < 0) return -1
      i = end + 1
    } else if (c === LOWER_T) {
      if (b[i + 1] !== 0x72 || b[i + 2] !== 0x75 || b[i + 3] !== LOWER_E) return -1
      i += 4
    } else if (c === LOWER_F) {
      if (b[i + 1] !== 0x61 || b[i + 2] !== 0x6c || b[i + 3] !== 0x73 || b[i + 4] !== LOWER_E) return -1
      i += 5
    } else if (c === LEFT_BRACE) {
      const start = i
      let kind: number
      if (startsWith(b, i, BIGINT_OPEN)) {
        kind = 0
        i += BIGINT_OPEN.length
      } else if (startsWith(b, i, BYTES_OPEN)) {
        kind = 1
        i += BYTES_OPEN.length
      } else return -1
      const valueStart = i
      const valueEnd = stringEnd(b, valueStart)
      if (valueEnd < 0 || b[valueEnd + 1] !== RIGHT_BRACE) return -1
      if (kind === 0) {
        // Position.ts's DECIMAL, less "-0" (stored as 0): the digits are then the stored number as they are.
        let d = valueStart
        if (b[d] === MINUS) d++
        if (d === valueEnd || (b[d] === ZERO && valueEnd - d > 1) || (b[d] === ZERO && d > valueStart)) return -1
        for (; d < valueEnd; d++) if (digitAt(b, d) < 0) return -1
      } else if (!isBase64(b, valueStart, valueEnd)) return -1
      i = valueEnd + 2
      sentinels[sentinelsUsed++] = start
      sentinels[sentinelsUsed++] = i
      sentinels[sentinelsUsed++] = kind
      sentinels[sentinelsUsed++] = valueStart
      sentinels[sentinelsUsed++] = valueEnd
    } else {
      const end = scanNumber(b, i)
      if (end < 0 || !numberCanonical) return -1
      i = end
    }
    c = b[i]!
    if (c === COMMA) i++
    else if (c === RIGHT_BRACE) return i + 1
    else return -1
  }
}

const ensureScratch = (bytes: number): Buffer => {
  if (scratch.length < bytes) scratch = Buffer.allocUnsafe(Math.max(bytes, 2 * scratch.length))
  return scratch
}

/** The stored JSON of attributes `b[at..end)` with sentinels: each one replaced by its stored value. */
const storedWithSentinels = (b: Buffer, at: number, end: number): string => {
  // A sentinel's stored form is at most twice as long as it: digits for `{"__bigint":"digits"}`; for
  // `{"__bytes":"…"}` (L base64 characters, L + 14 bytes) two hex digits per byte, 3L/2 + 2.
  const out = ensureScratch(2 * (end - at))
  let o = 0
  let from = at
  for (let s = 0; s < sentinelsUsed; s += 5) {
    const start = sentinels[s]!
    const stop = sentinels[s + 1]!
    const valueStart = sentinels[s + 3]!
    const valueEnd = sentinels[s + 4]!
    for (let i = from; i < start; i++) out[o++] = b[i]!
    if (sentinels[s + 2] === 0) {
      for (let i = valueStart; i < valueEnd; i++) out[o++] = b[i]!
    } else {
      out[o++] = QUOTE
      for (let i = valueStart; i < valueEnd; i += 4) {
        const n = (SEXTET[b[i]!]! << 18) | (SEXTET[b[i + 1]!]! << 12) |
          (b[i + 2] === EQUALS ? 0 : SEXTET[b[i + 2]!]! << 6) | (b[i + 3] === EQUALS ? 0 : SEXTET[b[i + 3]!]!)
        const count = b[i + 2] === EQUALS ? 1 : b[i + 3] === EQUALS ? 2 : 3
        for (let k = 0; k < count; k++) {
          const byte = (n >>> (16 - 8 * k)) & 255
          out[o++] = HEX[byte >>> 4]!
          out[o++] = HEX[byte & 15]!
        }
      }
      out[o++] = QUOTE
    }
    from = stop
  }
  for (let i = from; i < end; i++) out[o++] = b[i]!
  return ascii(out, 0, o)
}

/** The attributes map of an accepted payload, as today's decoder makes it: JSON.parse, then sentinels resolved. */
const attributesOf = (text: string): Record<string, AttributeValue> => {
  const o = JSON.parse(text) as Record<string, unknown>
  for (const key in o) {
    const value = o[key]
    // Validated by the scan: decodeAttribute resolves it.
    if (typeof value === "object") o[key] = decodeAttribute(value)
  }
  return o as Record<string, AttributeValue>
}

/**
 * A position read by the scanner. Its attributes map is made on first use (by JSON.parse of the attributes'
 * bytes, then decodeAttribute for sentinels, as today's decoder makes it): the hot path reads the stored JSON
 * instead, so valid records never build it. It keeps the attributes' text as sent until then: the stored JSON
 * itself when there are no sentinels (the same string), else a copy; never the Redis reply's buffer, so nothing
 * done to that buffer later can change or break it. `attributes` is a getter on the prototype: a spread (`{ ...p }`)
 * copies the other fields only, so a copy names it (`{ ...p, attributes: p.attributes }`). An own accessor would
 * cost Object.defineProperty per record (some 125 ns, measured).
 */
export class ScannedPosition implements Position {
  #text: string | undefined
  #attributes: Readonly<Record<string, AttributeValue>> | undefined

  constructor(
    readonly device_id: string,
    readonly timestamp: Date,
    readonly latitude: number,
    readonly longitude: number,
    readonly altitude: number,
    readonly angle: number,
    readonly speed: number,
    readonly satellites: number,
    readonly priority: number,
    readonly event_id: number,
    attributesText: string
  ) {
    this.#text = attributesText
    this.#attributes = undefined
  }

  get attributes(): Readonly<Record<string, AttributeValue>> {
    if (this.#attributes === undefined) {
      this.#attributes = attributesOf(this.#text!)
      this.#text = undefined
    }
    return this.#attributes
  }
}

/**
 * The payload's bytes as a decoded record, or undefined when they are not in the form this path reads (see the
 * top of this file): undefined is no verdict, the caller decodes the payload as it always has. Never throws.
 * Does not apply MAX_PAYLOAD_BYTES or MAX_FUTURE_SKEW (decodeEntry does).
 */
export const scanPayload = (b: Buffer): Decoded | undefined => {
  sentinelsUsed = 0
  const n = b.length
  if (n < 2 || b[0] !== LEFT_BRACE) return undefined
  let seen = 0
  let deviceId = ""
  let ms = NaN
  let latitude = NaN
  let longitude = NaN
  let altitude = NaN
  let angle = NaN
  let speed = NaN
  let satellites = NaN
  let priority = NaN
  let eventId = 0
  let attributesAt = -1
  let attributesEnd = -1
  let i = 1
  // The field the producer writes next: tried first.
  let next = 0
  for (;;) {
    let field: number
    if (next < FIELD_OPENINGS.length && startsWith(b, i, FIELD_OPENINGS[next]!)) {
      field = next
      i += FIELD_OPENINGS[next]!.length
    } else {
      if (b[i] !== QUOTE) return undefined
      const keyEnd = stringEnd(b, i + 1)
      if (keyEnd < 0) return undefined
      field = fieldOf(b, i + 1, keyEnd)
      if (field < 0) return undefined
      i = keyEnd + 1
      if (b[i] !== COLON) return undefined
      i++
    }
    if ((seen & (1 << field)) !== 0) return undefined
    seen |= 1 << field
    next = field + 1
    if (field === DEVICE_ID || field === TIMESTAMP) {
      if (b[i] !== QUOTE) return undefined
      const start = i + 1
      const end = stringEnd(b, start)
      if (end < 0) return undefined
      if (field === DEVICE_ID) {
        if (end === start || end - start > 64) return undefined
        deviceId = ascii(b, start, end)
      } else {
        ms = instantMs(b, start, end)
        if (Number.isNaN(ms)) ms = parseInstant(b.toString("latin1", start, end))
        // NaN fails this too.
        if (!(ms >= EARLIEST_TIMESTAMP_MS)) return undefined
      }
      i = end + 1
    } else if (field === ATTRIBUTES) {
      if (b[i] !== LEFT_BRACE) return undefined
      const end = scanAttributes(b, i)
      if (end < 0) return undefined
      attributesAt = i
      attributesEnd = end
      i = end
    } else {
      const end = scanNumber(b, i)
      if (end < 0) return undefined
      const v = numberValue
      switch (field) {
        case LATITUDE:
          if (!(v >= -90 && v <= 90)) return undefined
          latitude = v
          break
        case LONGITUDE:
          if (!(v >= -180 && v <= 180)) return undefined
          longitude = v
          break
        case ALTITUDE:
          altitude = v
          break
        case ANGLE:
          if (!(v >= 0 && v <= 360)) return undefined
          angle = v
          break
        case SPEED:
          if (!(v >= 0)) return undefined
          speed = v
          break
        case SATELLITES:
          if (!(Number.isInteger(v) && v >= 0 && v <= 255)) return undefined
          satellites = v
          break
        case PRIORITY:
          if (!(Number.isInteger(v) && v >= 0 && v <= 2)) return undefined
          priority = v
          break
        default:
          if (!(Number.isSafeInteger(v) && v >= 0)) return undefined
          eventId = v
      }
      i = end
    }
    const c = b[i]
    if (c === COMMA) i++
    else if (c === RIGHT_BRACE && i === n - 1) break
    else return undefined
  }
  if ((seen & REQUIRED) !== REQUIRED) return undefined
  let attributesJson: string
  // The attributes as sent, for the map made on first use.
  let attributesText: string
  if (attributesAt < 0) attributesJson = attributesText = "{}"
  else if (sentinelsUsed === 0) attributesJson = attributesText = ascii(b, attributesAt, attributesEnd)
  else {
    attributesJson = storedWithSentinels(b, attributesAt, attributesEnd)
    attributesText = ascii(b, attributesAt, attributesEnd)
  }
  return {
    position: new ScannedPosition(
      deviceId,
      new Date(ms),
      latitude,
      longitude,
      altitude,
      angle,
      speed,
      satellites,
      priority,
      eventId,
      attributesText
    ),
    attributesJson
  }
}
