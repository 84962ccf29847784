export type Rng = () => number

export const mulberry32 = (seed: number): Rng => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export type AttributeValue =
  | number
  | string
  | boolean
  | { readonly __bigint: string }
  | { readonly __bytes: string }

// The JSON object carried in the stream entry's `payload` field.
export interface Position {
  readonly device_id: string
  readonly timestamp: string
  readonly latitude: number
  readonly longitude: number
  readonly altitude: number
  readonly angle: number
  readonly speed: number
  readonly satellites: number
  readonly priority: number
  readonly event_id: number
  readonly attributes: Readonly<Record<string, AttributeValue>>
}

// What the generator produces: one record in a flat, fixed shape. An attributes object keyed by IO ids ("16",
// "385") has integer keys, which V8 builds about ten times slower than named ones, so on the hot path that object
// exists only as JSON text (toPayload); toPosition builds it when a caller wants the object.
export interface Reading {
  readonly deviceId: string
  readonly timestampMs: number
  readonly latitude: number
  readonly longitude: number
  readonly altitude: number
  readonly angle: number
  readonly speed: number
  readonly satellites: number
  readonly priority: number
  readonly eventId: number
  readonly din1: boolean
  readonly odometer: number
  readonly gsmSignal: number
  readonly externalMv: number
  readonly batteryMv: number
  readonly ibutton: string
  readonly ignition: number
  readonly movement: number
  // Beacon bytes (IO 385), big-endian: bytes 0..3 in beaconHigh, 4..7 in beaconLow.
  readonly beaconHigh: number
  readonly beaconLow: number
  readonly beaconLength: number
  readonly dtc: string | undefined
  readonly vin: string | undefined
}

export interface FleetOptions {
  readonly devices: number
  readonly seed: number
  readonly start?: Date | undefined
  // Share of emitted records that are verbatim re-sends of an earlier record, in [0, 1).
  readonly duplicates?: number | undefined
  // Share of emitted records that arrive after a newer record of the same device, in [0, 1).
  readonly late?: number | undefined
}

export interface FleetStats {
  // Distinct records emitted, late ones included; duplicates are counted apart.
  positions: number
  late: number
  duplicates: number
}

export interface Device {
  readonly id: string
  readonly clockSkewMs: number
  readonly ibutton: string
  readonly vin: string
  lastMs: number
  latitude: number
  longitude: number
  heading: number
  speed: number
  altitude: number
  satellites: number
  odometer: number
  parkedTicks: number
  outageLeft: number
  readonly withheld: Array<Reading>
}

export interface Fleet {
  readonly rng: Rng
  readonly devices: ReadonlyArray<Device>
  readonly outageStart: number
  readonly duplicatesPerRecord: number
  readonly recent: Array<Reading>
  recentCount: number
  readonly stats: FleetStats
}

export const DEFAULT_START = new Date("2026-05-01T00:00:00.000Z")

const VILNIUS_LAT = 54.68
const VILNIUS_LON = 25.28
const MAX_SPEED = 120
const METERS_PER_DEGREE = 111_320
const RECENT_SIZE = 256
// Outages last 2..6 records, so a late burst replays 4 records on average.
const MIN_OUTAGE = 2
const MAX_OUTAGE = 6
const MEAN_OUTAGE = (MIN_OUTAGE + MAX_OUTAGE) / 2
const TWO_POW_53 = 2n ** 53n
const EVENT_IDS = [239, 240, 247, 250, 252, 253] as const
const DTC_CODES = ["P0300", "P0171", "P0420", "P0128", "U0100"] as const
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

const checkShare = (name: string, share: number): number => {
  if (!(share >= 0 && share < 1)) throw new RangeError(`${name} must be in [0, 1), got ${share}`)
  return share
}

