import { Duration, Effect, Layer, Metric, Schedule } from "effect"
import { ProcessorConfig } from "../config/Config.js"
import { call, Redis } from "../consumer/Redis.js"
import { messageOf } from "../ErrorMessage.js"
import { Pg } from "../postgres/Pg.js"
import { DeviceState } from "../state/DeviceState.js"
import * as Metrics from "./Metrics.js"

export const INTERVAL = Duration.seconds(5)

const field = (reply: ReadonlyArray<unknown>, name: string): unknown => {
  for (let i = 0; i + 1 < reply.length; i += 2) if (reply[i] === name) return reply[i + 1]
  return undefined
}

/**
 * Samples the gauges nobody updates as they change: the consumer group's pending and lag (XINFO GROUPS),
 * the PostgreSQL pool, and the device state's size. Once at start, then every 5 s, until the worker stops.
 * A failed sample is logged and the next one tried: the sampler never dies quietly.
 */
export const run = Effect.gen(function*() {
  const { client } = yield* Redis
  const { pool } = yield* Pg
  const state = yield* DeviceState
  const { stream, group } = yield* ProcessorConfig

  const sampleGroup = call("XINFO GROUPS", () => client.xinfo("GROUPS", stream) as Promise<Array<Array<unknown>>>).pipe(
    Effect.flatMap((groups) => {
      const info = groups.find((g) => field(g, "name") === group)
      if (info === undefined) return Effect.void
      const pending = field(info, "pending")
      // Redis leaves lag empty when it cannot tell (entries deleted from the stream's middle).
      const lag = field(info, "lag")
      return Effect.zipRight(
        typeof pending === "number" ? Metric.set(Metrics.groupPending, pending) : Effect.void,
        typeof lag === "number" ? Metric.set(Metrics.groupLag, lag) : Effect.void
      )
    }),
    // Before the first start the stream does not exist yet.
    Effect.catchIf((error) => messageOf(error.cause).includes("no such key"), () => Effect.void)
  )

  const samplePool = Effect.suspend(() =>
    Effect.all([
      Metric.set(Metrics.pgPoolInUse, pool.totalCount - pool.idleCount),
      Metric.set(Metrics.pgPoolIdle, pool.idleCount),
      Metric.set(Metrics.pgPoolWaiting, pool.waitingCount)
    ], { discard: true })
  )

  const sample = Effect.all([
    // A command sent while the connection is down would queue in ioredis; skip the group gauges instead.
    Effect.suspend(() => (client.status === "ready" ? sampleGroup : Effect.void)),
    samplePool,
    Effect.flatMap(state.size, (n) => Metric.set(Metrics.deviceStateSize, n))
  ], { discard: true }).pipe(Effect.timeout(Duration.subtract(INTERVAL, Duration.seconds(1))))

  yield* sample.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("sampling gauges failed", cause)),
    Effect.repeat(Schedule.spaced(INTERVAL))
  )
}).pipe(Effect.annotateLogs({ service: "sampler" }))

/** The sampler as a fiber of the layer's scope: it stops when the worker does. */
export const layer = Layer.scopedDiscard(Effect.forkScoped(run))
