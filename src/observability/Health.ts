import { Context, Duration, Effect, Fiber, Layer, Ref } from "effect"
import { call, Redis } from "../consumer/Redis.js"
import { Pg } from "../postgres/Pg.js"

/** Where the consumer is in its life: ready only while "running". */
export type ConsumerStatus = "starting" | "running" | "draining" | "stopped"

export interface Readiness {
  readonly ready: boolean
  /** "ok", or what is wrong; never data (no device ids, no positions). */
  readonly checks: { readonly redis: string; readonly postgres: string; readonly consumer: string }
}

const CHECK_TIMEOUT = Duration.seconds(1)

// A check that cannot answer within a second counts as failed: a probe must not hang on a dead connection.
const probe = (effect: Effect.Effect<unknown, { readonly message: string }>) =>
  effect.pipe(
    Effect.timeoutFail({ duration: CHECK_TIMEOUT, onTimeout: () => ({ message: `no answer within ${Duration.format(CHECK_TIMEOUT)}` }) }),
    Effect.match({ onFailure: (error) => `error: ${error.message}`, onSuccess: () => "ok" })
  )

export class Health extends Context.Tag("processor/Health")<Health, {
  readonly setStatus: (status: ConsumerStatus) => Effect.Effect<void>
  /** Redis answers PING, PostgreSQL answers SELECT 1 (each within a second), and the consumer is running. */
  readonly readiness: Effect.Effect<Readiness>
}>() {
  static readonly make = Effect.gen(function*() {
    const { client } = yield* Redis
    const pg = yield* Pg
    const status = yield* Ref.make<ConsumerStatus>("starting")

    // On the commands connection. While it is down ioredis would queue the PING until it is back, so a
    // connection that is not ready is reported as it is instead.
    const redis = Effect.suspend(() =>
      client.status === "ready"
        ? call("PING", () => client.ping())
        : Effect.fail({ message: `connection ${client.status}` })
    )
    const postgres = pg.query("SELECT 1", "SELECT 1")

    const readiness = Effect.all({
      redis: probe(redis),
      postgres: probe(postgres),
      consumer: Effect.map(Ref.get(status), (s) => (s === "running" ? "ok" : s))
    }, { concurrency: "unbounded" }).pipe(
      Effect.map((checks): Readiness => ({ ready: Object.values(checks).every((c) => c === "ok"), checks }))
    )

    return Health.of({ setStatus: (s) => Ref.set(status, s), readiness })
  })

  static readonly layer = Layer.effect(Health, Health.make)
}

/**
 * Runs the pipeline so that shutdown shows before it is over: on interruption (SIGTERM) the consumer is
 * marked "draining" first, so readiness turns 503 at once, and only then is the pipeline interrupted and
 * waited for while its in-flight batches finish. Joined, not detached: its failures are the caller's.
 */
export const drainable = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const health = yield* Health
    const fiber = yield* Effect.fork(self)
    return yield* Fiber.join(fiber).pipe(
      Effect.onInterrupt(() => Effect.zipRight(health.setStatus("draining"), Fiber.interrupt(fiber))),
      Effect.ensuring(health.setStatus("stopped"))
    )
  })
