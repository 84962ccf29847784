import { Clock, Context, Duration, Effect, Layer, Metric, Option } from "effect"
import { LRUCache } from "lru-cache"
import { ProcessorConfig } from "../config/Config.js"
import * as Metrics from "../observability/Metrics.js"
import type { Position } from "../position/Position.js"
import type { LastPosition, PositionKey } from "./LastPosition.js"
import { LatestPositions } from "./LatestPositions.js"

/** A record as the state takes it: the decoded position and its attributes' stored JSON. */
export interface Observed {
  readonly position: Position
  readonly attributesJson: string
}

/** A device as the state shows it (GET /devices/:id): a copy, without the state's bookkeeping. */
export interface DeviceView {
  /** The newest position by timestamp ever seen: a late, buffered record never replaces it. */
  readonly last_position: LastPosition | undefined
  /** When this process last received a record of the device. */
  readonly last_seen_at: Date
  /** Records received since this process started (or since the device was last evicted). */
  readonly position_count_session: number
}

interface MutableDevice {
  last_position: LastPosition | undefined
  last_seen_at: Date
  position_count_session: number
  /** Whether the newest stored row has been merged in (`hydrate`). Until it has, every `hydrate` of the device tries again. */
  hydrated: boolean
  /** What the cache counts this device as (`footprint`), as of its last `set`. */
  bytes: number
}

/**
 * Roughly what one device costs in memory, in whole KiB so that it changes rarely: the cache is told again
 * only when it does. Strings count two bytes a character; the rest of the record a few hundred bytes.
 */
const footprint = (deviceId: string, last: LastPosition | undefined): number =>
  1024 * Math.ceil((320 + 2 * (deviceId.length + (last === undefined ? 0 : last.attributesJson.length))) / 1024)

export interface UpdateSummary {
  /** Records older than their device's newest known position. */
  readonly late: number
}

/**
 * A device's newest position as `update` keeps it: the state's own object, changed in place by the device's
 * later records, so a device costs one object for as long as it is in memory instead of one per record (each
 * would outlive young-generation collections, and die old). Positions from the table (hydrate, reconcile) are
 * kept as they come and replaced by an OwnPosition at the device's next newer record. Never handed out: readers
 * get copies (`get`).
 */
class OwnPosition implements LastPosition {
  // Assigned by `set`, in one order, from the constructor on.
  timestamp!: Date
  latitude!: number
  longitude!: number
  altitude!: number
  angle!: number
  speed!: number
  satellites!: number
  priority!: number
  event_id!: number
  attributesJson!: string

  constructor(readonly device_id: string, record: Observed) {
    this.set(record)
  }

  /** Takes the fields of a newer record of the same device. */
  set({ attributesJson, position: p }: Observed): void {
    this.timestamp = p.timestamp
    this.latitude = p.latitude
    this.longitude = p.longitude
    this.altitude = p.altitude
    this.angle = p.angle
    this.speed = p.speed
    this.satellites = p.satellites
    this.priority = p.priority
    this.event_id = p.event_id
    this.attributesJson = attributesJson
  }
}

// A reader's copy of a device's newest position: plain data, not changed by later records.
const copyOf = (p: LastPosition): LastPosition => ({
  device_id: p.device_id,
  timestamp: p.timestamp,
  latitude: p.latitude,
  longitude: p.longitude,
  altitude: p.altitude,
  angle: p.angle,
  speed: p.speed,
  satellites: p.satellites,
  priority: p.priority,
  event_id: p.event_id,
  attributesJson: p.attributesJson
})

