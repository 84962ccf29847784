import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Option } from "effect"
import { ProcessorConfig } from "./config/Config.js"
import { teardown } from "./ExitCode.js"
import * as Logging from "./observability/Logging.js"
import * as Worker from "./Worker.js"

// Why the worker stopped, as one line: the message of the failure that carries the exit code, or the
// cause of a defect. A stop on request (interruption alone) is logged by the worker itself.
const report = (cause: Cause.Cause<unknown>) => {
  // After an interruption (a stop request) the worker logs its own end: see runUntilStopped.
  if (Cause.isInterrupted(cause)) return Effect.void
  const failure = Cause.failureOption(cause)
  const message = Option.isSome(failure) && failure.value instanceof Error ? failure.value.message : undefined
  return message !== undefined ? Effect.logFatal(message) : Effect.logFatal("stopped by an unexpected failure", cause)
}

// Composition only: configuration, then the logger it configures, then the worker (Worker.ts lists what
// starts before what). The exit code comes from runMain's teardown (ExitCode.ts), not from here.
NodeRuntime.runMain(
  Worker.run.pipe(
    Effect.tapErrorCause(report),
    Effect.provide(Logging.layer),
    Effect.provide(ProcessorConfig.layer),
    // No logger without a configuration: the one line goes to stderr as it is. It names the variable, never its value.
    Effect.tapErrorTag("ConfigInvalid", (error) => Console.error(error.message))
  ),
  { disablePrettyLogger: true, disableErrorReporting: true, teardown }
)
