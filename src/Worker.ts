import { SqlClient } from "@effect/sql"
import { Cause, Effect, Exit, Layer, Ref } from "effect"
import { ProcessorConfig } from "./config/Config.js"
import { call, Redis } from "./consumer/Redis.js"
import * as RedisConsumer from "./consumer/RedisConsumer.js"
import { exitCodeOf } from "./ExitCode.js"
import * as Http from "./http/Http.js"
import { Health } from "./observability/Health.js"
import * as Heartbeat from "./observability/Heartbeat.js"
import { Progress } from "./observability/Progress.js"
import * as Sampler from "./observability/Sampler.js"
import * as Telemetry from "./observability/Telemetry.js"
import * as Pipeline from "./pipeline/Pipeline.js"
import { runUntilStopped, Shutdown } from "./pipeline/Shutdown.js"
import { migrate } from "./postgres/Migrations.js"
import * as Retention from "./retention/Retention.js"
import { awaitReachable, orPgError, Pg } from "./postgres/Pg.js"
import { DeviceState } from "./state/DeviceState.js"
import { LatestPositions } from "./state/LatestPositions.js"
import { Writer } from "./writer/Writer.js"

// The worker's start and stop, in one place. Each step below is built after the ones above it and released
// before them, so stopping is this list read upwards. It needs ProcessorConfig and whatever logger the
// caller chooses (main.ts, or the integration tests).

/** `prev` is built first and feeds `next`; both are the result's outputs. */
const then = <ROut2, E2, RIn2>(next: Layer.Layer<ROut2, E2, RIn2>) => <ROut, E, RIn>(prev: Layer.Layer<ROut, E, RIn>) =>
  Layer.provideMerge(next, prev)

// Refusals that a running worker cannot cure by retrying (credentials revoked, database dropped): readiness
// names them, and they are logged at error once each time they appear.
const REFUSALS = /^(28|3D)/

// The servers' readiness checks, once their clients exist.
const Probes = Layer.effectDiscard(Effect.gen(function*() {
  const health = yield* Health
  const { client } = yield* Redis
  const sql = yield* SqlClient.SqlClient
  const refused = yield* Ref.make<string | undefined>(undefined)
  yield* health.attach({
    // While the commands connection is down ioredis would queue the PING until it is back: report it as it is.
    redis: Effect.suspend(() => client.status === "ready" ? call("PING", () => client.ping()) : Effect.fail({ message: `connection ${client.status}` })),
    // Disconnected: the check answers within Health's second even when cancelling a stuck SELECT 1 takes longer.
    // Untraced: probes come every few seconds and say nothing a trace needs.
    postgres: Effect.disconnect(sql`SELECT 1`).pipe(
      orPgError("SELECT 1"),
      Effect.tapBoth({
        onFailure: (error) => {
          const state = error.sqlstate !== undefined && REFUSALS.test(error.sqlstate) ? error.sqlstate : undefined
          return Effect.flatMap(Ref.getAndSet(refused, state), (before) =>
            state !== undefined && before !== state ? Effect.logError(`PostgreSQL refuses the worker: ${error.message}`) : Effect.void)
        },
        onSuccess: () => Ref.set(refused, undefined)
      }),
      Effect.withTracerEnabled(false)
    )
  })
}))

export const layer = Telemetry.layer.pipe(
  // 1. Metrics and the tracer cover everything; the last spans are flushed after the rest has stopped.
  // 2. The stop request, the pipeline's progress and health: no I/O.
  then(Layer.mergeAll(Shutdown.layer, Progress.layer)),
  then(Health.layer),
  // 3. The pool (no connection yet) and device state (no query until records come: /devices reads it).
  then(Pg.layer),
  then(DeviceState.layer.pipe(Layer.provideMerge(LatestPositions.layer))),
  // 4. The HTTP server: probes answer from here on, while the worker waits for the servers and while it
  //    drains; it closes after the server connections.
  then(Http.layer),
  // 5. PostgreSQL answers, or the worker stops (refused credentials, missing database, a minute without answer).
  then(Layer.effectDiscard(awaitReachable)),
  // 6. Redis: both connections, waited for likewise.
  then(Redis.layerConfig),
  // 7. Readiness checks the servers; the gauges are sampled; the minute's log line; stream retention.
  then(Layer.mergeAll(Probes, Sampler.layer, Heartbeat.layer, Retention.layer)),
  // 8. The schema.
  then(Layer.effectDiscard(migrate)),
  // 9. Creating the consumer group is the first stream activity.
  then(Layer.merge(RedisConsumer.layer, Writer.layer))
)

// This consumer's pending entries (XINFO CONSUMERS), for the line that says what a drain left behind.
const ownPending = Effect.gen(function*() {
  const { client } = yield* Redis
  const { consumer, group, stream } = yield* ProcessorConfig
  const consumers = yield* call("XINFO CONSUMERS", () => client.xinfo("CONSUMERS", stream, group) as Promise<Array<Array<unknown>>>)
  for (const info of consumers) {
    const fields = new Map<unknown, unknown>()
    for (let i = 0; i + 1 < info.length; i += 2) fields.set(info[i], info[i + 1])
    if (fields.get("name") === consumer) return Number(fields.get("pending"))
  }
  return 0
})

/**
 * The worker: the layers above in order, then the pipeline until a stop request (interruption: SIGTERM or
 * SIGINT through runMain) has drained it; then the layers released in reverse. Its failure carries the exit
 * code (ExitCode.ts); an interruption alone is a clean stop.
 */
export const run = runUntilStopped(Pipeline.run, ownPending).pipe(
  Effect.provide(layer),
  (inner) => Effect.zipRight(Effect.logInfo("processor starting"), inner),
  Effect.onExit((exit) =>
    Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) && exitCodeOf(exit) === 0
      ? Effect.logInfo("processor stopped")
      : Effect.void),
  // Every line says which stream, group and consumer it is about, as fields a log search can filter on.
  (inner) => Effect.flatMap(ProcessorConfig, ({ consumer, group, stream }) => Effect.annotateLogs(inner, { stream, group, consumer }))
)
