import { hostname } from "node:os"
import { Config, ConfigError, Context, Data, Duration, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"

export type LogFormat = "json" | "pretty"

export interface Settings {
  readonly redisUrl: Redacted.Redacted
  readonly postgresUrl: Redacted.Redacted
  readonly pgPoolSize: number
  readonly stream: string
  readonly group: string
  readonly consumer: string
  readonly deadLetterStream: string
  readonly batchSize: number
  readonly batchMaxWait: Duration.Duration
  readonly writeConcurrency: number
  readonly readCount: number
  readonly readBlock: Duration.Duration
  readonly deviceStateCapacity: number
  readonly claimInterval: Duration.Duration
  readonly claimIdle: Duration.Duration
  readonly maxDeliveries: number
  readonly consumerIdleDelete: Duration.Duration
  readonly retryMaxBackoff: Duration.Duration
  /** Entries larger than this (bytes of the payload field) are dead-lettered as too large without being parsed. */
  readonly maxPayloadBytes: number
  /** How far a record's timestamp may be ahead of its stream id time; zero turns the check off. */
  readonly maxFutureSkew: Duration.Duration
  /** Trim the stream of entries older than this that every group has acknowledged; none: no trimming. */
  readonly streamRetention: Option.Option<Duration.Duration>
  /** Approximate cap on the dead-letter stream's length; none: no cap. */
  readonly dlqMaxLen: Option.Option<number>
  readonly logLevel: LogLevel.LogLevel
  readonly logFormat: LogFormat
  readonly shutdownTimeout: Duration.Duration
  /** Bind address of the HTTP server; none: every interface (Node's default, IPv6 and IPv4). */
  readonly httpHost: Option.Option<string>
  readonly httpPort: number
  readonly httpAuthToken: Option.Option<Redacted.Redacted>
  readonly otlpEndpoint: Option.Option<string>
  readonly serviceName: string
}

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

const millis = (name: string, fallback: number, min = 1) =>
  Config.integer(name).pipe(
    Config.validate({ message: `Expected an integer number of milliseconds ≥ ${min}`, validation: (n) => n >= min }),
    Config.withDefault(fallback),
    Config.map(Duration.millis)
  )

// "30s", "15m", "24h", "7d", "1h30m", or "0": the forms operators write.
const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/

/** A duration such as "30s", "15m", "24h", "7d" or "1h30m" (largest unit first) in milliseconds; undefined if malformed. */
export const parseDurationText = (text: string): number | undefined => {
  if (text === "0") return 0
  const match = DURATION.exec(text)
  if (text === "" || match === null) return undefined
  const [, d, h, m, s] = match
  const ms = ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(m ?? 0)) * 60_000 + Number(s ?? 0) * 1000
  return Number.isSafeInteger(ms) ? ms : undefined
}

const duration = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const ms = parseDurationText(text.trim())
      return ms === undefined
        ? Either.left(ConfigError.InvalidData([], `Expected a duration such as 30s, 15m, 24h or 7d, received ${JSON.stringify(text.slice(0, 40))}`))
        : Either.right(Duration.millis(ms))
    })
  )

const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

const name = (key: string, fallback: string) =>
  Config.nonEmptyString(key).pipe(Config.withDefault(fallback))

// Unique per host; instances sharing a host (not a container) must set REDIS_CONSUMER themselves.
const defaultConsumer = hostname() || "processor"

const redisUrl = Config.redacted("REDIS_URL").pipe(Config.withDefault(Redacted.make("redis://127.0.0.1:6379")))
const redisStream = name("REDIS_STREAM", "telemetry:t")
const deadLetterStream = name("REDIS_DLQ_STREAM", "telemetry:t:dlq")

/** REDIS_URL, REDIS_STREAM and REDIS_DLQ_STREAM: the settings the command-line tools share with the worker. */
export const redisSettings = Config.all({ redisUrl, stream: redisStream, deadLetterStream })

