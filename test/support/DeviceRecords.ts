import { attributesJson } from "../../src/position/attributesJson.js"
import type { Position } from "../../src/position/Position.js"
import type { Observed } from "../../src/state/DeviceState.js"
import type { LastPosition } from "../../src/state/LastPosition.js"

/** A record as DeviceState.update takes it: a device's position at `iso` (fixed coordinates), no attributes. */
export const observed = (deviceId: string, iso: string, speed = 10): Observed => {
  const position: Position = {
    device_id: deviceId,
    timestamp: new Date(iso),
    latitude: 54,
    longitude: 25,
    altitude: 100,
    angle: 90,
    speed,
    satellites: 9,
    priority: 0,
    event_id: 0,
    attributes: {}
  }
  return { position, attributesJson: attributesJson(position.attributes) }
}

/** The same position as a stored row reads back (what LatestPositions gives). */
export const stored = (deviceId: string, iso: string, speed = 10): LastPosition => {
  const { attributesJson: json, position } = observed(deviceId, iso, speed)
  const { attributes: _, ...fields } = position
  return { ...fields, attributesJson: json }
}
