import { advance, type Device, makeDevice, type Reading } from "./Device.js"
import { mulberry32, randomInt, type Rng } from "./Random.js"

// A fleet of devices and what reaches the wire from it: records in round-robin turns, with the resends and
// late (backfilled) bursts real trackers produce.

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

const RECENT_SIZE = 256
// Outages last 2..6 records, so a late burst replays 4 records on average.
const MIN_OUTAGE = 2
const MAX_OUTAGE = 6
const MEAN_OUTAGE = (MIN_OUTAGE + MAX_OUTAGE) / 2

const checkShare = (name: string, share: number): number => {
  if (!(share >= 0 && share < 1)) throw new RangeError(`${name} must be in [0, 1), got ${share}`)
  return share
}

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