const luhnDigit = (digits: string): number => {
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(i) - 48
    // Doubling starts at the digit next to where the check digit goes.
    if ((digits.length - i) % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return (10 - (sum % 10)) % 10
}

// 8-digit TAC + 6-digit serial + Luhn digit; 7919 is coprime with 10^6, so serials never repeat within a TAC.
export const imei = (serialOffset: number, index: number): string => {
  const tac = 35630704 + Math.floor(index / 1_000_000)
  const serial = (serialOffset + index * 7919) % 1_000_000
  const body = `${tac}${serial.toString().padStart(6, "0")}`
  return `${body}${luhnDigit(body)}`
}

export const isValidImei = (id: string): boolean =>
  /^\d{15}$/.test(id) && luhnDigit(id.slice(0, 14)) === id.charCodeAt(14) - 48

const randomInt = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1))

const randomUint32 = (rng: Rng): number => Math.floor(rng() * 4294967296)

const randomUint64AboveDoubles = (rng: Rng): string => {
  const value = (BigInt(randomInt(rng, 2 ** 21, 2 ** 32 - 1)) << 32n) | BigInt(randomUint32(rng))
  return (value < TWO_POW_53 ? value + TWO_POW_53 : value).toString()
}

const makeDevice = (rng: Rng, serialOffset: number, index: number, startMs: number): Device => ({
  id: imei(serialOffset, index),
  clockSkewMs: Math.floor(rng() * 250),
  // Device 0 carries the largest uint64 so that edge case is always in the data.
  ibutton: index === 0 ? "18446744073709551615" : randomUint64AboveDoubles(rng),
  vin: `WVWZZZ1KZ8W${Math.floor(rng() * 1_000_000).toString().padStart(6, "0")}`,
  lastMs: startMs - 1,
  latitude: VILNIUS_LAT + (rng() - 0.5) * 0.3,
  longitude: VILNIUS_LON + (rng() - 0.5) * 0.5,
  heading: rng() * 360,
  speed: rng() * 90,
  altitude: 100 + rng() * 100,
  satellites: randomInt(rng, 6, 16),
  odometer: randomInt(rng, 0, 400_000_000),
  parkedTicks: 0,
  outageLeft: 0,
  withheld: []
})

export const makeFleet = (options: FleetOptions): Fleet => {
  if (!Number.isSafeInteger(options.devices) || options.devices < 1) {
    throw new RangeError(`devices must be a positive integer, got ${options.devices}`)
  }
  const late = checkShare("late", options.late ?? 0)
  const duplicates = checkShare("duplicates", options.duplicates ?? 0)
  const rng = mulberry32(options.seed)
  const startMs = (options.start ?? DEFAULT_START).getTime()
  const serialOffset = Math.floor(rng() * 1_000_000)
  const devices = new Array<Device>(options.devices)
  for (let i = 0; i < options.devices; i++) devices[i] = makeDevice(rng, serialOffset, i, startMs)
  return {
    rng,
    devices,
    // With outage probability p per in-order record and mean outage length L, the withheld (late) share is
    // pL / (1 - p + pL) in the long run; solved for p that gives the requested share.
    outageStart: late / (MEAN_OUTAGE * (1 - late) + late),
    duplicatesPerRecord: duplicates / (1 - duplicates),
    recent: new Array<Reading>(RECENT_SIZE),
    recentCount: 0,
    stats: { positions: 0, late: 0, duplicates: 0 }
  }
}

const clamp = (x: number, min: number, max: number): number => (x < min ? min : x > max ? max : x)

