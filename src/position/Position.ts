import { Either, ParseResult, Schema } from "effect"
import { quote } from "../deadletter/Reason.js"

// The wire contract of one stream entry's `payload` (the "sentinel decoder").
// This Schema is the specification; `decode.ts` has the fast path that is verified against it.

export type AttributeValue = number | string | boolean | bigint | Uint8Array

const DECIMAL = /^-?(?:0|[1-9][0-9]*)$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
// An instant: a calendar date, a time, and an explicit offset.
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/

export const ATTRIBUTE_EXPECTED =
  'Expected a finite number, a string, a boolean, {"__bigint":"<decimal integer>"} or {"__bytes":"<base64>"}'

/** Longest attribute name, in UTF-16 code units (as `String.length` counts; IO element ids are a few digits). */
export const MAX_ATTRIBUTE_KEY_LENGTH = 64

/**
 * Most attributes in one record. A Teltonika record carries a few dozen IO elements (the captures this worker
 * was built on: 1,429 values in 87 records, at most a few dozen in one); the bound keeps one hostile entry from
 * costing milliseconds of validation and megabytes of state.
 */
export const MAX_ATTRIBUTES = 512

/**
 * The earliest valid timestamp, 2000-01-01T00:00:00Z: no GPS record of this fleet predates it, and the times a
 * reset clock reports (1970-01-01, the GPS epoch 1980-01-06, year 0000) are not when a position was taken.
 */
export const EARLIEST_TIMESTAMP_MS = Date.UTC(2000, 0, 1)

// U+0000, or a UTF-16 surrogate (paired or not): a cheap first look, true for almost no real string.
// eslint-disable-next-line no-control-regex -- U+0000 is what it looks for
const SUSPECT = /[\u0000\ud800-\udfff]/

/**
 * Why PostgreSQL cannot store `s` as text or inside jsonb, or undefined when it can: U+0000 (SQLSTATE 22P05)
 * and unpaired UTF-16 surrogates (not Unicode; the COPY encoder would write U+FFFD instead, merging distinct
 * values). Paired surrogates (emoji and the like) are fine.
 */
export const unstorable = (s: string): string | undefined => {
  if (!SUSPECT.test(s)) return undefined
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0) return `contains U+0000 at index ${i}, which PostgreSQL cannot store`
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
      else return `contains an unpaired surrogate U+${c.toString(16).toUpperCase()} at index ${i}, which PostgreSQL cannot store`
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return `contains an unpaired surrogate U+${c.toString(16).toUpperCase()} at index ${i}, which PostgreSQL cannot store`
    }
  }
  return undefined
}

/** Why `key` is not a valid attribute name (too long, or unstorable), or undefined. `__proto__` is refused separately. */
export const attributeKeyProblem = (key: string): string | undefined =>
  key.length > MAX_ATTRIBUTE_KEY_LENGTH
    ? `the name is ${key.length} characters long, more than ${MAX_ATTRIBUTE_KEY_LENGTH}`
    : unstorable(key)

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const onlyKey = (o: Record<string, unknown>, key: string): boolean => {
  let n = 0
  for (const k in o) {
    if (k !== key) return false
    n++
  }
  return n === 1
}

/** One attribute value, sentinels resolved; undefined when the value breaks the contract. */
export const decodeAttribute = (u: unknown): AttributeValue | undefined => {
  switch (typeof u) {
    case "number":
      return Number.isFinite(u) ? u : undefined
    case "string":
      return unstorable(u) === undefined ? u : undefined
    case "boolean":
      return u
    case "object": {
      if (!isPlainObject(u)) return undefined
      const big = u["__bigint"]
      if (typeof big === "string" && onlyKey(u, "__bigint")) return DECIMAL.test(big) ? BigInt(big) : undefined
      const bytes = u["__bytes"]
      if (typeof bytes === "string" && onlyKey(u, "__bytes")) {
        return BASE64.test(bytes) ? new Uint8Array(Buffer.from(bytes, "base64")) : undefined
      }
      return undefined
    }
    default:
      return undefined
  }
}

