import { describe, expect, it } from "@effect/vitest"
import type { Reading } from "../src/simulate/Device.js"
import { drain, emit, makeFleet, nextPositions } from "../src/simulate/Fleet.js"
import { generatePayloads } from "../src/simulate/Generator.js"
import { imei, isValidImei } from "../src/simulate/Imei.js"
import { makePayloadEncoder, toWirePosition } from "../src/simulate/Payload.js"

const toPayload = makePayloadEncoder()
const START = new Date("2026-05-01T10:00:00.000Z")
const TWO_POW_53 = 2n ** 53n
const UINT64_MAX = 2n ** 64n - 1n
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const BASE64_PADDED = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const FIELDS = [
  "altitude",
  "angle",
  "attributes",
  "device_id",
  "event_id",
  "latitude",
  "longitude",
  "priority",
  "satellites",
  "speed",
  "timestamp"
]

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)
const isNumber = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)
const isInt = (u: unknown, min: number, max: number): boolean =>
  Number.isInteger(u) && (u as number) >= min && (u as number) <= max

// The rules the processor will enforce, checked by hand rather than with the processor's own decoder.
const violations = (text: string): Array<string> => {
  const problems: Array<string> = []
  const p: unknown = JSON.parse(text)
  if (!isObject(p)) return ["not an object"]
  const keys = Object.keys(p).sort()
  if (keys.join() !== FIELDS.join()) problems.push(`fields ${keys.join()}`)
  const id = p["device_id"]
  if (typeof id !== "string" || id.length === 0 || id.length > 64) problems.push("device_id")
  const ts = p["timestamp"]
  if (typeof ts !== "string" || !ISO_MS.test(ts) || new Date(ts).toISOString() !== ts) problems.push("timestamp")
  const lat = p["latitude"]
  if (!isNumber(lat) || lat < -90 || lat > 90) problems.push("latitude")
  const lon = p["longitude"]
  if (!isNumber(lon) || lon < -180 || lon > 180) problems.push("longitude")
  if (!isNumber(p["altitude"])) problems.push("altitude")
  const angle = p["angle"]
  if (!isNumber(angle) || angle < 0 || angle > 360) problems.push("angle")
  const speed = p["speed"]
  if (!isNumber(speed) || speed < 0) problems.push("speed")
  if (!isInt(p["satellites"], 0, 255)) problems.push("satellites")
  if (!isInt(p["priority"], 0, 2)) problems.push("priority")
  if (!isInt(p["event_id"], 0, Number.MAX_SAFE_INTEGER)) problems.push("event_id")
  const attributes = p["attributes"]
  if (!isObject(attributes)) return [...problems, "attributes"]
  let bigints = 0
  let byteStrings = 0
  let booleans = 0
  for (const [key, value] of Object.entries(attributes)) {
    if (!/^\d+$/.test(key)) problems.push(`attribute key ${key}`)
    if (isNumber(value) || typeof value === "string") continue
    if (typeof value === "boolean") {
      booleans++
    } else if (isObject(value) && Object.keys(value).join() === "__bigint") {
      const decimal = value["__bigint"]
      if (typeof decimal !== "string" || !/^\d+$/.test(decimal)) problems.push(`${key} __bigint`)
      else if (BigInt(decimal) <= TWO_POW_53 || BigInt(decimal) > UINT64_MAX) problems.push(`${key} bigint range`)
      bigints++
    } else if (isObject(value) && Object.keys(value).join() === "__bytes") {
      const base64 = value["__bytes"]
      if (typeof base64 !== "string" || !BASE64_PADDED.test(base64)) {
        problems.push(`${key} __bytes`)
      } else {
        const decoded = Buffer.from(base64, "base64")
        if (decoded.toString("base64") !== base64 || decoded.length < 3 || decoded.length > 8) {
          problems.push(`${key} bytes length ${decoded.length}`)
        }
      }
      byteStrings++
    } else {
      problems.push(`attribute ${key} = ${JSON.stringify(value)}`)
    }
  }
  if (bigints !== 1) problems.push(`${bigints} bigints`)
  if (byteStrings !== 1) problems.push(`${byteStrings} byte strings`)
  if (booleans < 1) problems.push("no boolean")
  return problems
}

interface Arrival {
  readonly device: string
  readonly ms: number
  readonly text: string
}

const arrival = (text: string): Arrival => {
  const p = JSON.parse(text) as { device_id: string; timestamp: string }
  return { device: p.device_id, ms: Date.parse(p.timestamp), text }
}

