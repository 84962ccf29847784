import { Effect, Layer } from "effect"
import { Redis } from "./consumer/Redis.js"
import * as RedisConsumer from "./consumer/RedisConsumer.js"
import * as Http from "./http/Http.js"
import { drainable, Health } from "./observability/Health.js"
import * as Heartbeat from "./observability/Heartbeat.js"
import * as Sampler from "./observability/Sampler.js"
import * as Telemetry from "./observability/Telemetry.js"
import * as Pipeline from "./pipeline/Pipeline.js"
import { migrate } from "./postgres/Migrations.js"
import * as Retention from "./retention/Retention.js"
import { awaitReachable, Pg } from "./postgres/Pg.js"
import { DeviceState } from "./state/DeviceState.js"
import { LatestPositions } from "./state/LatestPositions.js"
import { Writer } from "./writer/Writer.js"

// The worker's composition, shared by main.ts and the integration tests. It needs ProcessorConfig and
// whatever logger the caller chooses.

export const Infrastructure = Layer.merge(Pg.sqlLayer.pipe(Layer.provideMerge(Pg.layer)), Redis.layerConfig)

// Device state exists from the start (it does no I/O until the first records) so /devices can read it;
// /devices also reads stored rows for devices not in memory.
const State = DeviceState.layer.pipe(Layer.provideMerge(LatestPositions.layer))

// The HTTP server and the gauge sampler live as long as the worker: up before the migrations (probes
// answer during a slow start), closed after the pipeline has drained.
const Operations = Layer.mergeAll(Http.layer, Sampler.layer, Heartbeat.layer, Retention.layer).pipe(Layer.provideMerge(Layer.merge(State, Health.layer)))

// Built after the migrations: creating the consumer group is the first stream activity.
export const Processing = Layer.merge(RedisConsumer.layer, Writer.layer)

export const run = Effect.gen(function*() {
  yield* awaitReachable
  yield* Effect.logInfo("Redis connected")
  yield* migrate
  const health = yield* Health
  yield* Effect.zipRight(health.setStatus("running"), Pipeline.run).pipe(Effect.provide(Processing))
}).pipe(
  drainable,
  Effect.provide(Operations),
  Effect.provide(Infrastructure),
  // Outermost: metrics and the tracer cover everything, and the last spans are flushed after the rest stops.
  Effect.provide(Telemetry.layer),
  (inner) => Effect.zipRight(Effect.logInfo("processor starting"), inner),
  Effect.onInterrupt(() => Effect.logInfo("processor stopped"))
)