/**
 * Milliseconds since the epoch of an ISO-8601 instant, or NaN. Precision beyond the millisecond is dropped.
 * Any instant of years 0000-9999 (offsets included) is at most some 2.6e14 ms from the epoch: the COPY encoder's
 * int8 microseconds hold it.
 */
export const parseInstant = (s: string): number => {
  const m = INSTANT.exec(s)
  if (m === null) return NaN
  const year = +m[1]!
  const month = +m[2]!
  const day = +m[3]!
  // Date.parse rolls 30 February over into March; an impossible date is an error, not another day.
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return NaN
  return Date.parse(s)
}

const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31

/** JSON.parse makes "__proto__" an own key; assigning it to a plain object would replace its prototype. */
export const FORBIDDEN_ATTRIBUTE = "__proto__"

const AttributeValueSelf = Schema.declare(
  (u: unknown): u is AttributeValue =>
    typeof u === "string" || typeof u === "boolean" || typeof u === "bigint" || u instanceof Uint8Array ||
    (typeof u === "number" && Number.isFinite(u))
)

const Attribute = Schema.transformOrFail(Schema.Unknown, AttributeValueSelf, {
  strict: true,
  decode: (u, _, ast) => {
    const value = decodeAttribute(u)
    if (value !== undefined) return ParseResult.succeed(value)
    const problem = typeof u === "string" ? unstorable(u) : undefined
    return ParseResult.fail(new ParseResult.Type(ast, u, problem ?? ATTRIBUTE_EXPECTED))
  },
  encode: (value) =>
    ParseResult.succeed(
      typeof value === "bigint"
        ? { __bigint: value.toString() }
        : value instanceof Uint8Array
        ? { __bytes: Buffer.from(value).toString("base64") }
        : value
    )
})

const Instant = Schema.transformOrFail(Schema.String, Schema.DateFromSelf, {
  strict: true,
  decode: (s, _, ast) => {
    const ms = parseInstant(s)
    return Number.isNaN(ms)
      ? ParseResult.fail(new ParseResult.Type(ast, s, `Expected an ISO-8601 instant such as 2026-05-01T10:00:00.000Z, actual ${quote(s)}`))
      : ms < EARLIEST_TIMESTAMP_MS
      ? ParseResult.fail(new ParseResult.Type(ast, s, `Expected an instant from 2000-01-01T00:00:00Z on, actual ${quote(s)}`))
      : ParseResult.succeed(new Date(ms))
  },
  encode: (d) => ParseResult.succeed(d.toISOString())
})

// Names are checked here rather than by the Record's key schema: a Record ignores keys its key schema refuses.
const AttributeNames = Schema.Unknown.pipe(
  Schema.filter((u) => {
    if (typeof u !== "object" || u === null) return true
    if (Object.hasOwn(u, FORBIDDEN_ATTRIBUTE)) return `the attribute name ${FORBIDDEN_ATTRIBUTE} is not allowed`
    let count = 0
    for (const _ in u) if (++count > MAX_ATTRIBUTES) return `more than ${MAX_ATTRIBUTES} attributes`
    const issues: Array<Schema.FilterIssue> = []
    for (const key in u) {
      const problem = attributeKeyProblem(key)
      if (problem !== undefined) issues.push({ path: [key], message: problem })
    }
    return issues.length === 0 ? true : issues
  })
)

const Attributes = Schema.compose(AttributeNames, Schema.Record({ key: Schema.String, value: Attribute }), { strict: false })

const Text = Schema.String.pipe(Schema.filter((s) => unstorable(s) ?? true))

const between = (min: number, max: number) => Schema.Number.pipe(Schema.between(min, max))

