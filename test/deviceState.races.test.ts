import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Queue } from "effect"
import { PgError } from "../src/postgres/Pg.js"
import { DeviceState } from "../src/state/DeviceState.js"
import type { LastPosition } from "../src/state/LastPosition.js"
import { LatestPositions } from "../src/state/LatestPositions.js"
import { observed, stored } from "./support/DeviceRecords.js"

// DeviceState under races between `update` (the state fiber) and `hydrate` / `get` / `reconcile` (other fibers),
// on a fake LatestPositions whose query reads the fake table when it is made, then waits for the test to let it
// answer (or fail): whatever the test does meanwhile happens "during the query".

const failure = () => new PgError({ op: "hydrate device state", cause: Object.assign(new Error("connection terminated"), { code: "57P01" }) })

/**
 * A fake table (device → newest stored row) and a LatestPositions on it. While `hold` is set, each query takes
 * its snapshot, announces its ids on `started`, then waits for `hold`; `failing` makes queries fail (after the wait).
 */
const controllable = Effect.gen(function*() {
  const table = new Map<string, LastPosition>()
  const started = yield* Queue.unbounded<ReadonlyArray<string>>()
  const control = { hold: undefined as Deferred.Deferred<void> | undefined, failing: false, queries: 0 }
  const latest = LatestPositions.of({
    latest: (ids) =>
      Effect.gen(function*() {
        control.queries++
        const snapshot = new Map(ids.flatMap((id) => (table.has(id) ? [[id, table.get(id)!] as const] : [])))
        const hold = control.hold
        yield* Queue.offer(started, ids)
        if (hold !== undefined) yield* Deferred.await(hold)
        if (control.failing) return yield* Effect.fail(failure())
        return snapshot as ReadonlyMap<string, LastPosition>
      })
  })
  const make = (capacity: number) => DeviceState.make(capacity).pipe(Effect.provide(Layer.succeed(LatestPositions, latest)))
  return { control, make, started, table }
})

const newestOf = (state: DeviceState["Type"], id: string) =>
  Effect.map(state.get(id), (d) => Option.getOrThrow(d).last_position)
const isoOf = (p: LastPosition | undefined) => p?.timestamp.toISOString()

