import * as HttpApp from "@effect/platform/HttpApp"
import { describe, expect, it } from "@effect/vitest"
import { type Context, Effect, Layer, Metric, TestClock } from "effect"
import * as Http from "../src/http/Http.js"
import { Health, type Liveness, type Readiness } from "../src/observability/Health.js"
import * as Metrics from "../src/observability/Metrics.js"
import { Progress, stall } from "../src/observability/Progress.js"
import { Prometheus } from "../src/observability/Telemetry.js"
import { DeviceState } from "../src/state/DeviceState.js"
import { LatestPositions } from "../src/state/LatestPositions.js"
import { configLayer } from "./support/testConfig.js"

// Readiness and liveness from the pipeline's progress, on the TestClock: 30 s without progress while work
// waits makes the worker unready, 120 s makes it dead (restart it); no work waiting is never a stall.

const ok = Effect.void
const layer = Health.layer.pipe(Layer.provideMerge(Progress.layer))

const running = Effect.gen(function*() {
  const health = yield* Health
  yield* health.attach({ redis: ok, postgres: ok })
  yield* health.setStatus("running")
  return { health, progress: yield* Progress }
})

describe("stall", () => {
  const at = (lastRead: number, lastWritten: number, inFlight: number) => ({ lastRead, lastWritten, inFlight })

  it("is no stall while nothing waits, however long ago the last read and write were", () => {
    expect(stall(at(0, 0, 0), 0, 3_600_000, 30_000)).toBeUndefined()
  })

  it("names a writer that has had records for longer than the limit", () => {
    expect(stall(at(40_000, 0, 12), 0, 40_000, 30_000)).toBe("no batch written for 40 s while 12 records wait for the writer")
    expect(stall(at(40_000, 20_000, 12), 0, 40_000, 30_000)).toBeUndefined()
  })

  it("names a read loop that has not read for longer than the limit while entries wait unread", () => {
    expect(stall(at(0, 0, 0), 500, 31_000, 30_000)).toBe("no read for 31 s while 500 entries wait unread")
    expect(stall(at(29_000, 0, 0), 500, 31_000, 30_000)).toBeUndefined()
  })
})

describe("Health", () => {
  it.effect("before start-up has connected: not ready, alive, naming what it waits for", () =>
    Effect.gen(function*() {
      const health = yield* Health
      yield* health.note("postgres", "waiting: ECONNREFUSED")
      expect(yield* health.readiness).toEqual({
        ready: false,
        checks: { redis: "connecting", postgres: "waiting: ECONNREFUSED", consumer: "starting" }
      })
      expect(yield* health.liveness).toEqual({ alive: true, status: "ok" })
    }).pipe(Effect.provide(layer)))

  it.effect("a writer without progress: unready after 30 s, dead after 120 s, fine again once it writes", () =>
    Effect.gen(function*() {
      yield* Metric.set(Metrics.groupLag, 0)
      const { health, progress } = yield* running
      expect((yield* health.readiness).ready).toBe(true)

      // Idle for an hour: no work, no stall.
      yield* TestClock.adjust("1 hour")
      expect((yield* health.readiness).ready).toBe(true)

      // Records arrive; the writer's clock starts now, not at its last write an hour ago.
      yield* progress.markRead
      yield* progress.markQueued(40)
      expect((yield* health.readiness).ready).toBe(true)
      yield* TestClock.adjust("31 seconds")
      const unready = yield* health.readiness
      expect(unready.ready).toBe(false)
      expect(unready.checks.consumer).toBe("stalled: no batch written for 31 s while 40 records wait for the writer")
      expect((yield* health.liveness).alive).toBe(true)

      yield* TestClock.adjust("90 seconds")
      expect(yield* health.liveness).toEqual({ alive: false, status: "stuck: no batch written for 121 s while 40 records wait for the writer" })

      yield* progress.markWritten(40)
      expect((yield* health.readiness).ready).toBe(true)
      expect((yield* health.liveness).alive).toBe(true)
    }).pipe(Effect.provide(layer)))

  it.effect("a read loop without progress while the group has unread entries", () =>
    Effect.gen(function*() {
      const { health, progress } = yield* running
      yield* Metric.set(Metrics.groupLag, 250)
      yield* TestClock.adjust("29 seconds")
      expect((yield* health.readiness).ready).toBe(true)
      yield* TestClock.adjust("2 seconds")
      expect((yield* health.readiness).checks.consumer).toBe("stalled: no read for 31 s while 250 entries wait unread")
      yield* progress.markRead
      expect((yield* health.readiness).ready).toBe(true)
      yield* Metric.set(Metrics.groupLag, 0)
    }).pipe(Effect.provide(layer)))

  it.effect("draining: unready ('draining') but alive however long it takes; a failing server check is named", () =>
    Effect.gen(function*() {
      const health = yield* Health
      yield* health.attach({ redis: ok, postgres: Effect.fail({ message: "SELECT 1: password authentication failed (SQLSTATE 28P01)" }) })
      yield* health.setStatus("draining")
      const progress = yield* Progress
      yield* progress.markQueued(5)
      yield* TestClock.adjust("10 minutes")
      expect(yield* health.readiness).toEqual({
        ready: false,
        checks: { redis: "ok", postgres: "error: SELECT 1: password authentication failed (SQLSTATE 28P01)", consumer: "draining" }
      })
      expect((yield* health.liveness).alive).toBe(true)
    }).pipe(Effect.provide(layer)))
})

