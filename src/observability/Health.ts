import { Clock, Context, Duration, Effect, Layer, Metric, Option, Ref } from "effect"
import * as Metrics from "./Metrics.js"
import { Progress, stall } from "./Progress.js"

/** Where the consumer is in its life: ready only while "running" (and not stalled). */
export type ConsumerStatus = "starting" | "running" | "draining" | "stopped"

export interface Readiness {
  readonly ready: boolean
  /** "ok", or what is wrong; never data (no device ids, no positions). */
  readonly checks: { readonly redis: string; readonly postgres: string; readonly consumer: string }
}

export interface Liveness {
  readonly alive: boolean
  /** "ok", or why the worker should be restarted. */
  readonly status: string
}

/** A server check: succeeds when the server answers; fails with a message that names no data. */
export type Check = Effect.Effect<unknown, { readonly message: string }>

export type Server = "redis" | "postgres"

export interface HealthOptions {
  /** /readyz turns 503 when the pipeline has made no progress this long while work waits. */
  readonly readyStall: Duration.DurationInput
  /** /healthz turns 503 (restart me) when the pipeline has made no progress this long while work waits. */
  readonly liveStall: Duration.DurationInput
}

/**
 * 30 s: a healthy worker with work reads within READ_BLOCK_MS and writes a batch within seconds.
 * 120 s: past the pool's statement (60 s) and query (65 s) timeouts, so a stuck statement is given up and
 * retried before the worker is declared dead.
 */
export const defaultOptions: HealthOptions = { readyStall: "30 seconds", liveStall: "120 seconds" }

const CHECK_TIMEOUT = Duration.seconds(1)

// A check that cannot answer within a second counts as failed: a probe must not hang on a dead connection.
const probe = (effect: Check) =>
  effect.pipe(
    Effect.timeoutFail({ duration: CHECK_TIMEOUT, onTimeout: () => ({ message: `no answer within ${Duration.format(CHECK_TIMEOUT)}` }) }),
    Effect.match({ onFailure: (error) => `error: ${error.message}`, onSuccess: () => "ok" })
  )

// The group's lag as last sampled (Sampler.ts, XINFO GROUPS every 5 s): entries nobody has read yet.
const unread = Effect.map(Metric.value(Metrics.groupLag), (state) => state.value)

export class Health extends Context.Tag("processor/Health")<Health, {
  readonly setStatus: (status: ConsumerStatus) => Effect.Effect<void>
  /** The server checks, once the clients exist. Until then readiness reports what `note` said, or "connecting". */
  readonly attach: (checks: Readonly<Record<Server, Check>>) => Effect.Effect<void>
  /** What start-up is waiting for on a server ("waiting: ECONNREFUSED"), shown by readiness until `attach`. */
  readonly note: (server: Server, text: string) => Effect.Effect<void>
  /** Redis answers PING, PostgreSQL answers SELECT 1 (each within a second), and the consumer runs and progresses. */
  readonly readiness: Effect.Effect<Readiness>
  /** Alive unless the running pipeline has made no progress for the liveness limit while work waits. */
  readonly liveness: Effect.Effect<Liveness>
}>() {
  static readonly make = (options: HealthOptions = defaultOptions) =>
    Effect.gen(function*() {
      const progress = yield* Progress
      const status = yield* Ref.make<ConsumerStatus>("starting")
      const checks = yield* Ref.make<Option.Option<Readonly<Record<Server, Check>>>>(Option.none())
      const notes = yield* Ref.make<Readonly<Record<Server, string>>>({ redis: "connecting", postgres: "connecting" })
      const readyMs = Duration.toMillis(options.readyStall)
      const liveMs = Duration.toMillis(options.liveStall)

      const stalled = (limitMs: number) =>
        Effect.all([progress.snapshot, unread, Clock.currentTimeMillis]).pipe(
          Effect.map(([snapshot, lag, now]) => stall(snapshot, lag, now, limitMs))
        )

      const consumer = Effect.flatMap(Ref.get(status), (s) =>
        s !== "running" ? Effect.succeed(s) : Effect.map(stalled(readyMs), (reason) => (reason === undefined ? "ok" : `stalled: ${reason}`)))

      const servers = Effect.flatMap(Ref.get(checks), Option.match({
        onNone: () => Ref.get(notes),
        onSome: (c) => Effect.all({ redis: probe(c.redis), postgres: probe(c.postgres) }, { concurrency: "unbounded" })
      }))

      const readiness = Effect.all([servers, consumer], { concurrency: "unbounded" }).pipe(
        Effect.map(([{ postgres, redis }, consumer]): Readiness => {
          const all = { redis, postgres, consumer }
          return { ready: Object.values(all).every((c) => c === "ok"), checks: all }
        })
      )

      const liveness = Effect.flatMap(Ref.get(status), (s) =>
        s !== "running"
          ? Effect.succeed<Liveness>({ alive: true, status: "ok" })
          : Effect.map(stalled(liveMs), (reason): Liveness =>
            reason === undefined ? { alive: true, status: "ok" } : { alive: false, status: `stuck: ${reason}` }))

      return Health.of({
        setStatus: (s) => Ref.set(status, s),
        attach: (c) => Ref.set(checks, Option.some(c)),
        note: (server, text) => Ref.update(notes, (n) => ({ ...n, [server]: text })),
        readiness,
        liveness
      })
    })

  /** Needs Progress: provide Progress.layer first (its default records nothing, so nothing would ever stall). */
  static readonly layer = Layer.effect(Health, Health.make())
}