// Sorts the stream into what the processor will see: repeats of earlier text, records older than the device's
// newest, and in-order records; fails on two different records for one device and instant.
const classify = (texts: ReadonlyArray<string>) => {
  const seen = new Set<string>()
  const newest = new Map<string, number>()
  const instants = new Set<string>()
  const kinds: Array<"fresh" | "late" | "duplicate"> = []
  const clashes: Array<string> = []
  for (const text of texts) {
    if (seen.has(text)) {
      kinds.push("duplicate")
      continue
    }
    seen.add(text)
    const { device, ms } = arrival(text)
    const instant = `${device}@${ms}`
    if (instants.has(instant)) clashes.push(instant)
    instants.add(instant)
    const previous = newest.get(device) ?? Number.NEGATIVE_INFINITY
    if (ms < previous) {
      kinds.push("late")
    } else {
      newest.set(device, ms)
      kinds.push("fresh")
    }
  }
  const count = (kind: string) => kinds.filter((k) => k === kind).length
  return { kinds, clashes, fresh: count("fresh"), late: count("late"), duplicates: count("duplicate") }
}

const run = (options: { devices: number; seed: number; duplicates?: number; late?: number }, ticks: number) => {
  const fleet = makeFleet({ ...options, start: START })
  const texts: Array<string> = []
  for (let tick = 0; tick < ticks; tick++) {
    for (const reading of emit(fleet, START.getTime() + tick * 1000)) texts.push(toPayload(reading))
  }
  return { fleet, texts }
}