export const Position = Schema.Struct({
  device_id: Text.pipe(Schema.minLength(1), Schema.maxLength(64)),
  timestamp: Instant,
  latitude: between(-90, 90),
  longitude: between(-180, 180),
  altitude: Schema.Number.pipe(Schema.finite()),
  angle: between(0, 360),
  speed: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  satellites: Schema.Number.pipe(Schema.int(), Schema.between(0, 255)),
  priority: Schema.Number.pipe(Schema.int(), Schema.between(0, 2)),
  event_id: Schema.optionalWith(Schema.Number.pipe(Schema.int(), Schema.nonNegative()), { default: () => 0 }),
  attributes: Schema.optionalWith(Attributes, { default: () => ({}) })
})

export interface Position extends Schema.Schema.Type<typeof Position> {}

// Schema's messages quote the offending value whole (Inspectable), recursing as deep as it nests: a field
// nested thousands of levels deep overflows the stack while the error is formatted. The deepest a valid field
// nests is attributes → sentinel object; a field nested deeper is refused here, before the Struct sees it,
// with a message that quotes nothing. This changes no verdict (such a field is invalid anyway), only the message.
const FIELD_DEPTH: Readonly<Record<string, number>> = { attributes: 2 }
const FIELDS = ["device_id", "timestamp", "latitude", "longitude", "altitude", "angle", "speed", "satellites", "priority", "event_id", "attributes"]

/** True when `u` nests at most `levels` objects or arrays deep (a scalar: 0). Recursion stops at `levels`. */
const nestsWithin = (u: unknown, levels: number): boolean => {
  if (typeof u !== "object" || u === null) return true
  if (levels === 0) return false
  for (const key in u) if (!nestsWithin((u as Record<string, unknown>)[key], levels - 1)) return false
  return true
}

const kindOf = (u: unknown): string => (u === null ? "null" : Array.isArray(u) ? "an array" : typeof u)

const Shallow = Schema.Unknown.pipe(Schema.filter((u) => {
  if (!isPlainObject(u)) return `Expected a JSON object, actual ${kindOf(u)}`
  const issues: Array<Schema.FilterIssue> = []
  for (const field of FIELDS) {
    const levels = FIELD_DEPTH[field] ?? 0
    if (!nestsWithin(u[field], levels + 1)) {
      issues.push({ path: [field], message: `nested more than ${levels + 1} level${levels === 0 ? "" : "s"} deep (objects or arrays); a valid value nests at most ${levels}` })
    }
  }
  return issues.length === 0 ? true : issues
}))

/** The wire contract of a payload once JSON.parse has read it: Position, guarded so that messages stay short. */
export const Payload = Schema.compose(Shallow, Position, { strict: false })

const decodeWithSchema = Schema.decodeUnknownEither(Payload, { errors: "all" })

/** Longest message of one issue, path included: a reason is one short line, whatever came in. */
const ISSUE_LIMIT = 240

const PLAIN_SEGMENT = /^[A-Za-z0-9_$-]{1,40}$/

// Field names as they are; other attribute names quoted and cut (they may be long, or hold NULs).
const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.length === 0 ? "payload" : path.map((p) => {
    const text = String(p)
    return PLAIN_SEGMENT.test(text) ? text : JSON.stringify(text.length > 40 ? text.slice(0, 40) + "…" : text)
  }).join(".")

/** The Schema's verdict as one line naming each offending field (each issue cut to ISSUE_LIMIT), or the position. */
export const decodeStrict = (u: unknown): Either.Either<Position, string> =>
  Either.mapLeft(decodeWithSchema(u), (error) =>
    ParseResult.ArrayFormatter.formatErrorSync(error)
      // An optional field's union also reports "Expected undefined": noise next to the real reason.
      .filter((issue) => !issue.message.startsWith("Expected undefined"))
      .slice(0, 5)
      .map((issue) => {
        const line = `${pathText(issue.path)}: ${issue.message}`
        return line.length > ISSUE_LIMIT ? line.slice(0, ISSUE_LIMIT) + "…" : line
      })
      .join("; ")
  )
