import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Schedule, Stream, TestClock } from "effect"
import type { StreamEntry } from "../src/consumer/Consumer.js"
import * as ReadLoop from "../src/consumer/ReadLoop.js"
import { RedisError } from "../src/consumer/Redis.js"

// The read loop's timing on the TestClock: a fake group whose blocking read takes READ_BLOCK_MS of Clock
// time and returns nothing, and whose calls are recorded with the Clock time they happened at.

const BLOCK = Duration.seconds(2)

const makeGroup = (options: { readonly failFirstRead?: boolean } = {}) => {
  const calls: Array<string> = []
  let reads = 0
  const at = (what: string) => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => calls.push(`${what}@${now}`)))
  const reads_: ReadLoop.GroupReads = {
    readOwn: (cursor) => Effect.as(at(`own ${cursor}`), { entries: [], cursor }),
    readNew: Effect.suspend(() =>
      options.failFirstRead === true && reads++ === 0
        ? Effect.zipRight(at("new"), Effect.fail(new RedisError({ op: "XREADGROUP", cause: new Error("Command timed out") })))
        : Effect.zipRight(Effect.sleep(BLOCK), Effect.as(at("new"), [] as ReadonlyArray<StreamEntry>))
    ),
    claim: (cursor) => Effect.as(at(`claim ${cursor}`), { entries: [{ id: "1-1", payload: "claimed" }], cursor: "0-0" }),
    cleanup: at("cleanup"),
    onError: (error) => at(`error ${error.op}`),
    onProgress: () => Effect.void
  }
  return { calls, reads: reads_ }
}

const timing: ReadLoop.Timing = {
  claimInterval: Duration.seconds(10),
  cleanupInterval: Duration.seconds(60),
  retry: Schedule.spaced("1 second")
}

describe("read loop", () => {
  it.effect("claims once CLAIM_INTERVAL has passed on the Clock, between blocking reads, and not before", () =>
    Effect.gen(function*() {
      const { calls, reads } = makeGroup()
      const out: Array<string> = []
      const fiber = yield* ReadLoop.entries(reads, timing).pipe(
        Stream.runForEach((e) => Effect.sync(() => out.push(e.payload!))),
        Effect.fork
      )
      yield* TestClock.adjust("9 seconds")
      expect(calls.filter((c) => c.startsWith("claim"))).toEqual([])
      expect(calls[0]).toBe("own 0@0")
      expect(calls.filter((c) => c.startsWith("new"))).toEqual(["new@2000", "new@4000", "new@6000", "new@8000"])

      yield* TestClock.adjust("1 second")
      expect(calls.filter((c) => c.startsWith("claim"))).toEqual(["claim 0-0@10000"])
      expect(out).toEqual(["claimed"])

      // The next pass is due CLAIM_INTERVAL after the last one ended; the clean-up on its own interval.
      yield* TestClock.adjust("60 seconds")
      expect(calls.filter((c) => c.startsWith("claim"))).toEqual([
        "claim 0-0@10000", "claim 0-0@20000", "claim 0-0@30000", "claim 0-0@40000", "claim 0-0@50000", "claim 0-0@60000", "claim 0-0@70000"
      ])
      expect(calls.filter((c) => c.startsWith("cleanup"))).toEqual(["cleanup@60000"])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("after a failed read waits as the retry schedule says, then re-reads its own pending entries first", () =>
    Effect.gen(function*() {
      const { calls, reads } = makeGroup({ failFirstRead: true })
      const fiber = yield* Effect.fork(Stream.runDrain(ReadLoop.entries(reads, timing)))
      yield* TestClock.adjust("500 millis")
      expect(calls).toEqual(["own 0@0", "new@0", "error XREADGROUP@0"])
      yield* TestClock.adjust("500 millis")
      expect(calls.slice(3)).toEqual(["own 0@1000"])
      yield* TestClock.adjust("2 seconds")
      expect(calls.slice(4)).toEqual(["new@3000"])
      yield* Fiber.interrupt(fiber)
    }))
})
