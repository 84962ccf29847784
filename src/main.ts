import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { ConfigInvalid, ProcessorConfig } from "./config/Config.js"
import { Redis } from "./consumer/Redis.js"
import * as RedisConsumer from "./consumer/RedisConsumer.js"
import * as Logging from "./observability/Logging.js"
import * as Pipeline from "./pipeline/Pipeline.js"
import { backstop } from "./pipeline/Shutdown.js"
import { migrate } from "./postgres/Migrations.js"
import { awaitReachable, Pg } from "./postgres/Pg.js"
import { DeviceState } from "./state/DeviceState.js"
import { LatestPositions } from "./state/LatestPositions.js"
import { Writer } from "./writer/Writer.js"

const Infrastructure = Layer.merge(Pg.sqlLayer.pipe(Layer.provideMerge(Pg.layer)), Redis.layerConfig)

// Built after the migrations: creating the consumer group is the first stream activity.
const Processing = Layer.mergeAll(
  RedisConsumer.layer,
  DeviceState.layer.pipe(Layer.provide(LatestPositions.layer)),
  Writer.layer
)

const program = Effect.gen(function*() {
  yield* backstop
  yield* awaitReachable
  yield* Effect.logInfo("Redis connected")
  yield* migrate
  yield* Pipeline.run.pipe(Effect.provide(Processing))
}).pipe(
  Effect.scoped,
  Effect.provide(Infrastructure),
  (inner) => Effect.zipRight(Effect.logInfo("processor starting"), inner),
  Effect.onInterrupt(() => Effect.logInfo("processor stopped")),
  Effect.provide(Logging.layer),
  Effect.provide(ProcessorConfig.layer)
)

NodeRuntime.runMain(
  program.pipe(
    Effect.catchTag("ConfigInvalid", (error: ConfigInvalid) =>
      Effect.sync(() => {
        process.stderr.write(`${error.message}\n`)
        process.exit(78)
      }))
  ),
  { disablePrettyLogger: true }
)
