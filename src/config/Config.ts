import { hostname } from "node:os"
import { Config, ConfigError, Context, Data, Duration, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"

export type LogFormat = "json" | "pretty"

/** Where and how to connect to Redis, from REDIS_URL. */
export interface RedisConnection {
  readonly host: string
  readonly port: number
  readonly username: string | undefined
  readonly password: Redacted.Redacted | undefined
  readonly db: number
  /** rediss: */
  readonly tls: boolean
  /** The URL for logs: the password, if any, replaced by `***`. */
  readonly address: string
}

/** Where PostgreSQL is, from POSTGRES_URL (the pool still takes the whole URL, query parameters included). */
export interface PostgresConnection {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string | undefined
  /** The URL for logs: the password, if any, replaced by `***`, query parameters left out. */
  readonly address: string
}

export interface Settings {
  /** REDIS_URL, validated: use `redis` to connect. */
  readonly redisUrl: Redacted.Redacted
  readonly redis: RedisConnection
  /** POSTGRES_URL, validated. */
  readonly postgresUrl: Redacted.Redacted
  readonly postgres: PostgresConnection
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
  /** About how much memory the device state may take, in bytes; devices beyond it are evicted like beyond the capacity. */
  readonly deviceStateMaxBytes: number
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
  /** PostgreSQL's statement_timeout for the worker's sessions. */
  readonly pgStatementTimeout: Duration.Duration
}

const positiveInteger = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }))

const positive = (name: string, fallback: number) => positiveInteger(name).pipe(Config.withDefault(fallback))

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

// A duration variable; `positive`: zero is refused too. The key is named in the error, as for the built-in configs.
const duration = (name: string, positive = false) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const ms = parseDurationText(text.trim())
      if (ms === undefined) {
        return Either.left(ConfigError.InvalidData([], `Expected a duration such as 30s, 15m, 24h or 7d, received ${JSON.stringify(text.slice(0, 40))}`))
      }
      if (positive && ms === 0) return Either.left(ConfigError.InvalidData([], "Expected a duration above zero such as 1h"))
      return Either.right(Duration.millis(ms))
    })
  )

// Config.logLevel reads Effect's labels in any case (all, trace, debug, info, warn, error, fatal, off). The
// README documents "none" where Effect says "off", and "warning" was always taken: those two are renamed first.
const LOG_LEVEL_ALIASES: Readonly<Record<string, LogLevel.LogLevel>> = { none: LogLevel.None, warning: LogLevel.Warning }

const logLevel = Config.logLevel("LOG_LEVEL").pipe(
  Config.orElse(() =>
    Config.string("LOG_LEVEL").pipe(
      Config.mapOrFail((text) => {
        const level = LOG_LEVEL_ALIASES[text.toLowerCase()]
        return level !== undefined
          ? Either.right(level)
          : Either.left(ConfigError.InvalidData([], "Expected trace, debug, info, warn, error, fatal or none"))
      })
    )),
  Config.withDefault(LogLevel.Info)
)

const name = (key: string, fallback: string) =>
  Config.nonEmptyString(key).pipe(Config.withDefault(fallback))

// Unique per host; instances sharing a host (not a container) must set REDIS_CONSUMER themselves.
const defaultConsumer = hostname() || "processor"


// WHATWG URL only: Node's legacy url.parse (which ioredis falls back to for a string) prints a deprecation
// warning quoting the whole URL, password included. Messages below never quote the URL.
const parseUrl = (text: string, schemes: ReadonlyArray<string>, form: string): Either.Either<URL, string> => {
  let url: URL
  try {
    url = new URL(text.trim())
  } catch {
    return Either.left(`Expected a URL such as ${form}; this one does not parse (a port must be a number up to 65535)`)
  }
  if (!schemes.includes(url.protocol)) {
    // The scheme is safe to quote; a host:port without a scheme parses as a scheme of its own, so only a short one is.
    const scheme = /^[a-z][a-z0-9+.-]{0,15}:$/i.test(url.protocol) ? ` ${JSON.stringify(url.protocol)}` : ""
    return Either.left(`Expected a URL such as ${form}, with scheme ${schemes.join(" or ")}; received scheme${scheme || " none"}`)
  }
  if (url.hostname === "") return Either.left(`Expected a URL such as ${form}: the host is missing`)
  if (url.hash !== "") return Either.left(`Expected a URL such as ${form}, without a #fragment`)
  return Either.right(url)
}

const decode = (part: string): string => {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}

/** The URL with its password replaced by `***`, without query or fragment: safe to log. */
export const redactUrl = (url: URL): string => {
  const auth = url.username !== "" || url.password !== "" ? `${url.username}${url.password !== "" ? ":***" : ""}@` : ""
  return `${url.protocol}//${auth}${url.host}${url.pathname === "/" ? "" : url.pathname}`
}

const REDIS_FORM = "redis://[user][:password@]host[:port][/db] (rediss:// for TLS)"

/**
 * REDIS_URL as connection options: scheme redis: or rediss:, a host, a numeric port (default 6379) and
 * an optional numeric database (the path); no query parameters. Left: what is wrong, without the URL.
 */
