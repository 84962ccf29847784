import { Context, Data, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Runtime } from "effect"
import { ProcessorConfig } from "../config/Config.js"
import { ExitCode } from "../ExitCode.js"
import { Health } from "../observability/Health.js"

export interface ShutdownService {
  /** Completes once a stop is requested; the pipeline stops reading then (Pipeline.run). */
  readonly requested: Effect.Effect<void>
  readonly request: Effect.Effect<void>
}

/** The stop request. Without the layer (unit tests of the pipeline) a stop is never requested. */
export class Shutdown extends Context.Reference<Shutdown>()("processor/Shutdown", {
  defaultValue: (): ShutdownService => ({ requested: Effect.never, request: Effect.void })
}) {
  static readonly make = Effect.map(Deferred.make<void>(), (stop): ShutdownService => ({
    requested: Deferred.await(stop),
    request: Deferred.succeed(stop, undefined)
  }))

  static readonly layer = Layer.effect(Shutdown, Shutdown.make)
}

/** Draining took longer than SHUTDOWN_TIMEOUT_MS: the worker exits 1, naming what stays pending. */
export class DrainTimeout extends Data.TaggedError("DrainTimeout")<{
  readonly timeout: Duration.Duration
  /** This consumer's pending entries when it gave up; none when they could not be counted. */
  readonly pending: Option.Option<number>
}> {
  readonly exitCode = ExitCode.failure
  override get message() {
    const pending = Option.match(this.pending, {
      onNone: () => "an unknown number of entries (Redis did not answer)",
      onSome: (n) => `${n} entries`
    })
    return `draining did not finish within SHUTDOWN_TIMEOUT_MS (${Duration.toMillis(this.timeout)} ms); ${pending} stay pending, to be read again by the next worker with this consumer name or reclaimed after CLAIM_IDLE_MS`
  }
}

// Until the returned function is called, SIGTERM/SIGINT are ignored; the first one is logged, through the
// worker's own logger (`log` forks on the caller's runtime, as the Redis connection's event handlers do).
const ignoreRepeatedSignals = (log: (effect: Effect.Effect<void>) => unknown): () => void => {
  let told = false
  const ignore = (signal: NodeJS.Signals) => {
    if (told) return
    told = true
    log(Effect.logWarning(`${signal} ignored: already draining (bounded by SHUTDOWN_TIMEOUT_MS)`))
  }
  process.on("SIGTERM", ignore)
  process.on("SIGINT", ignore)
  return () => {
    process.off("SIGTERM", ignore)
    process.off("SIGINT", ignore)
  }
}

/**
 * Runs the pipeline until it ends by itself or the caller is interrupted (what SIGTERM/SIGINT do to the
 * main fiber). On interruption it does not interrupt the pipeline: readiness turns "draining", the stop is
 * requested so that reading stops, and what was read goes through every stage (state, write, ack or dead
 * letter) until the pipeline's stream ends. If that takes longer than SHUTDOWN_TIMEOUT_MS it logs one line
 * with this consumer's pending entries (counted by `pending`, bounded to a second) and dies with
 * DrainTimeout (exit code 1).
 */
export const runUntilStopped = <A, E, R, R2>(pipeline: Effect.Effect<A, E, R>, pending: Effect.Effect<number, unknown, R2>) =>
  Effect.gen(function*() {
    const shutdown = yield* Shutdown
    const health = yield* Health
    const { shutdownTimeout } = yield* ProcessorConfig

    const drain = (fiber: Fiber.RuntimeFiber<A, E>) =>
      Effect.gen(function*() {
        // Interruptible: this runs after an interruption, and a wait that cannot be interrupted ignores its timeout.
        const drained = yield* Effect.interruptible(Fiber.await(fiber)).pipe(Effect.timeoutOption(shutdownTimeout))
        if (Option.isSome(drained)) {
          yield* Effect.logInfo("drained: every entry read was written and acknowledged or dead-lettered")
          return yield* drained.value
        }
        // A batch in flight is uninterruptible; it is abandoned (its entries stay pending), not awaited.
        yield* Fiber.interruptFork(fiber)
        const left = yield* Effect.interruptible(pending).pipe(Effect.timeoutOption("1 second"), Effect.orElseSucceed(Option.none<number>))
        // Logged here and carried as a defect: once the fiber is interrupted, Effect strips typed failures
        // from the cause on their way out (only defects and the interruption reach runMain's teardown).
        const timeout = new DrainTimeout({ timeout: shutdownTimeout, pending: left })
        yield* Effect.logFatal(timeout.message)
        return yield* Effect.die(timeout)
      })

    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        // A daemon: an interruption of this fiber reaches its children at once, and the pipeline must
        // rather see the stop request and finish what it read.
        const fiber = yield* Effect.forkDaemon(restore(pipeline))
        yield* health.setStatus("running")
        const ended = yield* Effect.exit(restore(Fiber.await(fiber)))
        // The pipeline ended by itself (a failure: it reads for ever otherwise).
        if (Exit.isSuccess(ended)) return yield* ended.value

        yield* health.setStatus("draining")
        yield* shutdown.request
        yield* Effect.logInfo("stop requested: reading stopped; writing and acknowledging what was read")
        // runMain listens for the first SIGTERM/SIGINT only; a second one (a process-group kill, `timeout`, tini -g,
        // Ctrl-C twice) would end the process mid-drain. The drain is bounded by SHUTDOWN_TIMEOUT_MS anyway.
        const stopIgnoring = ignoreRepeatedSignals(Runtime.runFork(yield* Effect.runtime<never>()))
        return yield* drain(fiber).pipe(Effect.ensuring(Effect.sync(stopIgnoring)))
      })
    ).pipe(Effect.ensuring(health.setStatus("stopped")))
  })
