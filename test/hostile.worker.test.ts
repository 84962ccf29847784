import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  countRows,
  forkWorker,
  groupLag,
  pendingCount,
  streamLength,
  testEnvironment,
  waitUntil
} from "./support/Integration.js"
import { position } from "./support/MemoryConsumer.js"

// Issue #9 items 1, 2 and 6, through a real worker on the real Redis and PostgreSQL: each reproducing entry is
// dead-lettered with its reason (one short line) while the worker carries on and the valid entries around it
// are stored. On the old code the first of them killed the worker (RangeError out of decodePayload).

const record = (deviceId: string, extra: Record<string, unknown> = {}) =>
  position(deviceId, "2026-05-01T10:00:00.000Z", { priority: 1, attributes: { "16": 123456 }, ...extra })

/** The record's JSON text with `raw` (JSON text) as the value of `field`. */
const withRaw = (deviceId: string, field: string, raw: string) =>
  JSON.stringify(record(deviceId, { [field]: "\u0001" })).replace("\"\\u0001\"", () => raw)

interface Hostile {
  readonly name: string
  readonly payload: string | Buffer
  readonly reason: "invalid" | "too_large"
  readonly error: RegExp
}

const MAX_PAYLOAD_BYTES = 500_000

// Device ids that differ only by one byte that is not UTF-8: ioredis' own decoding made them one device.
const notUtf8 = [0xff, 0xfe, 0xc0, 0x80].map((byte, i): Hostile => {
  const [head, tail] = JSON.stringify(record("35000000000003@", { event_id: i })).split("@") as [string, string]
  return {
    name: `device id with byte 0x${byte.toString(16)}`,
    payload: Buffer.concat([Buffer.from(head), Buffer.from([byte]), Buffer.from(tail)]),
    reason: "invalid",
    error: /^payload: not valid UTF-8/
  }
})

const hostile: ReadonlyArray<Hostile> = [
  {
    name: "an attribute nested 2,190 levels deep (4.5 KB)",
    payload: withRaw("hostile-1", "attributes", `{"x":${"[".repeat(2190)}${"]".repeat(2190)}}`),
    reason: "invalid",
    error: /^attributes: nested more than 3 levels deep/
  },
  {
    name: "200,000 nested arrays",
    payload: "[".repeat(200_000) + "]".repeat(200_000),
    reason: "invalid",
    error: /^payload: Expected a JSON object, actual an array$/
  },
  {
    name: "a payload above MAX_PAYLOAD_BYTES",
    payload: withRaw("hostile-2", "note", JSON.stringify("z".repeat(600_000))),
    reason: "too_large",
    error: /^payload: 600\d{3} bytes, more than MAX_PAYLOAD_BYTES=500000; not parsed$/
  },
  {
    name: "a 100,000-character device id",
    payload: JSON.stringify(record("x".repeat(100_000))),
    reason: "invalid",
    error: /^device_id: Expected a string at most 64 character\(s\) long, actual "x+…$/
  },
  {
    name: "a 100,000-character attribute name",
    payload: JSON.stringify(record("hostile-3", { attributes: { ["n".repeat(100_000)]: 1 } })),
    reason: "invalid",
    error: /^attributes\."n{40}…": the name is 100000 characters long, more than 64$/
  },
  {
    name: "a driver name padded with NULs",
    payload: JSON.stringify(record("hostile-4", { attributes: { driver: "JONAS\u0000\u0000" } })),
    reason: "invalid",
    error: /^attributes\.driver: contains U\+0000 at index 5/
  },
  {
    name: "a device id ending in a lone high surrogate",
    payload: JSON.stringify(record("350000000000021\ud800")),
    reason: "invalid",
    error: /^device_id: contains an unpaired surrogate U\+D800 at index 15/
  },
  {
    name: "the same device id ending in a lone low surrogate, same timestamp",
    payload: JSON.stringify(record("350000000000021\udc00")),
    reason: "invalid",
    error: /^device_id: contains an unpaired surrogate U\+DC00 at index 15/
  },
  ...notUtf8,
  {
    name: "a timestamp in 2080",
    payload: JSON.stringify(record("hostile-5", { timestamp: "2080-01-01T00:00:00.000Z" })),
    reason: "invalid",
    error: /^timestamp: 2080-01-01T00:00:00\.000Z is .* ahead of the time Redis accepted the entry \(.*\), more than MAX_FUTURE_SKEW=1d$/
  }
]

describe("hostile entries through a real worker", () => {
  it.scopedLive("dead-letters each with its reason, keeps running, and stores the valid entries around them", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      // A valid entry before each hostile one and one after the last.
      const ids = new Map<string, Hostile>()
      let valid = 0
      for (const h of hostile) {
        yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "payload", JSON.stringify(record(`valid-${valid++}`))))
        const id = yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "payload", h.payload))
        ids.set(id!, h)
      }
      yield* Effect.promise(() => t.redis.xadd(t.stream, "*", "payload", JSON.stringify(record(`valid-${valid++}`))))

      yield* forkWorker({ ...t.env, MAX_PAYLOAD_BYTES })
      yield* waitUntil(
        `${valid} rows, ${hostile.length} dead letters and nothing pending`,
        Effect.all([countRows(t.pool), streamLength(t.redis, t.dlq), pendingCount(t.redis, t.stream, t.group), groupLag(t.redis, t.stream, t.group)])
          .pipe(Effect.map(([rows, letters, pending, lag]) => rows === valid && letters === hostile.length && pending === 0 && lag === 0)),
        60_000
      )

      const stored = yield* Effect.promise(() => t.pool.query<{ device_id: string }>("SELECT device_id FROM positions ORDER BY device_id"))
      expect(stored.rows.map((r) => r.device_id).sort()).toStrictEqual(Array.from({ length: valid }, (_, i) => `valid-${i}`).sort())

      const letters = yield* Effect.promise(() => t.redis.xrangeBuffer(t.dlq, "-", "+"))
      expect(letters).toHaveLength(hostile.length)
      for (const [, raw] of letters) {
        const fields = new Map<string, Buffer>()
        for (let i = 0; i < raw.length; i += 2) fields.set(raw[i]!.toString(), raw[i + 1]!)
        const h = ids.get(fields.get("source_id")!.toString())!
        expect(h, fields.get("source_id")!.toString()).toBeDefined()
        const error = fields.get("error")!.toString()
        expect(fields.get("reason")!.toString(), h.name).toBe(h.reason)
        expect(error, h.name).toMatch(h.error)
        expect(error.length, h.name).toBeLessThanOrEqual(250)
        // The dead letter keeps the payload's bytes exactly as they came.
        expect(fields.get("payload")!.equals(Buffer.from(h.payload)), h.name).toBe(true)
      }
    }), 120_000)
})
