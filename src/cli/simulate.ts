import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Clock, Config, Console, Data, Effect, Exit, Option, Redacted } from "effect"
import { Redis } from "ioredis"
import { parseArgs } from "node:util"
import type { Reading } from "../simulate/Device.js"
import { drain, emit, makeFleet } from "../simulate/Fleet.js"
import { makePayloadEncoder } from "../simulate/Payload.js"
import { publish } from "../simulate/Publish.js"

class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

class RedisError extends Data.TaggedError("RedisError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `redis: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

const USAGE = "usage: simulate --devices N --rate HZ --duration S [--duplicates 0.01] [--late 0.02] " +
  "[--stream KEY] [--seed 1]"
const BATCH_SIZE = 1000
// Waking at most every 10 ms keeps batches (and pipelines) large at high rates.
const MIN_TICK_MS = 10

interface Options {
  readonly devices: number
  readonly rate: number
  readonly duration: number
  readonly duplicates: number
  readonly late: number
  readonly seed: number
  readonly stream: string | undefined
}

const number = (
  raw: string | undefined,
  flag: string,
  valid: (n: number) => boolean,
  expected: string,
  fallback?: number
): Effect.Effect<number, UsageError> => {
  if (raw === undefined) {
    return fallback === undefined
      ? Effect.fail(new UsageError({ message: `--${flag} is required (${expected}); ${USAGE}` }))
      : Effect.succeed(fallback)
  }
  const n = raw.trim() === "" ? Number.NaN : Number(raw)
  return valid(n)
    ? Effect.succeed(n)
    : Effect.fail(new UsageError({ message: `--${flag} must be ${expected}, got '${raw}'` }))
}

const isShare = (n: number) => n >= 0 && n < 1

const parseOptions = (argv: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const { values } = yield* Effect.try({
      try: () =>
        parseArgs({
          args: [...argv],
          strict: true,
          allowPositionals: false,
          options: {
            devices: { type: "string" },
            rate: { type: "string" },
            duration: { type: "string" },
            duplicates: { type: "string" },
            late: { type: "string" },
            stream: { type: "string" },
            seed: { type: "string" }
          }
        }),
      // Node's messages name the flag in their first sentence ("Unknown option '--x'") and then go on at length.
      catch: (error) =>
        new UsageError({
          message: `${String(error instanceof Error ? error.message : error).split(/\.\s/)[0]}; ${USAGE}`
        })
    })
    if (values.stream !== undefined && values.stream.trim() === "") {
      return yield* new UsageError({ message: "--stream must be a non-empty key" })
    }
    return {
      devices: yield* number(
        values.devices,
        "devices",
        (n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000,
        "an integer in 1..1000000"
      ),
      rate: yield* number(values.rate, "rate", (n) => n > 0 && n <= 1000, "a number of Hz per device in (0, 1000]"),
      duration: yield* number(values.duration, "duration", (n) => n > 0 && n <= 86_400, "seconds in (0, 86400]"),
      duplicates: yield* number(values.duplicates, "duplicates", isShare, "a share in [0, 1)", 0),
      late: yield* number(values.late, "late", isShare, "a share in [0, 1)", 0),
      seed: yield* number(values.seed, "seed", (n) => Number.isSafeInteger(n), "an integer", 1),
      stream: values.stream
    } satisfies Options
  })

const acquireRedis = (url: Redacted.Redacted<string>) => {
  // Without a listener ioredis prints every connection error with a stack; keep the last one for the message.
  let lastError: unknown = undefined
  return Effect.acquireRelease(
    Effect.sync(() =>
      new Redis(Redacted.value(url), { lazyConnect: true, maxRetriesPerRequest: 3 }).on("error", (error) => {
        lastError = error
      })
    ),
    (redis) =>
      Effect.tryPromise(() => redis.quit()).pipe(
        Effect.timeout("2 seconds"),
        Effect.catchAll(() => Effect.sync(() => redis.disconnect()))
      )
  ).pipe(
    Effect.tap((redis) =>
      Effect.tryPromise({ try: () => redis.connect(), catch: (cause) => new RedisError({ cause: lastError ?? cause }) })
    )
  )
}

const program = Effect.gen(function*() {
  const options = yield* parseOptions(process.argv.slice(2))
  const url = yield* Config.redacted("REDIS_URL").pipe(
    Config.withDefault(Redacted.make("redis://127.0.0.1:6379"))
  )
  const stream = options.stream ?? (yield* Config.string("REDIS_STREAM").pipe(Config.withDefault("telemetry:t")))
  const redis = yield* acquireRedis(url)

  const perSecond = options.devices * options.rate
  const durationMs = options.duration * 1000
  // Records are due at k / perSecond seconds for every k that falls inside the run; devices take turns.
  const total = Math.max(1, Math.ceil(perSecond * options.duration - 1e-9))
  const toPayload = makePayloadEncoder()
  const send = (readings: ReadonlyArray<Reading>) =>
    publish(redis, stream, readings.map(toPayload), BATCH_SIZE)

  const startedAt = yield* Clock.currentTimeMillis
  const fleet = makeFleet({ ...options, start: new Date(startedAt) })
  let due = 0
  let sent = 0
  const summary = Effect.gen(function*() {
    const elapsedSeconds = ((yield* Clock.currentTimeMillis) - startedAt) / 1000
    const { duplicates, late, positions } = fleet.stats
    return `sent=${sent} positions=${positions} duplicates=${duplicates} late=${late} ` +
      `elapsed=${elapsedSeconds.toFixed(2)}s rate=${(sent / elapsedSeconds).toFixed(1)}/s ` +
      `(${(positions / elapsedSeconds / options.devices).toFixed(3)} Hz per device, requested ${options.rate}) ` +
      `stream=${stream}`
  })

  yield* Effect.gen(function*() {
    while (due < total) {
      const now = yield* Clock.currentTimeMillis
      const target = Math.min(total, Math.floor(((now - startedAt) * perSecond) / 1000) + 1)
      if (target > due) {
        sent += yield* send(emit(fleet, now, due % options.devices, target - due))
        due = target
      }
      if (due < total) {
        const elapsed = (yield* Clock.currentTimeMillis) - startedAt
        yield* Effect.sleep(Math.max(MIN_TICK_MS, (due * 1000) / perSecond - elapsed))
      }
    }
    const remaining = durationMs - ((yield* Clock.currentTimeMillis) - startedAt)
    if (remaining > 0) yield* Effect.sleep(remaining)
    sent += yield* send(drain(fleet))
  }).pipe(Effect.onInterrupt(() => Effect.flatMap(summary, (line) => Console.log(`${line} (interrupted)`))))

  yield* Console.log(yield* summary)
}).pipe(Effect.scoped)

const exitCode = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.match(exit, {
    onSuccess: () => 0,
    onFailure: (cause) =>
      Cause.isInterruptedOnly(cause)
        ? 130
        : Option.match(Cause.failureOption(cause), {
          onNone: () => 1,
          onSome: (error) => (error instanceof UsageError ? 2 : 1)
        })
  })

const main = program.pipe(
  Effect.tapErrorCause((cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.void
      : Option.match(Cause.failureOption(cause), {
        onNone: () => Console.error(Cause.pretty(cause)),
        onSome: (error) => Console.error(`simulate: ${error.message}`)
      })
  )
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => onExit(exitCode(exit))
})