const move = (rng: Rng, device: Device, dtSeconds: number): void => {
  if (device.parkedTicks > 0) {
    device.parkedTicks--
    device.speed = 0
  } else if (rng() < 0.002) {
    device.parkedTicks = randomInt(rng, 10, 100)
    device.speed = 0
  } else {
    device.speed = clamp(device.speed + (rng() - 0.45) * 8, 0, MAX_SPEED)
    device.heading = (device.heading + (rng() - 0.5) * 20 + 360) % 360
  }
  const meters = (device.speed / 3.6) * dtSeconds
  if (meters > 0) {
    const radians = (device.heading * Math.PI) / 180
    device.latitude = clamp(device.latitude + (meters * Math.cos(radians)) / METERS_PER_DEGREE, -89.9, 89.9)
    const lon = device.longitude +
      (meters * Math.sin(radians)) / (METERS_PER_DEGREE * Math.cos((device.latitude * Math.PI) / 180))
    device.longitude = lon > 180 ? lon - 360 : lon < -180 ? lon + 360 : lon
    device.odometer += Math.round(meters)
  }
  device.altitude = clamp(device.altitude + (rng() - 0.5) * 2, 50, 400)
  if (rng() < 0.05) device.satellites = clamp(device.satellites + (rng() < 0.5 ? -1 : 1), 4, 20)
}

const advance = (rng: Rng, device: Device, nowMs: number): Reading => {
  const ms = Math.max(Math.floor(nowMs) - device.clockSkewMs, device.lastMs + 1)
  // A long pause (or the first record after a distant start) must not teleport the device.
  move(rng, device, Math.min(ms - device.lastMs, 60_000) / 1000)
  device.lastMs = ms
  const roll = rng()
  const priority = roll < 0.9 ? 0 : roll < 0.99 ? 1 : 2
  const running = device.parkedTicks === 0
  return {
    deviceId: device.id,
    timestampMs: ms,
    latitude: Math.round(device.latitude * 1e7) / 1e7,
    longitude: Math.round(device.longitude * 1e7) / 1e7,
    altitude: Math.round(device.altitude),
    angle: Math.round(device.heading) % 360,
    speed: Math.round(device.speed * 10) / 10,
    satellites: device.satellites,
    priority,
    eventId: priority === 0 ? 0 : EVENT_IDS[Math.floor(rng() * EVENT_IDS.length)]!,
    din1: running,
    odometer: device.odometer,
    gsmSignal: randomInt(rng, 1, 5),
    externalMv: randomInt(rng, 12_000, 14_400),
    batteryMv: randomInt(rng, 3_900, 4_100),
    ibutton: device.ibutton,
    ignition: running ? 1 : 0,
    movement: device.speed > 0 ? 1 : 0,
    beaconHigh: randomUint32(rng),
    beaconLow: randomUint32(rng),
    beaconLength: randomInt(rng, 3, 8),
    dtc: rng() < 0.05 ? DTC_CODES[Math.floor(rng() * DTC_CODES.length)]! : undefined,
    vin: rng() < 0.01 ? device.vin : undefined
  }
}

// One fresh record per device, strictly later than that device's previous one; no duplicates, no late bursts.
export const nextPositions = (fleet: Fleet, nowMs: number): Array<Reading> => {
  const out = new Array<Reading>(fleet.devices.length)
  for (let i = 0; i < fleet.devices.length; i++) out[i] = advance(fleet.rng, fleet.devices[i]!, nowMs)
  return out
}

const pushWithDuplicates = (fleet: Fleet, out: Array<Reading>, reading: Reading): void => {
  out.push(reading)
  fleet.stats.positions++
  fleet.recent[fleet.recentCount % RECENT_SIZE] = reading
  fleet.recentCount++
  const pool = Math.min(fleet.recentCount, RECENT_SIZE)
  for (let n = fleet.duplicatesPerRecord; n > 0; n--) {
    if (n < 1 && fleet.rng() >= n) break
    // A resend repeats one of the recent records, as a tracker does when its ACK was lost.
    out.push(fleet.recent[Math.floor(fleet.rng() * pool)]!)
    fleet.stats.duplicates++
  }
}

