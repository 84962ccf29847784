import { Context, Effect } from "effect"
import type { Position } from "../position/Position.js"

/** A decoded record on its way to the database, with the stream entry it came from. */
export interface Accepted {
  readonly id: string
  readonly position: Position
  /**
   * `position.attributes` as stored, made by the decoder. A stage that changes a record's attributes gives
   * the new record `attributesJson(newAttributes)` (src/position/attributesJson.ts).
   */
  readonly attributesJson: string
}

/**
 * Where domain rules (finish-line crossings, geofences) plug in: after device state is updated, before the
 * write. A stage sees each chunk in stream order and returns the records to write. Without a layer of its
 * own it passes everything through, so the plumbing never depends on domain code. The state holds what this
 * process has seen; a stage that needs a device's history from before (a restart, an eviction, another
 * instance) calls `DeviceState.hydrate` for its chunk's devices first, and pays one query for those not yet
 * hydrated.
 */
export class DomainStage extends Context.Reference<DomainStage>()("processor/DomainStage", {
  defaultValue: () => ({
    process: (records: ReadonlyArray<Accepted>): Effect.Effect<ReadonlyArray<Accepted>> => Effect.succeed(records)
  })
}) {}
