import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, HashMap, Logger, Metric, TestClock } from "effect"
import * as Heartbeat from "../src/observability/Heartbeat.js"
import * as Metrics from "../src/observability/Metrics.js"

describe("heartbeat", () => {
  it.effect("logs one line a minute with what was done since the last, as structured fields", () =>
    Effect.gen(function*() {
      const lines: Array<{ message: unknown; fields: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, message }) => {
        lines.push({ message, fields: Object.fromEntries(HashMap.toEntries(annotations)) })
      })
      const fiber = yield* Effect.fork(Heartbeat.run.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture))))
      yield* TestClock.adjust("30 seconds")
      expect(lines).toEqual([])
      yield* Metric.incrementBy(Metrics.consumed, 120)
      yield* Metric.incrementBy(Metrics.inserted, 100)
      yield* TestClock.adjust("30 seconds")
      expect(lines).toHaveLength(1)
      expect(lines[0]!.message).toEqual(["alive"])
      expect(lines[0]!.fields).toMatchObject({ service: "heartbeat", records: 120, rate: 2, inserted: 100, dead_letters: 0 })
      yield* TestClock.adjust("1 minute")
      expect(lines).toHaveLength(2)
      expect(lines[1]!.fields).toMatchObject({ records: 0, rate: 0, inserted: 0 })
      yield* Fiber.interrupt(fiber)
    }))
})
