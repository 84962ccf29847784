import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer } from "effect"
import { orPgError, Pg, type PgError } from "../postgres/Pg.js"
import type { LastPosition } from "./LastPosition.js"

/** The newest stored position of each device: what a device's state starts from after a restart. */
export class LatestPositions extends Context.Tag("processor/LatestPositions")<LatestPositions, {
  /**
   * The newest stored row of each device that has one, ignoring rows later than `notAfter` (a tracker clock
   * far in the future must not become a device's newest position after a restart; MAX_FUTURE_SKEW).
   */
  readonly latest: (deviceIds: ReadonlyArray<string>, notAfter?: Date) => Effect.Effect<ReadonlyMap<string, LastPosition>, PgError>
}>() {
  static readonly layer = Layer.effect(
    LatestPositions,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { retryTransient } = yield* Pg
      return LatestPositions.of({
        latest: (deviceIds, notAfter) =>
          retryTransient(
            // One index probe per device (backward scan on the primary key), all devices in one statement:
            // the ids go as one text[] parameter, whatever their number.
            sql<Row>`SELECT p.device_id, p.ts, p.latitude, p.longitude, p.altitude, p.angle, p.speed,
                            p.satellites, p.priority, p.event_id, p.attributes::text AS attributes
                       FROM unnest(${deviceIds}::text[]) AS d(id)
                       CROSS JOIN LATERAL (
                         SELECT * FROM positions WHERE device_id = d.id AND ts <= ${notAfter ?? "infinity"} ORDER BY ts DESC LIMIT 1
                       ) AS p`.pipe(orPgError("hydrate device state"))
          ).pipe(Effect.map((rows) => new Map(rows.map((row) => [row.device_id, toLastPosition(row)]))))
      })
    })
  )
}

interface Row {
  device_id: string
  ts: Date
  latitude: number
  longitude: number
  altitude: number
  angle: number
  speed: number
  satellites: number
  priority: number
  event_id: number
  /** The stored JSON as text: not parsed, so every digit of a bigint survives. */
  attributes: string
}

const toLastPosition = (row: Row): LastPosition => ({
  device_id: row.device_id,
  timestamp: row.ts,
  latitude: row.latitude,
  longitude: row.longitude,
  altitude: row.altitude,
  angle: row.angle,
  speed: row.speed,
  satellites: row.satellites,
  priority: row.priority,
  event_id: row.event_id,
  attributesJson: row.attributes
})