export class DeviceState extends Context.Tag("processor/DeviceState")<DeviceState, {
  /**
   * Applies a chunk of records in order, in memory only: it never waits for the database, so the write path
   * costs the same whatever the fleet's size. A device not in memory starts from its first record here and is
   * marked not hydrated; its newest stored row is merged in only when a reader asks for it (`hydrate`, and
   * `get`). `late` counts records older than what this process knows of their device at that moment.
   */
  readonly update: (records: ReadonlyArray<Observed>) => Effect.Effect<UpdateSummary>
  /**
   * Merges into each device in memory that is not hydrated yet its newest stored row (the newer of the two by
   * timestamp stands), with one query for all of them; devices already hydrated or not in memory cost nothing.
   * For readers that need a device's history beyond this process: a domain stage calls it for its records'
   * devices before it looks at their state. A device whose query fails (retried inside while the failure is
   * transient) does not hold back the others: the failing ones are isolated by halving the list, logged
   * (`device state not hydrated for N of M devices …`) and tried again by the next call.
   */
  readonly hydrate: (deviceIds: Iterable<string>) => Effect.Effect<void>
  readonly reconcile: (keys: ReadonlyArray<PositionKey>) => Effect.Effect<void>
  /** The device's state (a copy), hydrated first if it was not; none when the device is not in memory. */
  readonly get: (deviceId: string) => Effect.Effect<Option.Option<DeviceView>>
  readonly size: Effect.Effect<number>
}>() {
  /**
   * `capacity`: devices kept in memory (least recently seen evicted first); `maxBytes`: and at most about
   * this much memory (DEVICE_STATE_MAX_BYTES: a fleet whose records carry large attributes keeps fewer devices,
   * never more memory). `maxFutureSkew`: stored rows further than this ahead of now are ignored by hydration
   * (MAX_FUTURE_SKEW; zero: no limit).
   */
  static readonly make = (capacity: number, maxFutureSkew: Duration.DurationInput = Duration.zero, maxBytes = 64 * 1024 * 1024) =>
    Effect.gen(function*() {
      const { latest } = yield* LatestPositions
      const skewMs = Duration.toMillis(maxFutureSkew)
      let evicted = 0
      // Single writer: `update` runs on the pipeline's one state fiber. `reconcile` (from the write fibers) and
      // `hydrate` (from readers: a domain stage, HTTP) change a device only in a synchronous step after their
      // query, and only towards the table (reconcile: if the device's newest is still the key it was asked about;
      // hydrate: if the stored row is newer). Readers get copies.
      const devices = new LRUCache<string, MutableDevice>({
        max: capacity,
        maxSize: maxBytes,
        sizeCalculation: (device) => device.bytes,
        dispose: (_value, _key, reason) => {
          if (reason === "evict") evicted++
        }
      })
      const put = (id: string, device: MutableDevice) => {
        device.bytes = footprint(id, device.last_position)
        // lru-cache recounts a size only when the value is another object: the same one is taken out first.
        if (devices.peek(id) === device) devices.delete(id)
        devices.set(id, device)
      }
      // After the device's newest position changed: the cache is told its new size only when it moved.
      const resized = (id: string, device: MutableDevice) => {
        if (footprint(id, device.last_position) !== device.bytes) put(id, device)
      }

      const newestStored = (ids: ReadonlyArray<string>) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => latest(ids, skewMs > 0 ? new Date(now + skewMs) : undefined))

      // The stored rows for `ids`; devices whose query keeps failing are left out and returned as failed.
      const hydrate = (
        ids: ReadonlyArray<string>
      ): Effect.Effect<{ readonly stored: Map<string, LastPosition>; readonly failed: Array<string>; readonly error: string | undefined }> =>
        newestStored(ids).pipe(
          Effect.map((stored) => ({ stored: new Map(stored), failed: [] as Array<string>, error: undefined as string | undefined })),
          Effect.catchAll((error) => {
            if (ids.length === 1) return Effect.succeed({ stored: new Map<string, LastPosition>(), failed: [...ids], error: error.message })
            const middle = ids.length >> 1
            return Effect.zipWith(hydrate(ids.slice(0, middle)), hydrate(ids.slice(middle)), (a, b) => {
              for (const [id, p] of b.stored) a.stored.set(id, p)
              return { stored: a.stored, failed: a.failed.concat(b.failed), error: a.error ?? b.error }
            })
          })
        )

      const hydrateNow = (deviceIds: Iterable<string>) =>
        Effect.gen(function*() {
          // The device objects asked about, by id: one evicted during the query and back since is another object,
          // whose records since may be newer than the snapshot read; it stays not hydrated.
          const asked = new Map<string, MutableDevice>()
          for (const id of deviceIds) {
            const device = devices.peek(id)
            if (device?.hydrated === false) asked.set(id, device)
          }
          if (asked.size === 0) return
          const { error, failed, stored } = yield* hydrate([...asked.keys()])
          if (failed.length > 0) {
            yield* Effect.logWarning(`device state not hydrated for ${failed.length} of ${asked.size} devices (tried again by the next reader): ${error}`)
          }
          const failedSet = new Set(failed)
          // Synchronous after the query: the device may have been evicted, or have taken newer records, meanwhile.
          for (const [id, device] of asked) {
            if (devices.peek(id) !== device || failedSet.has(id)) continue
            device.hydrated = true
            const row = stored.get(id)
            if (row !== undefined && (device.last_position === undefined || row.timestamp.getTime() > device.last_position.timestamp.getTime())) {
              device.last_position = row
              resized(id, device)
            }
          }
        })

      const update = (records: ReadonlyArray<Observed>) =>
        Effect.gen(function*() {
          const now = new Date(yield* Clock.currentTimeMillis)
          evicted = 0
          let late = 0
          for (let i = 0; i < records.length; i++) {
            const r = records[i]!
            const id = r.position.device_id
            let device = devices.get(id)
            if (device === undefined) {
              device = { last_position: undefined, last_seen_at: now, position_count_session: 0, hydrated: false, bytes: 0 }
              put(id, device)
            }
            const last = device.last_position
            const ms = r.position.timestamp.getTime()
            if (last === undefined || ms > last.timestamp.getTime()) {
              // The device's own object is changed in place (its device_id is the key's); one from the table is replaced.
              if (last instanceof OwnPosition) last.set(r)
              else device.last_position = new OwnPosition(id, r)
              resized(id, device)
            } else if (ms < last.timestamp.getTime()) late++
            device.last_seen_at = now
            device.position_count_session++
          }
          if (evicted > 0) yield* Metric.incrementBy(Metrics.deviceStateEvictions, evicted)
          if (late > 0) yield* Metric.incrementBy(Metrics.lateRecords, late)
          yield* Metric.set(Metrics.deviceStateSize, devices.size)
          return { late }
        })

      const holds = (key: PositionKey) => devices.peek(key.deviceId)?.last_position?.timestamp.getTime() === key.ms

      const reconcile = (keys: ReadonlyArray<PositionKey>) =>
        Effect.gen(function*() {
          const affected = [...new Set(keys.filter(holds).map((k) => k.deviceId))]
          if (affected.length === 0) return
          const { error, failed, stored } = yield* hydrate(affected)
          // A device whose stored row could not be read keeps what it holds (not "nothing stored").
          const unread = new Set(failed)
          if (unread.size > 0) {
            yield* Effect.logWarning(`device state not reconciled for ${unread.size} of ${affected.length} devices (their newest position may be one the table does not hold): ${error}`)
          }
          for (const key of keys) {
            const device = devices.peek(key.deviceId)
            // Checked again after the query: a newer record may have arrived meanwhile, and then it stands.
            if (device !== undefined && !unread.has(key.deviceId) && holds(key)) {
              device.last_position = stored.get(key.deviceId)
              resized(key.deviceId, device)
            }
          }
        })

      const get = (deviceId: string) =>
        Effect.zipRight(
          hydrateNow([deviceId]),
          Effect.sync(() =>
            Option.map(Option.fromNullable(devices.peek(deviceId)), (d): DeviceView => ({
              last_position: d.last_position === undefined ? undefined : copyOf(d.last_position),
              last_seen_at: d.last_seen_at,
              position_count_session: d.position_count_session
            }))
          )
        )

      return DeviceState.of({ update, hydrate: hydrateNow, reconcile, get, size: Effect.sync(() => devices.size) })
    })

  static readonly layer = Layer.effect(
    DeviceState,
    Effect.flatMap(ProcessorConfig, (c) => DeviceState.make(c.deviceStateCapacity, c.maxFutureSkew, c.deviceStateMaxBytes))
  )
}
