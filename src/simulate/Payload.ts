import type { Reading } from "./Device.js"

// A Reading as the processor receives it: the WirePosition object and its JSON text (the stream entry's `payload`).

export type AttributeValue =
  | number
  | string
  | boolean
  | { readonly __bigint: string }
  | { readonly __bytes: string }

// The JSON object carried in the stream entry's `payload` field, as the generator writes it (the contract it
// follows is src/position/Position.ts; its decoded form is that file's Position).
export interface WirePosition {
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

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

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

export const toWirePosition = (r: Reading): WirePosition => {
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

const digitCount = (n: number): number => {
  let digits = 1
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++
  return digits
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

// The writer puts JSON bytes into its own scratch buffer and decodes them once: the result is the same text as
// JSON.stringify(toWirePosition(r)) (the tests hold it to that), at a third of the cost and as one flat string,
// where concatenating ~40 pieces would keep a rope of them alive per payload.
class PayloadWriter {
  private readonly buf = Buffer.allocUnsafe(4096)
  private at = 0
  // Records of one tick share their minute, so Date formatting runs about once per simulated minute.
  private cachedMinute = Number.NaN
  private cachedMinutePrefix = ""

  private putBytes(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) this.buf[this.at++] = b[i]!
  }

  private putAscii(s: string): void {
    for (let i = 0; i < s.length; i++) this.buf[this.at++] = s.charCodeAt(i)
  }

  private putUint(n: number): void {
    const end = this.at + digitCount(n)
    for (let i = end - 1, x = n; i >= this.at; i--) {
      const q = Math.floor(x / 10)
      this.buf[i] = 48 + x - q * 10
      x = q
    }
    this.at = end
  }

  // For x = k / 10^decimals (how the generator rounds), the shortest round-trip form JSON uses is that decimal with
  // trailing zeros dropped, except below 1e-6, where JSON switches to exponent notation.
  private putDecimal(x: number, decimals: number, unit: number): void {
    let scaled = Math.round(x * unit)
    if (scaled < 0) {
      this.buf[this.at++] = 45
      scaled = -scaled
    }
    const whole = Math.floor(scaled / unit)
    let fraction = scaled - whole * unit
    if (whole === 0 && fraction !== 0 && fraction * 1e6 < unit) {
      this.at -= x < 0 ? 1 : 0
      this.putAscii(String(x))
      return
    }
    this.putUint(whole)
    if (fraction === 0) return
    this.buf[this.at++] = 46
    let width = decimals
    while (fraction % 10 === 0) {
      fraction /= 10
      width--
    }
    for (let zeros = width - digitCount(fraction); zeros > 0; zeros--) this.buf[this.at++] = 48
    this.putUint(fraction)
  }

  private putTwoDigits(n: number): void {
    this.buf[this.at++] = 48 + Math.floor(n / 10)
    this.buf[this.at++] = 48 + (n % 10)
  }

  private putTimestamp(ms: number): void {
    const minute = Math.floor(ms / 60_000)
    if (minute !== this.cachedMinute) {
      this.cachedMinute = minute
      this.cachedMinutePrefix = isoTimestamp(minute * 60_000).slice(0, -7)
    }
    this.putAscii(this.cachedMinutePrefix)
    const rest = ms - minute * 60_000
    const seconds = Math.floor(rest / 1000)
    const millis = rest - seconds * 1000
    this.putTwoDigits(seconds)
    this.buf[this.at++] = 46
    this.buf[this.at++] = 48 + Math.floor(millis / 100)
    this.putTwoDigits(millis % 100)
    this.buf[this.at++] = 90
  }

  private putBeacon(r: Reading): void {
    for (let i = 0; i < r.beaconLength; i += 3) {
      const rest = r.beaconLength - i
      const n = (beaconByte(r, i) << 16) | (rest > 1 ? beaconByte(r, i + 1) << 8 : 0) | (rest > 2 ? beaconByte(r, i + 2) : 0)
      this.buf[this.at++] = B64_CODES[n >>> 18]!
      this.buf[this.at++] = B64_CODES[(n >>> 12) & 63]!
      this.buf[this.at++] = rest > 1 ? B64_CODES[(n >>> 6) & 63]! : 61
      this.buf[this.at++] = rest > 2 ? B64_CODES[n & 63]! : 61
    }
  }

  write(r: Reading): string {
    this.at = 0
    this.putBytes(K.deviceId)
    this.putAscii(r.deviceId)
    this.putBytes(K.timestamp)
    this.putTimestamp(r.timestampMs)
    this.putBytes(K.latitude)
    this.putDecimal(r.latitude, 7, 1e7)
    this.putBytes(K.longitude)
    this.putDecimal(r.longitude, 7, 1e7)
    this.putBytes(K.altitude)
    this.putUint(r.altitude)
    this.putBytes(K.angle)
    this.putUint(r.angle)
    this.putBytes(K.speed)
    this.putDecimal(r.speed, 1, 10)
    this.putBytes(K.satellites)
    this.putUint(r.satellites)
    this.putBytes(K.priority)
    this.putUint(r.priority)
    this.putBytes(K.eventId)
    this.putUint(r.eventId)
    this.putBytes(K.din1)
    this.putBytes(r.din1 ? K.true : K.false)
    this.putBytes(K.odometer)
    this.putUint(r.odometer)
    this.putBytes(K.gsm)
    this.putUint(r.gsmSignal)
    this.putBytes(K.external)
    this.putUint(r.externalMv)
    this.putBytes(K.battery)
    this.putUint(r.batteryMv)
    this.putBytes(K.ibutton)
    this.putAscii(r.ibutton)
    this.putBytes(K.ignition)
    this.putUint(r.ignition)
    this.putBytes(K.movement)
    this.putUint(r.movement)
    if (r.vin !== undefined) {
      this.putBytes(K.vin)
      this.putAscii(r.vin)
      this.putBytes(K.quote)
    }
    if (r.dtc !== undefined) {
      this.putBytes(K.dtc)
      this.putAscii(r.dtc)
      this.putBytes(K.quote)
    }
    this.putBytes(K.beacon)
    this.putBeacon(r)
    this.putBytes(K.end)
    return this.buf.toString("latin1", 0, this.at)
  }
}

/**
 * A function from Reading to payload text (what JSON.stringify(toWirePosition(r)) gives). It owns a scratch buffer,
 * so make one per producer and reuse it; readings the fast writer cannot represent exactly go through
 * JSON.stringify.
 */
export const makePayloadEncoder = (): ((r: Reading) => string) => {
  const writer = new PayloadWriter()
  return (r) => (isFastPath(r) ? writer.write(r) : JSON.stringify(toWirePosition(r)))
}
