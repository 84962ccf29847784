import { Effect, Layer } from "effect"
import { Redis } from "./consumer/Redis.js"
import * as RedisConsumer from "./consumer/RedisConsumer.js"
import * as Pipeline from "./pipeline/Pipeline.js"
import { migrate } from "./postgres/Migrations.js"
import { awaitReachable, Pg } from "./postgres/Pg.js"
import { DeviceState } from "./state/DeviceState.js"
import { LatestPositions } from "./state/LatestPositions.js"
import { Writer } from "./writer/Writer.js"

// The worker's composition, shared by main.ts and the integration tests. It needs ProcessorConfig and
// whatever logger the caller chooses.

export const Infrastructure = Layer.merge(Pg.sqlLayer.pipe(Layer.provideMerge(Pg.layer)), Redis.layerConfig)

// Built after the migrations: creating the consumer group is the first stream activity.
export const Processing = Layer.mergeAll(
  RedisConsumer.layer,
  DeviceState.layer.pipe(Layer.provide(LatestPositions.layer)),
  Writer.layer
)

export const run = Effect.gen(function*() {
  yield* awaitReachable
  yield* Effect.logInfo("Redis connected")
  yield* migrate
  yield* Pipeline.run.pipe(Effect.provide(Processing))
}).pipe(
  Effect.provide(Infrastructure),
  (inner) => Effect.zipRight(Effect.logInfo("processor starting"), inner),
  Effect.onInterrupt(() => Effect.logInfo("processor stopped"))
)