// Advances `count` devices round-robin from index `from` (wrapping) by one record each and returns what reaches
// the wire. During an outage a device holds its records back and sends them right after its next live record,
// oldest first, as trackers send live data before backfilling; duplicates follow the records they repeat.
export const emit = (fleet: Fleet, nowMs: number, from = 0, count = fleet.devices.length): Array<Reading> => {
  const { devices, rng } = fleet
  const out: Array<Reading> = []
  for (let k = 0; k < count; k++) {
    const device = devices[(from + k) % devices.length]!
    const reading = advance(rng, device, nowMs)
    if (device.outageLeft > 0) {
      device.outageLeft--
      device.withheld.push(reading)
      continue
    }
    if (fleet.outageStart > 0 && rng() < fleet.outageStart) {
      device.outageLeft = randomInt(rng, MIN_OUTAGE, MAX_OUTAGE) - 1
      device.withheld.push(reading)
      continue
    }
    pushWithDuplicates(fleet, out, reading)
    if (device.withheld.length > 0) {
      fleet.stats.late += device.withheld.length
      for (const buffered of device.withheld) pushWithDuplicates(fleet, out, buffered)
      device.withheld.length = 0
    }
  }
  return out
}

// What devices still hold back at the end of a run; nothing newer was sent, so these records are in order.
export const drain = (fleet: Fleet): Array<Reading> => {
  const out: Array<Reading> = []
  for (const device of fleet.devices) {
    for (const buffered of device.withheld) pushWithDuplicates(fleet, out, buffered)
    device.withheld.length = 0
    device.outageLeft = 0
  }
  return out
}

const beaconByte = (r: Reading, i: number): number =>
  i < 4 ? (r.beaconHigh >>> (24 - 8 * i)) & 255 : (r.beaconLow >>> (56 - 8 * i)) & 255

export const beaconBase64 = (r: Reading): string => {
  let out = ""
  for (let i = 0; i < r.beaconLength; i += 3) {
    const rest = r.beaconLength - i
    const n = (beaconByte(r, i) << 16) | (rest > 1 ? beaconByte(r, i + 1) << 8 : 0) | (rest > 2 ? beaconByte(r, i + 2) : 0)
    out += B64[n >>> 18]! + B64[(n >>> 12) & 63]! + (rest > 1 ? B64[(n >>> 6) & 63]! : "=") + (rest > 2 ? B64[n & 63]! : "=")
  }
  return out
}

export const isoTimestamp = (ms: number): string => new Date(ms).toISOString()

export const toPosition = (r: Reading): Position => {
  const attributes: Record<string, AttributeValue> = {
    "1": r.din1,
    "16": r.odometer,
    "21": r.gsmSignal,
    "66": r.externalMv,
    "67": r.batteryMv,
    "78": { __bigint: r.ibutton },
    "239": r.ignition,
    "240": r.movement,
    "385": { __bytes: beaconBase64(r) }
  }
  if (r.vin !== undefined) attributes["256"] = r.vin
  if (r.dtc !== undefined) attributes["281"] = r.dtc
  return {
    device_id: r.deviceId,
    timestamp: isoTimestamp(r.timestampMs),
    latitude: r.latitude,
    longitude: r.longitude,
    altitude: r.altitude,
    angle: r.angle,
    speed: r.speed,
    satellites: r.satellites,
    priority: r.priority,
    event_id: r.eventId,
    attributes
  }
}

// toPayload writes JSON bytes into one scratch buffer and decodes it once: the result is the same text as
// JSON.stringify(toPosition(r)) (the tests hold it to that), at a third of the cost and as one flat string,
// where concatenating ~40 pieces would keep a rope of them alive per payload.
const scratch = Buffer.allocUnsafe(4096)
let at = 0
const B64_CODES = Uint8Array.from(B64, (c) => c.charCodeAt(0))
const MAX_FREE_STRING = 256

const bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))
const K = {
  deviceId: bytes(`{"device_id":"`),
  timestamp: bytes(`","timestamp":"`),
  latitude: bytes(`","latitude":`),
  longitude: bytes(`,"longitude":`),
  altitude: bytes(`,"altitude":`),
  angle: bytes(`,"angle":`),
  speed: bytes(`,"speed":`),
  satellites: bytes(`,"satellites":`),
  priority: bytes(`,"priority":`),
  eventId: bytes(`,"event_id":`),
  din1: bytes(`,"attributes":{"1":`),
  odometer: bytes(`,"16":`),
  gsm: bytes(`,"21":`),
  external: bytes(`,"66":`),
  battery: bytes(`,"67":`),
  ibutton: bytes(`,"78":{"__bigint":"`),
  ignition: bytes(`"},"239":`),
  movement: bytes(`,"240":`),
  vin: bytes(`,"256":"`),
  dtc: bytes(`,"281":"`),
  beacon: bytes(`,"385":{"__bytes":"`),
  end: bytes(`"}}}`),
  quote: bytes(`"`),
  true: bytes("true"),
  false: bytes("false")
}

const putBytes = (b: Uint8Array): void => {
  for (let i = 0; i < b.length; i++) scratch[at++] = b[i]!
}

const putAscii = (s: string): void => {
  for (let i = 0; i < s.length; i++) scratch[at++] = s.charCodeAt(i)
}

const digitCount = (n: number): number => {
  let digits = 1
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++
  return digits
}

const putUint = (n: number): void => {
  const end = at + digitCount(n)
  for (let i = end - 1, x = n; i >= at; i--) {
    const q = Math.floor(x / 10)
    scratch[i] = 48 + x - q * 10
    x = q
  }
  at = end
}

// For x = k / 10^decimals (how the generator rounds), the shortest round-trip form JSON uses is that decimal with
// trailing zeros dropped, except below 1e-6, where JSON switches to exponent notation.
const putDecimal = (x: number, decimals: number, unit: number): void => {
  let scaled = Math.round(x * unit)
  if (scaled < 0) {
    scratch[at++] = 45
    scaled = -scaled
  }
  const whole = Math.floor(scaled / unit)
  let fraction = scaled - whole * unit
  if (whole === 0 && fraction !== 0 && fraction * 1e6 < unit) {
    at -= x < 0 ? 1 : 0
    putAscii(String(x))
    return
  }
  putUint(whole)
  if (fraction === 0) return
  scratch[at++] = 46
  let width = decimals
  while (fraction % 10 === 0) {
    fraction /= 10
    width--
  }
  for (let zeros = width - digitCount(fraction); zeros > 0; zeros--) scratch[at++] = 48
  putUint(fraction)
}

const putTwoDigits = (n: number): void => {
  scratch[at++] = 48 + Math.floor(n / 10)
  scratch[at++] = 48 + (n % 10)
}

// Records of one tick share their minute, so Date formatting runs about once per simulated minute.
let cachedMinute = Number.NaN
let cachedMinutePrefix = ""

const putTimestamp = (ms: number): void => {
  const minute = Math.floor(ms / 60_000)
  if (minute !== cachedMinute) {
    cachedMinute = minute
    cachedMinutePrefix = isoTimestamp(minute * 60_000).slice(0, -7)
  }
  putAscii(cachedMinutePrefix)
  const rest = ms - minute * 60_000
  const seconds = Math.floor(rest / 1000)
  const millis = rest - seconds * 1000
  putTwoDigits(seconds)
  scratch[at++] = 46
  scratch[at++] = 48 + Math.floor(millis / 100)
  putTwoDigits(millis % 100)
  scratch[at++] = 90
}

const putBeacon = (r: Reading): void => {
  for (let i = 0; i < r.beaconLength; i += 3) {
    const rest = r.beaconLength - i
    const n = (beaconByte(r, i) << 16) | (rest > 1 ? beaconByte(r, i + 1) << 8 : 0) | (rest > 2 ? beaconByte(r, i + 2) : 0)
    scratch[at++] = B64_CODES[n >>> 18]!
    scratch[at++] = B64_CODES[(n >>> 12) & 63]!
    scratch[at++] = rest > 1 ? B64_CODES[(n >>> 6) & 63]! : 61
    scratch[at++] = rest > 2 ? B64_CODES[n & 63]! : 61
  }
}

