import { Command, Options } from "@effect/cli"
import { Clock, Console, Effect, Exit, Option, Ref } from "effect"
import { redisSettings } from "../config/Config.js"
import * as Simulation from "../simulate/Simulation.js"
import { connectRedis, Failure, footer, progress, runMain, version } from "./Cli.js"

// pnpm simulate --devices N --rate HZ --duration S [...]: a fleet publishing positions to the stream in real time.

const within = (name: string, valid: (n: number) => boolean, expected: string) =>
  Options.filterMap((n: number) => (valid(n) ? Option.some(n) : Option.none()), `--${name} must be ${expected}`)

const share = (name: string, what: string) =>
  Options.float(name).pipe(
    Options.withPseudoName("SHARE"),
    within(name, (n) => n >= 0 && n < 1, "a share in [0, 1)"),
    Options.withDefault(0),
    Options.withDescription(what)
  )

const options = {
  devices: Options.integer("devices").pipe(
    Options.withPseudoName("N"),
    within("devices", (n) => n >= 1 && n <= 1_000_000, "an integer in 1..1000000"),
    Options.withDescription("Number of simulated trackers (1..1000000).")
  ),
  rate: Options.float("rate").pipe(
    Options.withPseudoName("HZ"),
    within("rate", (n) => n > 0 && n <= 1000, "a number of Hz per device in (0, 1000]"),
    Options.withDescription("Records per second per device, in (0, 1000].")
  ),
  duration: Options.float("duration").pipe(
    Options.withPseudoName("SECONDS"),
    within("duration", (n) => n > 0 && n <= 86_400, "seconds in (0, 86400]"),
    Options.withDescription("Seconds to run, in (0, 86400].")
  ),
  duplicates: share("duplicates", "Share of entries that re-send an earlier record verbatim, in [0, 1); default 0."),
  late: share("late", "Share of records that arrive after a newer one of their device, in [0, 1); default 0."),
  stream: Options.text("stream").pipe(
    Options.withPseudoName("KEY"),
    Options.filterMap((key: string) => (key.trim() === "" ? Option.none() : Option.some(key)), "--stream must be a non-empty key"),
    Options.optional,
    Options.withDescription("Stream key; default REDIS_STREAM (telemetry:t).")
  ),
  seed: Options.integer("seed").pipe(
    Options.withPseudoName("N"),
    Options.withDefault(1),
    Options.withDescription("Seed of the generator: the same seed, devices and timing give the same records.")
  ),
  quiet: Options.boolean("quiet").pipe(
    Options.withAlias("q"),
    Options.withDescription("No progress line on stderr.")
  )
}

const simulate = Command.make("simulate", options, (parsed) =>
  Effect.gen(function*() {
    const redisConfig = yield* redisSettings
    const settings: Simulation.SimulationOptions = {
      ...parsed,
      stream: Option.getOrElse(parsed.stream, () => redisConfig.stream)
    }
    const redis = yield* connectRedis(redisConfig.redisUrl, { reconnect: true })
    const tally = yield* Ref.make(Simulation.emptyTally(yield* Clock.currentTimeMillis))

    const since = yield* Ref.make({ atMs: 0, sent: 0 })
    const line = Effect.gen(function*() {
      const [now, current] = [yield* Clock.currentTimeMillis, yield* Ref.get(tally)]
      const previous = yield* Ref.getAndSet(since, { atMs: now, sent: current.sent })
      return Simulation.progressLine(current, now, previous.atMs === 0 ? { atMs: current.startedAt, sent: 0 } : previous, settings)
    })

    const work = Effect.gen(function*() {
      if (!parsed.quiet) yield* progress(line)
      yield* Simulation.run(redis, settings, tally)
    }).pipe(Effect.scoped)

    // The summary goes to stdout however the run ends: done, Redis failing (exit 1) or interrupted (exit 130).
    yield* work.pipe(
      Effect.onExit((exit) =>
        Effect.gen(function*() {
          const text = Simulation.summary(yield* Ref.get(tally), yield* Clock.currentTimeMillis, settings)
          const suffix = Exit.isSuccess(exit) ? "" : Exit.isInterrupted(exit) ? " (interrupted)" : " (stopped: Redis failed)"
          yield* Console.log(`${text}${suffix}`)
        })
      ),
      Effect.catchTag("PublishError", (error) => new Failure({ message: `${error.message}; ${error.published} sent in the failed run` }))
    )
  }).pipe(Effect.scoped)).pipe(
  Command.withDescription(
    "Publish simulated GPS positions to the Redis stream in real time: DEVICES × RATE records a second for DURATION " +
      "seconds, with the resends and late bursts real trackers produce. Progress (count and rate) on stderr every " +
      "second; a summary line on stdout at the end, also when Redis fails or the run is interrupted."
  )
)

const cli = Command.run(simulate, {
  name: "simulate",
  version,
  footer: footer(["REDIS_URL (default redis://127.0.0.1:6379), REDIS_STREAM (default telemetry:t)."])
})

runMain("simulate", cli(process.argv))
