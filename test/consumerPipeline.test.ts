import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, TestClock } from "effect"
import * as Metrics from "../src/observability/Metrics.js"
import * as Pipeline from "../src/pipeline/Pipeline.js"
import { DeviceState } from "../src/state/DeviceState.js"
import { LatestPositions } from "../src/state/LatestPositions.js"
import { readKey } from "../src/writer/copyBinary.js"
import { Inserted, type Outcome, Writer } from "../src/writer/Writer.js"
import { entry, makeMemoryConsumer, position } from "./support/MemoryConsumer.js"
import { configLayer } from "./support/testConfig.js"

// What the pipeline tells the consumer after a write: acknowledgements, failures to count, lag.

// "fail…" devices fail for a reason that is not transient, "bad…" are refused for their data.
const writer = Layer.succeed(Writer, Writer.of({
  write: (rows) =>
    Effect.succeed(rows.map((row): Outcome => {
      const { deviceId } = readKey(row)
      if (deviceId.startsWith("fail")) return { _tag: "Failed", reason: "trigger raised", permanent: false }
      if (deviceId.startsWith("bad")) return { _tag: "Failed", reason: "value out of range", permanent: true }
      return Inserted
    }))
}))

const state = Layer.effect(DeviceState, DeviceState.make(100)).pipe(
  Layer.provide(Layer.succeed(LatestPositions, LatestPositions.of({ latest: () => Effect.succeed(new Map()) })))
)

const NOW = 1_800_000_000_000

describe("Pipeline → consumer", () => {
  it.effect("records a failure for each record whose write failed for a non-transient reason, and only for those", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const consumer = yield* makeMemoryConsumer
      const fiber = yield* Effect.fork(Pipeline.run.pipe(Effect.provide(Layer.mergeAll(consumer.layer, writer, state, configLayer()))))
      const ok = entry(position("dev-1", "2026-05-01T10:00:00.000Z"))
      const failed = entry(position("fail-1", "2026-05-01T10:00:00.000Z"))
      const bad = entry(position("bad-1", "2026-05-01T10:00:00.000Z"))
      yield* consumer.read([ok, failed, bad])
      yield* consumer.end
      yield* Fiber.join(fiber)
      expect(yield* consumer.failures).toEqual([{ id: failed.id, error: "trigger raised" }])
      expect(yield* consumer.acked).toEqual([ok.id, bad.id])
    }))

  it.effect("an entry id in the future of the commit counts as lag 0 and is counted, instead of a negative lag", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      const consumer = yield* makeMemoryConsumer
      const fiber = yield* Effect.fork(Pipeline.run.pipe(Effect.provide(Layer.mergeAll(consumer.layer, writer, state, configLayer()))))
      const lagBefore = yield* Metric.value(Metrics.lag)
      const futureBefore = (yield* Metric.value(Metrics.futureEntryIds)).count
      // Ten years ahead, and one a minute old.
      const future = entry(position("dev-2", "2026-05-01T10:00:00.000Z"), `${NOW + 10 * 365 * 86_400_000}-0`)
      const past = entry(position("dev-3", "2026-05-01T10:00:00.000Z"), `${NOW - 60_000}-0`)
      yield* consumer.read([future, past])
      yield* consumer.end
      yield* Fiber.join(fiber)
      const lag = yield* Metric.value(Metrics.lag)
      expect(lag.count - lagBefore.count).toBe(2)
      expect(lag.sum - lagBefore.sum).toBeCloseTo(60, 6)
      expect(lag.min).toBeGreaterThanOrEqual(0)
      expect((yield* Metric.value(Metrics.futureEntryIds)).count - futureBefore).toBe(1)
    }))
})