export const settings: Config.Config<Settings> = Config.all({
  redisUrl,
  postgresUrl: Config.redacted("POSTGRES_URL").pipe(
    Config.withDefault(Redacted.make("postgres://postgres@127.0.0.1:5432/postgres"))
  ),
  pgPoolSize: positive("PG_POOL_SIZE", 4),
  stream: redisStream,
  group: name("REDIS_GROUP", "processor"),
  consumer: name("REDIS_CONSUMER", defaultConsumer),
  deadLetterStream,
  batchSize: positive("BATCH_SIZE", 5000),
  batchMaxWait: millis("BATCH_MAX_WAIT_MS", 0, 0),
  writeConcurrency: positive("WRITE_CONCURRENCY", 2),
  readCount: positive("READ_COUNT", 2000),
  readBlock: millis("READ_BLOCK_MS", 2000),
  deviceStateCapacity: positive("DEVICE_STATE_CAPACITY", 10_000),
  claimInterval: millis("CLAIM_INTERVAL_MS", 10_000),
  claimIdle: millis("CLAIM_IDLE_MS", 30_000),
  maxDeliveries: positive("MAX_DELIVERIES", 5),
  consumerIdleDelete: millis("CONSUMER_IDLE_DELETE_MS", 3_600_000),
  retryMaxBackoff: millis("RETRY_MAX_BACKOFF_MS", 5_000),
  maxPayloadBytes: positive("MAX_PAYLOAD_BYTES", 65_536),
  maxFutureSkew: duration("MAX_FUTURE_SKEW").pipe(Config.withDefault(Duration.hours(24))),
  streamRetention: Config.option(duration("STREAM_RETENTION").pipe(
    Config.validate({ message: "Expected a duration above zero such as 1h", validation: (d) => Duration.toMillis(d) > 0 })
  )),
  dlqMaxLen: Config.option(Config.integer("DLQ_MAXLEN").pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 })
  )),
  logLevel: Config.string("LOG_LEVEL").pipe(
    Config.mapOrFail((text) => {
      const level = LOG_LEVELS[text.toLowerCase()]
      return level
        ? Either.right(level)
        : Either.left(ConfigError.InvalidData([], `Expected one of ${Object.keys(LOG_LEVELS).join(", ")}, received ${JSON.stringify(text)}`))
    }),
    Config.withDefault(LogLevel.Info)
  ),
  logFormat: Config.literal("json", "pretty")("LOG_FORMAT").pipe(Config.withDefault("json" as const)),
  shutdownTimeout: millis("SHUTDOWN_TIMEOUT_MS", 15_000),
  httpHost: Config.option(Config.nonEmptyString("HTTP_HOST")),
  httpPort: Config.integer("HTTP_PORT").pipe(
    Config.validate({ message: "Expected a TCP port 0..65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(9464)
  ),
  httpAuthToken: Config.option(Config.redacted("HTTP_AUTH_TOKEN")),
  otlpEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  serviceName: name("OTEL_SERVICE_NAME", "processor")
})

export class ConfigInvalid extends Data.TaggedError("ConfigInvalid")<{ readonly message: string }> {}

// One line that names the variable and what it expects; never the value of a secret.
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  const lines = ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, l: ReadonlyArray<string>, r: ReadonlyArray<string>) => [...l, ...r],
    orCase: (_, l: ReadonlyArray<string>, r: ReadonlyArray<string>) => [...l, ...r],
    invalidDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    missingDataCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    sourceUnavailableCase: (_, path, message) => [`${path.join(".")}: ${message}`],
    unsupportedCase: (_, path, message) => [`${path.join(".")}: ${message}`]
  })
  return `invalid configuration: ${[...new Set(lines)].join("; ")}`
}

export class ProcessorConfig extends Context.Tag("processor/Config")<ProcessorConfig, Settings>() {
  static readonly layer = Layer.effect(
    ProcessorConfig,
    Effect.mapError(settings, (error) => new ConfigInvalid({ message: describeConfigError(error) }))
  )
}
