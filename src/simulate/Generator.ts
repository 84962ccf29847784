// The batch form of the simulator: a fixed number of payloads computed ahead, for tests and benchmarks.
import { DEFAULT_START, emit, type FleetOptions, makeFleet } from "./Fleet.js"
import { makePayloadEncoder } from "./Payload.js"

export interface PayloadsOptions extends FleetOptions {
  readonly count: number
  // Records per second per device, in simulated time.
  readonly rateHz?: number | undefined
}

// Exactly `count` payloads from a fleet ticking in simulated time: the benchmark's input.
export const generatePayloads = (options: PayloadsOptions): Array<string> => {
  const fleet = makeFleet(options)
  const toPayload = makePayloadEncoder()
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
