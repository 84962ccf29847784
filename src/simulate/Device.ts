import { imei } from "./Imei.js"
import { randomInt, randomUint32, randomUint64AboveDoubles, type Rng } from "./Random.js"

// One tracker's motion and sensors: where it is, how it moves, and the record it reports at an instant.

// What the generator produces: one record in a flat, fixed shape. An attributes object keyed by IO ids ("16",
// "385") has integer keys, which V8 builds about ten times slower than named ones, so on the hot path that object
// exists only as JSON text (Payload.makePayloadEncoder); toWirePosition builds it when a caller wants the object.
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

const VILNIUS_LAT = 54.68
const VILNIUS_LON = 25.28
const MAX_SPEED = 120
const METERS_PER_DEGREE = 111_320
const EVENT_IDS = [239, 240, 247, 250, 252, 253] as const
const DTC_CODES = ["P0300", "P0171", "P0420", "P0128", "U0100"] as const

export const makeDevice = (rng: Rng, serialOffset: number, index: number, startMs: number): Device => ({
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

/** Moves the device to `nowMs` (its own skewed clock, strictly after its last record) and returns the record. */
export const advance = (rng: Rng, device: Device, nowMs: number): Reading => {
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
