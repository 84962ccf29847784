import { Context, Effect, Layer, Metric, Option } from "effect"
import { ProcessorConfig } from "../config/Config.js"
import * as Metrics from "../observability/Metrics.js"
import type { Position } from "../position/Position.js"
import { LatestPositions } from "./LatestPositions.js"
import { Lru } from "./Lru.js"

/**
 * A position as the state keeps it: the fields of a Position, with the attributes in their stored JSON form
 * (as in positions.attributes: bigints exact, bytes as hex). One string per device instead of a map of values:
 * the newest position of every device outlives many garbage collections, so its size is the state's cost.
 * Live and hydrated devices hold the same form. `JSON.parse(attributesJson)` gives the values when needed.
 */
export interface LastPosition extends Omit<Position, "attributes"> {
  readonly attributesJson: string
}

/** A record as the state takes it: the decoded position and its attributes' stored JSON. */
export interface Observed {
  readonly position: Position
  readonly attributesJson: string
}

export interface Device {
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
}

export interface UpdateSummary {
  /** Records older than their device's newest known position. */
  readonly late: number
}

const lastPosition = ({ attributesJson, position: p }: Observed): LastPosition => ({
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
  attributesJson
})

export class DeviceState extends Context.Tag("processor/DeviceState")<DeviceState, {
  /**
   * Applies a chunk of records in order. Devices not in memory are first hydrated from their newest stored
   * row, with one query for all of them.
   */
  readonly update: (records: ReadonlyArray<Observed>) => Effect.Effect<UpdateSummary>
  readonly get: (deviceId: string) => Effect.Effect<Option.Option<Device>>
  readonly size: Effect.Effect<number>
}>() {
  static readonly make = (capacity: number) =>
    Effect.gen(function*() {
      const { latest } = yield* LatestPositions
      // Mutated only by `update`, which the pipeline runs from a single fiber; readers get copies.
      const devices = new Lru<string, MutableDevice>(capacity)

      const update = (records: ReadonlyArray<Observed>) =>
        Effect.gen(function*() {
          const now = new Date()
          const missing = new Set<string>()
          for (const r of records) if (!devices.has(r.position.device_id)) missing.add(r.position.device_id)
          let evicted = 0
          if (missing.size > 0) {
            // Hydration is a convenience, not a reason to stop: without it, a device's state starts from
            // the records this process sees. (Transient trouble is retried inside `latest`.)
            const stored = yield* latest([...missing]).pipe(
              Effect.catchAll((error) =>
                Effect.as(Effect.logWarning(`device state not hydrated for ${missing.size} devices: ${error.message}`), new Map<string, LastPosition>())
              )
            )
            for (const id of missing) {
              evicted += devices.set(id, { last_position: stored.get(id), last_seen_at: now, position_count_session: 0 })
            }
          }
          let late = 0
          for (const r of records) {
            const p = r.position
            let device = devices.get(p.device_id)
            if (device === undefined) {
              // Only when one chunk holds more distinct devices than the capacity.
              device = { last_position: undefined, last_seen_at: now, position_count_session: 0 }
              evicted += devices.set(p.device_id, device)
            }
            const last = device.last_position
            if (last === undefined || p.timestamp.getTime() > last.timestamp.getTime()) device.last_position = lastPosition(r)
            else if (p.timestamp.getTime() < last.timestamp.getTime()) late++
            device.last_seen_at = now
            device.position_count_session++
          }
          if (evicted > 0) yield* Metric.incrementBy(Metrics.deviceStateEvictions, evicted)
          if (late > 0) yield* Metric.incrementBy(Metrics.lateRecords, late)
          yield* Metric.set(Metrics.deviceStateSize, devices.size)
          return { late }
        })

      const get = (deviceId: string) =>
        Effect.sync(() => Option.map(Option.fromNullable(devices.peek(deviceId)), (d): Device => ({ ...d })))

      return DeviceState.of({ update, get, size: Effect.sync(() => devices.size) })
    })

  static readonly layer = Layer.effect(DeviceState, Effect.flatMap(ProcessorConfig, (c) => DeviceState.make(c.deviceStateCapacity)))
}
