import { Either, ParseResult, Schema } from "effect"

// The wire contract of one stream entry's `payload` (the "sentinel decoder").
// This Schema is the specification; `decode.ts` has the fast path that is verified against it.

export type AttributeValue = number | string | boolean | bigint | Uint8Array

const DECIMAL = /^-?(?:0|[1-9][0-9]*)$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
// An instant: a calendar date, a time, and an explicit offset.
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d)(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/

export const ATTRIBUTE_EXPECTED =
  'Expected a finite number, a string, a boolean, {"__bigint":"<decimal integer>"} or {"__bytes":"<base64>"}'

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

/** Milliseconds since the epoch of an ISO-8601 instant, or NaN. Precision beyond the millisecond is dropped. */
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
    return value === undefined ? ParseResult.fail(new ParseResult.Type(ast, u, ATTRIBUTE_EXPECTED)) : ParseResult.succeed(value)
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
      ? ParseResult.fail(new ParseResult.Type(ast, s, `Expected an ISO-8601 instant such as 2026-05-01T10:00:00.000Z, actual ${JSON.stringify(s)}`))
      : ParseResult.succeed(new Date(ms))
  },
  encode: (d) => ParseResult.succeed(d.toISOString())
})

const WithoutForbiddenKey = Schema.Unknown.pipe(
  Schema.filter((u) => !(typeof u === "object" && u !== null && Object.hasOwn(u, FORBIDDEN_ATTRIBUTE)), {
    message: () => `the attribute name ${FORBIDDEN_ATTRIBUTE} is not allowed`
  })
)

const Attributes = Schema.compose(WithoutForbiddenKey, Schema.Record({ key: Schema.String, value: Attribute }), { strict: false })

const between = (min: number, max: number) => Schema.Number.pipe(Schema.between(min, max))

export const Position = Schema.Struct({
  device_id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)),
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

const decodeWithSchema = Schema.decodeUnknownEither(Position, { errors: "all" })

/** The Schema's verdict as one line naming each offending field, or the decoded position. */
export const decodeStrict = (u: unknown): Either.Either<Position, string> =>
  Either.mapLeft(decodeWithSchema(u), (error) =>
    ParseResult.ArrayFormatter.formatErrorSync(error)
      // An optional field's union also reports "Expected undefined": noise next to the real reason.
      .filter((issue) => !issue.message.startsWith("Expected undefined"))
      .slice(0, 5)
      .map((issue) => `${issue.path.length === 0 ? "payload" : issue.path.join(".")}: ${issue.message}`)
      .join("; ")
  )
