import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import { ProcessorConfig } from "./config/Config.js"
import * as Logging from "./observability/Logging.js"
import { backstop } from "./pipeline/Shutdown.js"
import * as Worker from "./Worker.js"

NodeRuntime.runMain(
  Effect.zipRight(backstop, Worker.run).pipe(
    Effect.scoped,
    Effect.provide(Logging.layer),
    Effect.provide(ProcessorConfig.layer),
    // A bad variable: one line naming it, no stack trace, and a non-zero exit (EX_CONFIG).
    Effect.catchTag("ConfigInvalid", (error) =>
      Effect.sync(() => {
        process.stderr.write(`${error.message}\n`)
        process.exit(78)
      }))
  ),
  { disablePrettyLogger: true }
)