describe("DeviceState races", () => {
  // A device evicted during the query and back in memory is another object: the snapshot taken before it came back
  // may lack rows committed meanwhile (here the evicted incarnation's own 10:00 record), so it stays not hydrated
  // and the next reader reads the table again. (Found by a breaker probe; before the fix it was marked hydrated.)
  it.live("an eviction during a hydration query: the device back in memory is not marked hydrated by the old snapshot", () =>
    Effect.gen(function*() {
      const { control, make, started, table } = yield* controllable
      const state = yield* make(2)
      yield* state.update([observed("X", "2026-05-01T10:00:00Z")])
      control.hold = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(state.hydrate(["X"]))
      expect(yield* Queue.take(started)).toEqual(["X"])
      // During the query: X's 10:00 record commits, X is evicted by two other devices, and comes back with a late record.
      table.set("X", stored("X", "2026-05-01T10:00:00Z", 77))
      yield* state.update([observed("A", "2026-05-01T10:00:00Z"), observed("B", "2026-05-01T10:00:00Z")])
      yield* state.update([observed("X", "2026-05-01T09:00:00Z")])
      yield* Deferred.succeed(control.hold, undefined)
      control.hold = undefined
      yield* Fiber.join(reader)
      // Expected: 10:00 (X's stored newest: either merged now, or by get's hydration since X is not hydrated).
      expect(isoOf(yield* newestOf(state, "X"))).toBe("2026-05-01T10:00:00.000Z")
    }))

  // Before the fix, reconcile ignored the failed list of its halving query: when the query
  // failed (after LatestPositions' own retries), every affected device's newest position was set to undefined: a
  // hydrated device showed no position at all (GET /devices/:id), and its next late record counted as its newest.
  it.live("a failing reconcile query leaves the device's newest position alone", () =>
    Effect.gen(function*() {
      const { control, make } = yield* controllable
      const state = yield* make(10)
      yield* state.update([observed("X", "2026-05-01T09:00:00Z")])
      yield* state.hydrate(["X"])
      // X's 10:00 record conflicts with a stored 10:00 row; the reconcile query fails.
      yield* state.update([observed("X", "2026-05-01T10:00:00Z", 11)])
      control.failing = true
      yield* state.reconcile([{ deviceId: "X", ms: Date.parse("2026-05-01T10:00:00Z") }])
      control.failing = false
      // Still 10:00 (speed 11: the table's row could not be read), not "nothing stored".
      expect(isoOf(yield* newestOf(state, "X"))).toBe("2026-05-01T10:00:00.000Z")
    }))

  it.live("after a failed reconcile, a late record is not taken as the device's newest", () =>
    Effect.gen(function*() {
      const { control, make, table } = yield* controllable
      const state = yield* make(10)
      table.set("X", stored("X", "2026-05-01T10:00:00Z", 22))
      yield* state.update([observed("X", "2026-05-01T10:00:00Z", 11)])
      yield* state.hydrate(["X"])
      control.failing = true
      yield* state.reconcile([{ deviceId: "X", ms: Date.parse("2026-05-01T10:00:00Z") }])
      control.failing = false
      const summary = yield* state.update([observed("X", "2026-05-01T09:30:00Z")])
      // Late, and the newest stays 10:00 (before the fix: not late, 09:30 as the newest).
      expect(summary.late).toBe(1)
      expect(isoOf(yield* newestOf(state, "X"))).toBe("2026-05-01T10:00:00.000Z")
    }))

  it.live("a newer record arriving during hydration stands; an older one gives way to the stored row", () =>
    Effect.gen(function*() {
      const { control, make, started, table } = yield* controllable
      const state = yield* make(10)
      table.set("X", stored("X", "2026-05-01T10:05:00Z"))
      table.set("Y", stored("Y", "2026-05-01T10:05:00Z"))
      yield* state.update([observed("X", "2026-05-01T10:00:00Z"), observed("Y", "2026-05-01T10:00:00Z")])
      control.hold = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(state.hydrate(["X", "Y"]))
      yield* Queue.take(started)
      yield* state.update([observed("X", "2026-05-01T10:10:00Z"), observed("Y", "2026-05-01T10:03:00Z")])
      yield* Deferred.succeed(control.hold, undefined)
      control.hold = undefined
      yield* Fiber.join(reader)
      expect(isoOf(yield* newestOf(state, "X"))).toBe("2026-05-01T10:10:00.000Z")
      expect(isoOf(yield* newestOf(state, "Y"))).toBe("2026-05-01T10:05:00.000Z")
      expect(control.queries).toBe(1)
    }))

  it.live("reconcile during a hydration query: both land on the table's rows, never on the refused record", () =>
    Effect.gen(function*() {
      const { control, make, started, table } = yield* controllable
      const state = yield* make(10)
      table.set("X", stored("X", "2026-05-01T10:00:00Z", 22))
      yield* state.update([observed("X", "2026-05-01T10:00:00Z", 11)])
      control.hold = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(state.get("X"))
      yield* Queue.take(started)
      const reconciler = yield* Effect.fork(state.reconcile([{ deviceId: "X", ms: Date.parse("2026-05-01T10:00:00Z") }]))
      yield* Queue.take(started)
      yield* Deferred.succeed(control.hold, undefined)
      control.hold = undefined
      const view = yield* Fiber.join(reader)
      yield* Fiber.join(reconciler)
      // get's copy was taken after its own query: 10:00, whichever of the two rows it shows at that moment.
      expect(isoOf(Option.getOrThrow(view).last_position)).toBe("2026-05-01T10:00:00.000Z")
      expect((yield* newestOf(state, "X"))?.speed).toBe(22)
    }))

  it.live("copies from get never change: not by updates, hydration, reconcile or eviction", () =>
    Effect.gen(function*() {
      const { make, table } = yield* controllable
      const state = yield* make(2)
      table.set("X", stored("X", "2026-05-01T10:05:00Z", 5))
      yield* state.update([observed("X", "2026-05-01T10:00:00Z", 1)])
      const views = [Option.getOrThrow(yield* state.get("X"))]
      const snapshot = (v: (typeof views)[number]) => JSON.stringify(v)
      const before = [snapshot(views[0]!)]
      yield* state.update([observed("X", "2026-05-01T10:06:00Z", 2)])
      views.push(Option.getOrThrow(yield* state.get("X")))
      before.push(snapshot(views[1]!))
      yield* state.update([observed("X", "2026-05-01T10:07:00Z", 3)])
      table.set("X", stored("X", "2026-05-01T10:07:00Z", 4))
      yield* state.reconcile([{ deviceId: "X", ms: Date.parse("2026-05-01T10:07:00Z") }])
      yield* state.update([observed("A", "2026-05-01T10:00:00Z"), observed("B", "2026-05-01T10:00:00Z")])
      yield* state.update([observed("X", "2026-05-01T10:08:00Z", 6)])
      expect(views.map(snapshot)).toEqual(before)
      expect(views.map((v) => v.last_position?.speed)).toEqual([5, 2])
    }))
})