// Printable ASCII without quote or backslash: written as is, no escaping needed.
const isPlain = (s: string | undefined): boolean => {
  if (s === undefined) return true
  if (s.length > MAX_FREE_STRING) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 32 || c > 126 || c === 34 || c === 92) return false
  }
  return true
}

const isUint = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

const isScaled = (x: number, unit: number): boolean => Math.abs(x) < 1e8 && Math.round(x * unit) / unit === x

// Readings from this generator always qualify; anything else is left to JSON.stringify.
const isFastPath = (r: Reading): boolean =>
  isUint(r.timestampMs) && r.timestampMs < 253402300800000 && isPlain(r.deviceId) && isPlain(r.ibutton) &&
  isPlain(r.vin) && isPlain(r.dtc) && isScaled(r.latitude, 1e7) && isScaled(r.longitude, 1e7) &&
  isScaled(r.speed, 10) && isUint(r.altitude) && isUint(r.angle) && isUint(r.satellites) && isUint(r.priority) &&
  isUint(r.eventId) && isUint(r.odometer) && isUint(r.gsmSignal) && isUint(r.externalMv) && isUint(r.batteryMv) &&
  isUint(r.ignition) && isUint(r.movement) && isUint(r.beaconLength) && r.beaconLength <= 8

export const toPayload = (r: Reading): string => {
  if (!isFastPath(r)) return JSON.stringify(toPosition(r))
  at = 0
  putBytes(K.deviceId)
  putAscii(r.deviceId)
  putBytes(K.timestamp)
  putTimestamp(r.timestampMs)
  putBytes(K.latitude)
  putDecimal(r.latitude, 7, 1e7)
  putBytes(K.longitude)
  putDecimal(r.longitude, 7, 1e7)
  putBytes(K.altitude)
  putUint(r.altitude)
  putBytes(K.angle)
  putUint(r.angle)
  putBytes(K.speed)
  putDecimal(r.speed, 1, 10)
  putBytes(K.satellites)
  putUint(r.satellites)
  putBytes(K.priority)
  putUint(r.priority)
  putBytes(K.eventId)
  putUint(r.eventId)
  putBytes(K.din1)
  putBytes(r.din1 ? K.true : K.false)
  putBytes(K.odometer)
  putUint(r.odometer)
  putBytes(K.gsm)
  putUint(r.gsmSignal)
  putBytes(K.external)
  putUint(r.externalMv)
  putBytes(K.battery)
  putUint(r.batteryMv)
  putBytes(K.ibutton)
  putAscii(r.ibutton)
  putBytes(K.ignition)
  putUint(r.ignition)
  putBytes(K.movement)
  putUint(r.movement)
  if (r.vin !== undefined) {
    putBytes(K.vin)
    putAscii(r.vin)
    putBytes(K.quote)
  }
  if (r.dtc !== undefined) {
    putBytes(K.dtc)
    putAscii(r.dtc)
    putBytes(K.quote)
  }
  putBytes(K.beacon)
  putBeacon(r)
  putBytes(K.end)
  return scratch.toString("latin1", 0, at)
}

export interface PayloadsOptions extends FleetOptions {
  readonly count: number
  // Records per second per device, in simulated time.
  readonly rateHz?: number | undefined
}

// Exactly `count` payloads from a fleet ticking in simulated time: the benchmark's input.
export const generatePayloads = (options: PayloadsOptions): Array<string> => {
  const fleet = makeFleet(options)
  const stepMs = 1000 / (options.rateHz ?? 1)
  const out: Array<string> = []
  let nowMs = (options.start ?? DEFAULT_START).getTime()
  while (out.length < options.count) {
    for (const reading of emit(fleet, nowMs)) {
      if (out.length === options.count) break
      out.push(toPayload(reading))
    }
    nowMs += stepMs
  }
  return out
}
