import type { Position } from "../position/Position.js"

/**
 * A position as the state keeps it: the fields of a Position, with the attributes in their stored JSON form
 * (as in positions.attributes: bigints exact, bytes as hex). One string per device instead of a map of values:
 * the newest position of every device outlives many garbage collections, so its size is the state's cost.
 * Live and hydrated devices hold the same form. `JSON.parse(attributesJson)` gives the values when needed.
 */
export interface LastPosition extends Omit<Position, "attributes"> {
  readonly attributesJson: string
}

/** A (device_id, ts) key: the device and the record's time in milliseconds since the epoch. */
export interface PositionKey {
  readonly deviceId: string
  readonly ms: number
}