describe("Generator", () => {
  it("is deterministic for a seed", () => {
    const options = { devices: 50, seed: 42, count: 5_000, duplicates: 0.05, late: 0.1, start: START }
    const first = generatePayloads(options)
    expect(generatePayloads(options)).toEqual(first)
    expect(generatePayloads({ ...options, seed: 43 })).not.toEqual(first)
    expect(first).toHaveLength(5_000)
  })

  it("gives devices distinct, Luhn-valid 15-digit IMEIs", () => {
    const ids = makeFleet({ devices: 5_000, seed: 7 }).devices.map((d) => d.id)
    expect(ids.every(isValidImei)).toBe(true)
    expect(new Set(ids).size).toBe(5_000)
    expect(makeFleet({ devices: 5_000, seed: 7 }).devices.map((d) => d.id)).toEqual(ids)
    expect(isValidImei("356307042441013")).toBe(true)
    expect(isValidImei("356307042441014")).toBe(false)
    expect(imei(999_999, 1_000_000)).not.toBe(imei(999_999, 0))
    expect(isValidImei(imei(999_999, 1_000_000))).toBe(true)
  })

  it("produces payloads that satisfy every rule", () => {
    const texts = generatePayloads({ devices: 200, seed: 3, count: 50_000, duplicates: 0.02, late: 0.05, start: START })
    const bad = texts.map((text, i) => ({ i, problems: violations(text) })).filter((r) => r.problems.length > 0)
    expect(bad.slice(0, 5)).toEqual([])
    const positions = texts.map((text) => JSON.parse(text) as { attributes: Record<string, unknown> })
    const withString = positions.filter((p) => Object.values(p.attributes).some((v) => typeof v === "string"))
    expect(withString.length).toBeGreaterThan(0)
    expect(withString.length).toBeLessThan(texts.length / 2)
    expect(texts.some((t) => t.includes(`"__bigint":"18446744073709551615"`))).toBe(true)
  })

  it("writes the same text as JSON.stringify", () => {
    const { fleet, texts } = run({ devices: 100, seed: 11, duplicates: 0.01, late: 0.05 }, 300)
    expect(texts.length).toBeGreaterThan(29_000)
    const fresh = nextPositions(fleet, START.getTime() + 400_000)
    const mismatches = fresh.filter((r) => toPayload(r) !== JSON.stringify(toWirePosition(r)))
    expect(mismatches).toEqual([])
    const base = fresh[0]!
    const odd: Array<Reading> = [
      { ...base, latitude: -33.8688, longitude: -151.2093, speed: 0, altitude: 0 },
      { ...base, latitude: 3e-7, longitude: -1e-7, speed: 0.1 },
      { ...base, latitude: -0.0000123, longitude: 179.9999999, speed: 120 },
      { ...base, deviceId: `dev "1" \\ ünï`, dtc: "line\nbreak", vin: "WVW" },
      { ...base, latitude: 54.123456789, altitude: -12.5, beaconLength: 3 },
      { ...base, timestampMs: Date.parse("1999-12-31T23:59:59.999Z"), beaconLength: 4 }
    ]
    for (const reading of odd) {
      expect(toPayload(reading)).toBe(JSON.stringify(toWirePosition(reading)))
    }
  })

  it("encoders keep no shared state: two used in turn across minutes write what JSON.stringify writes", () => {
    const fleet = makeFleet({ devices: 3, seed: 17, start: START })
    const [a, b] = [makePayloadEncoder(), makePayloadEncoder()]
    const texts: Array<[string, string]> = []
    for (const offset of [0, 61_000, 3_600_000, 59_999, 86_400_000]) {
      for (const [i, reading] of nextPositions(fleet, START.getTime() + offset).entries()) {
        texts.push([(i % 2 === 0 ? a : b)(reading), JSON.stringify(toWirePosition(reading))])
      }
    }
    expect(texts.filter(([fast, slow]) => fast !== slow)).toEqual([])
  })

  it("keeps each device's timestamps strictly increasing without noise", () => {
    const fleet = makeFleet({ devices: 20, seed: 5, start: START })
    const texts: Array<string> = []
    // The same instant twice: timestamps must still move forward.
    for (const nowMs of [0, 1000, 1000, 1001, 5000]) {
      for (const reading of nextPositions(fleet, START.getTime() + nowMs)) texts.push(toPayload(reading))
    }
    const result = classify(texts)
    expect(result).toMatchObject({ fresh: 100, late: 0, duplicates: 0, clashes: [] })
    const { texts: emitted } = run({ devices: 50, seed: 5 }, 200)
    expect(classify(emitted)).toMatchObject({ fresh: 10_000, late: 0, duplicates: 0, clashes: [] })
  })

  it("is out of order only in the late bursts and repeats only as duplicates, at the requested shares", () => {
    const { fleet, texts } = run({ devices: 500, seed: 9, duplicates: 0.05, late: 0.1 }, 400)
    const result = classify(texts)
    expect(result.clashes).toEqual([])
    expect(result.duplicates).toBe(fleet.stats.duplicates)
    expect(result.late).toBe(fleet.stats.late)
    expect(result.fresh + result.late).toBe(fleet.stats.positions)
    expect(result.duplicates / texts.length).toBeGreaterThan(0.045)
    expect(result.duplicates / texts.length).toBeLessThan(0.055)
    expect(result.late / texts.length).toBeGreaterThan(0.085)
    expect(result.late / texts.length).toBeLessThan(0.115)

    // Bursts: consecutive late records from one device, oldest first.
    const nonDuplicates = texts.filter((_, i) => result.kinds[i] !== "duplicate").map(arrival)
    const lateKinds = result.kinds.filter((k) => k !== "duplicate")
    let longest = 0
    let run_ = 0
    for (let i = 1; i < nonDuplicates.length; i++) {
      const sameBurst = lateKinds[i] === "late" && lateKinds[i - 1] === "late" &&
        nonDuplicates[i]!.device === nonDuplicates[i - 1]!.device
      if (sameBurst) expect(nonDuplicates[i]!.ms).toBeGreaterThan(nonDuplicates[i - 1]!.ms)
      run_ = sameBurst ? run_ + 1 : lateKinds[i] === "late" ? 1 : 0
      longest = Math.max(longest, run_)
    }
    expect(longest).toBeGreaterThanOrEqual(3)
  })

  it("respects a small duplicate share", () => {
    const texts = generatePayloads({ devices: 1_000, seed: 21, count: 200_000, duplicates: 0.01, start: START })
    const { duplicates, late, clashes } = classify(texts)
    expect(clashes).toEqual([])
    expect(late).toBe(0)
    expect(duplicates).toBeGreaterThan(1_700)
    expect(duplicates).toBeLessThan(2_300)
  })

  it("loses nothing: drain sends what devices still hold back", () => {
    const { fleet, texts } = run({ devices: 30, seed: 13, late: 0.3 }, 100)
    expect(fleet.devices.some((d) => d.withheld.length > 0)).toBe(true)
    const all = [...texts, ...drain(fleet).map(toPayload)]
    expect(fleet.devices.every((d) => d.withheld.length === 0)).toBe(true)
    const { fresh, late, duplicates, clashes } = classify(all)
    expect({ records: fresh + late, duplicates, clashes }).toEqual({ records: 3_000, duplicates: 0, clashes: [] })
  })

  it("advances a round-robin range of devices", () => {
    const fleet = makeFleet({ devices: 10, seed: 1, start: START })
    const ids = fleet.devices.map((d) => d.id)
    const batch = emit(fleet, START.getTime(), 8, 5)
    expect(batch.map((r) => r.deviceId)).toEqual([ids[8], ids[9], ids[0], ids[1], ids[2]])
  })

  it("rejects shares outside [0, 1) and empty fleets", () => {
    expect(() => makeFleet({ devices: 1, seed: 1, late: 1 })).toThrow(RangeError)
    expect(() => makeFleet({ devices: 1, seed: 1, duplicates: -0.1 })).toThrow(RangeError)
    expect(() => makeFleet({ devices: 0, seed: 1 })).toThrow(RangeError)
  })
})