export const parseRedisUrl = (text: string): Either.Either<RedisConnection, string> =>
  Either.flatMap(parseUrl(text, ["redis:", "rediss:"], REDIS_FORM), (url): Either.Either<RedisConnection, string> => {
    const db = url.pathname === "" || url.pathname === "/" ? "0" : url.pathname.slice(1)
    if (!/^\d{1,5}$/.test(db)) return Either.left(`Expected a URL such as ${REDIS_FORM}: the database must be a number`)
    if (url.search !== "") return Either.left(`Expected a URL such as ${REDIS_FORM}, without query parameters`)
    return Either.right({
      // IPv6 literals come bracketed ("[::1]"); the client wants the bare address.
      host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port === "" ? 6379 : Number(url.port),
      username: url.username === "" ? undefined : decode(url.username),
      password: url.password === "" ? undefined : Redacted.make(decode(url.password)),
      db: Number(db),
      tls: url.protocol === "rediss:",
      address: redactUrl(url)
    })
  })

const POSTGRES_FORM = "postgres://user[:password]@host[:port]/database"

/** POSTGRES_URL checked: scheme postgres: or postgresql:, a host, a numeric port (default 5432). */
export const parsePostgresUrl = (text: string): Either.Either<PostgresConnection, string> =>
  Either.map(parseUrl(text, ["postgres:", "postgresql:"], POSTGRES_FORM), (url): PostgresConnection => ({
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 5432 : Number(url.port),
    database: decode(url.pathname.slice(1)),
    user: url.username === "" ? undefined : decode(url.username),
    address: redactUrl(url)
  }))

// A URL variable: validated here, so that a malformed one stops the worker with exit 78 before any client sees it.
const url = <A>(key: string, fallback: string, parse: (text: string) => Either.Either<A, string>) =>
  Config.redacted(key).pipe(
    Config.withDefault(Redacted.make(fallback)),
    Config.mapOrFail((value) =>
      Either.match(parse(Redacted.value(value)), {
        onLeft: (message) => Either.left(ConfigError.InvalidData([key], message)),
        onRight: (parsed) => Either.right({ value, parsed })
      })
    )
  )

const redisUrl = url("REDIS_URL", "redis://127.0.0.1:6379", parseRedisUrl)
const redisStream = name("REDIS_STREAM", "telemetry:t")
const deadLetterStream = name("REDIS_DLQ_STREAM", "telemetry:t:dlq")

/** REDIS_URL (validated, and as connection options), REDIS_STREAM and REDIS_DLQ_STREAM: what the CLIs share with the worker. */
export const redisSettings = Config.all({ redisUrl, stream: redisStream, deadLetterStream }).pipe(
  Config.map(({ redisUrl, ...rest }) => ({ ...rest, redisUrl: redisUrl.value, redis: redisUrl.parsed }))
)

export const settings: Config.Config<Settings> = Config.all({
  redisUrl,
  postgresUrl: url("POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres", parsePostgresUrl),
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
  deviceStateMaxBytes: positive("DEVICE_STATE_MAX_BYTES", 64 * 1024 * 1024),
  claimInterval: millis("CLAIM_INTERVAL_MS", 10_000),
  claimIdle: millis("CLAIM_IDLE_MS", 30_000),
  maxDeliveries: positive("MAX_DELIVERIES", 5),
  consumerIdleDelete: millis("CONSUMER_IDLE_DELETE_MS", 3_600_000),
  retryMaxBackoff: millis("RETRY_MAX_BACKOFF_MS", 5_000),
  maxPayloadBytes: positive("MAX_PAYLOAD_BYTES", 32_768),
  maxFutureSkew: duration("MAX_FUTURE_SKEW").pipe(Config.withDefault(Duration.hours(24))),
  streamRetention: Config.option(duration("STREAM_RETENTION", true)),
  dlqMaxLen: Config.option(positiveInteger("DLQ_MAXLEN")),
  logLevel,
  logFormat: Config.literal("json", "pretty")("LOG_FORMAT").pipe(Config.withDefault("json" as const)),
  shutdownTimeout: millis("SHUTDOWN_TIMEOUT_MS", 15_000),
  httpHost: Config.option(Config.nonEmptyString("HTTP_HOST")),
  httpPort: Config.integer("HTTP_PORT").pipe(
    Config.validate({ message: "Expected a TCP port 0..65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(9464)
  ),
  httpAuthToken: Config.option(Config.redacted("HTTP_AUTH_TOKEN")),
  otlpEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  serviceName: name("OTEL_SERVICE_NAME", "processor"),
  pgStatementTimeout: millis("PG_STATEMENT_TIMEOUT_MS", 60_000)
}).pipe(
  Config.map(({ postgresUrl, redisUrl, ...rest }): Settings => ({
    ...rest,
    redisUrl: redisUrl.value,
    redis: redisUrl.parsed,
    postgresUrl: postgresUrl.value,
    postgres: postgresUrl.parsed
  }))
)

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