describe("the probe routes", () => {
  const answer = (health: Context.Tag.Service<typeof Health>) =>
    Effect.gen(function*() {
      const app = yield* Http.router
      const handler = HttpApp.toWebHandler(app)
      const call = (path: string) =>
        Effect.promise(async () => {
          const response = await handler(new Request(`http://probe${path}`))
          return { status: response.status, body: await response.json() as unknown }
        })
      return { healthz: yield* call("/healthz"), readyz: yield* call("/readyz") }
    }).pipe(
      Effect.provide(Layer.mergeAll(
        Layer.succeed(Health, health),
        Prometheus.layer,
        DeviceState.layer.pipe(Layer.provideMerge(Layer.succeed(LatestPositions, { latest: () => Effect.succeed(new Map()) })))
      ).pipe(Layer.provideMerge(configLayer()))))

  const fake = (liveness: Liveness, readiness: Readiness): Context.Tag.Service<typeof Health> => ({
    setStatus: () => Effect.void,
    attach: () => Effect.void,
    note: () => Effect.void,
    readiness: Effect.succeed(readiness),
    liveness: Effect.succeed(liveness)
  })

  it.effect("/healthz is 503 naming the stall when the pipeline is stuck with work waiting; /readyz 503 with its checks", () =>
    Effect.gen(function*() {
      const stuck = "stuck: no batch written for 121 s while 40 records wait for the writer"
      const checks = { redis: "ok", postgres: "ok", consumer: "stalled: no batch written for 121 s while 40 records wait for the writer" }
      const replies = yield* answer(fake({ alive: false, status: stuck }, { ready: false, checks }))
      expect(replies.healthz).toEqual({ status: 503, body: { status: stuck } })
      expect(replies.readyz).toEqual({ status: 503, body: { ready: false, checks } })
    }))

  it.effect("/healthz and /readyz are 200 when all is well", () =>
    Effect.gen(function*() {
      const checks = { redis: "ok", postgres: "ok", consumer: "ok" }
      const replies = yield* answer(fake({ alive: true, status: "ok" }, { ready: true, checks }))
      expect(replies.healthz).toEqual({ status: 200, body: { status: "ok" } })
      expect(replies.readyz).toEqual({ status: 200, body: { ready: true, checks } })
    }))
})
