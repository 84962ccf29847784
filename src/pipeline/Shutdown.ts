import { Duration, Effect } from "effect"
import { ProcessorConfig } from "../config/Config.js"

/**
 * The backstop: once SIGTERM or SIGINT arrives, the process exits non-zero after SHUTDOWN_TIMEOUT_MS even if
 * draining hangs. (The runtime turns the signal into an interruption of the main fiber; this only bounds it.)
 */
export const backstop = Effect.gen(function*() {
  const { shutdownTimeout } = yield* ProcessorConfig
  const ms = Duration.toMillis(shutdownTimeout)
  const onSignal = (signal: NodeJS.Signals) => {
    setTimeout(() => {
      process.stderr.write(`${JSON.stringify({ level: "FATAL", message: `shutdown did not finish within ${ms} ms after ${signal}; exiting` })}\n`)
      process.exit(1)
    }, ms).unref()
  }
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      process.once("SIGTERM", onSignal)
      process.once("SIGINT", onSignal)
    }),
    () => Effect.void
  )
})
