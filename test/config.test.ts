import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer, LogLevel, Option, Redacted } from "effect"
import { inspect } from "node:util"
import { describeConfigError, ProcessorConfig, settings } from "../src/config/Config.js"

const load = (entries: ReadonlyArray<readonly [string, string]>) =>
  Effect.withConfigProvider(settings, ConfigProvider.fromMap(new Map(entries)))

const millis = (d: Duration.Duration) => Duration.toMillis(d)

describe("settings", () => {
  it.effect("defaults every variable", () =>
    Effect.gen(function*() {
      const s = yield* load([])
      expect(Redacted.value(s.redisUrl)).toBe("redis://127.0.0.1:6379")
      expect(Redacted.value(s.postgresUrl)).toBe("postgres://postgres@127.0.0.1:5432/postgres")
      expect(s.pgPoolSize).toBe(4)
      expect(s.stream).toBe("telemetry:t")
      expect(s.group).toBe("processor")
      expect(s.consumer.length).toBeGreaterThan(0)
      expect(s.deadLetterStream).toBe("telemetry:t:dlq")
      expect(s.batchSize).toBe(5000)
      expect(millis(s.batchMaxWait)).toBe(0)
      expect(s.writeConcurrency).toBe(2)
      expect(s.readCount).toBe(2000)
      expect(millis(s.readBlock)).toBe(2000)
      expect(s.deviceStateCapacity).toBe(10_000)
      expect(millis(s.claimInterval)).toBe(10_000)
      expect(millis(s.claimIdle)).toBe(30_000)
      expect(s.maxDeliveries).toBe(5)
      expect(millis(s.consumerIdleDelete)).toBe(3_600_000)
      expect(millis(s.retryMaxBackoff)).toBe(5_000)
      expect(s.logLevel).toBe(LogLevel.Info)
      expect(s.logFormat).toBe("json")
      expect(millis(s.shutdownTimeout)).toBe(15_000)
      expect(s.httpPort).toBe(9464)
      expect(Option.isNone(s.httpAuthToken)).toBe(true)
      expect(Option.isNone(s.otlpEndpoint)).toBe(true)
      expect(s.serviceName).toBe("processor")
      expect(millis(s.pgStatementTimeout)).toBe(60_000)
      expect(s.maxPayloadBytes).toBe(32_768)
      expect(millis(s.maxFutureSkew)).toBe(24 * 3_600_000)
      expect(s.deviceStateMaxBytes).toBe(64 * 1024 * 1024)
      expect(Option.isNone(s.streamRetention)).toBe(true)
      expect(Option.isNone(s.dlqMaxLen)).toBe(true)
      expect(Option.isNone(s.httpHost)).toBe(true)
    }))

  it.effect("parses this round's settings: durations as operators write them, retention, caps, bind address", () =>
    Effect.gen(function*() {
      const s = yield* load([
        ["MAX_PAYLOAD_BYTES", "16384"],
        ["MAX_FUTURE_SKEW", "0"],
        ["STREAM_RETENTION", "1h30m"],
        ["DLQ_MAXLEN", "100000"],
        ["HTTP_HOST", "127.0.0.1"],
        ["DEVICE_STATE_MAX_BYTES", "1048576"]
      ])
      expect(s.maxPayloadBytes).toBe(16_384)
      expect(millis(s.maxFutureSkew)).toBe(0)
      expect(s.streamRetention.pipe(Option.map(millis))).toEqual(Option.some(5_400_000))
      expect(s.dlqMaxLen).toEqual(Option.some(100_000))
      expect(s.httpHost).toEqual(Option.some("127.0.0.1"))
      expect(s.deviceStateMaxBytes).toBe(1_048_576)
      expect(millis((yield* load([["MAX_FUTURE_SKEW", "7d"]])).maxFutureSkew)).toBe(7 * 86_400_000)
      for (const [key, value] of [["STREAM_RETENTION", "0"], ["STREAM_RETENTION", "1 hour"], ["MAX_FUTURE_SKEW", "-1h"], ["DLQ_MAXLEN", "0"]] as const) {
        const error = yield* Effect.flip(load([[key, value]]))
        expect(describeConfigError(error), `${key}=${value}`).toMatch(new RegExp(`^invalid configuration: ${key}: `))
      }
    }))

  it.effect("parses overrides", () =>
    Effect.gen(function*() {
      const s = yield* load([
        ["REDIS_URL", "redis://cache:6380/2"],
        ["POSTGRES_URL", "postgres://app@db:5433/telemetry"],
        ["PG_POOL_SIZE", "8"],
        ["REDIS_STREAM", "telemetry:x"],
        ["REDIS_GROUP", "g2"],
        ["REDIS_CONSUMER", "worker-7"],
        ["REDIS_DLQ_STREAM", "telemetry:x:dead"],
        ["BATCH_SIZE", "1000"],
        ["BATCH_MAX_WAIT_MS", "25"],
        ["WRITE_CONCURRENCY", "4"],
        ["READ_COUNT", "200"],
        ["READ_BLOCK_MS", "250"],
        ["DEVICE_STATE_CAPACITY", "50000"],
        ["CLAIM_INTERVAL_MS", "1000"],
        ["CLAIM_IDLE_MS", "60000"],
        ["MAX_DELIVERIES", "9"],
        ["CONSUMER_IDLE_DELETE_MS", "120000"],
        ["RETRY_MAX_BACKOFF_MS", "800"],
        ["LOG_LEVEL", "Debug"],
        ["LOG_FORMAT", "pretty"],
        ["SHUTDOWN_TIMEOUT_MS", "3000"],
        ["HTTP_PORT", "0"],
        ["HTTP_AUTH_TOKEN", "t0ken"],
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318"],
        ["OTEL_SERVICE_NAME", "processor-eu"],
        ["PG_STATEMENT_TIMEOUT_MS", "500"]
      ])
      expect(Redacted.value(s.redisUrl)).toBe("redis://cache:6380/2")
      expect(Redacted.value(s.postgresUrl)).toBe("postgres://app@db:5433/telemetry")
      expect(s.pgPoolSize).toBe(8)
      expect(s.stream).toBe("telemetry:x")
      expect(s.group).toBe("g2")
      expect(s.consumer).toBe("worker-7")
      expect(s.deadLetterStream).toBe("telemetry:x:dead")
      expect(s.batchSize).toBe(1000)
      expect(millis(s.batchMaxWait)).toBe(25)
      expect(s.writeConcurrency).toBe(4)
      expect(s.readCount).toBe(200)
      expect(millis(s.readBlock)).toBe(250)
      expect(s.deviceStateCapacity).toBe(50_000)
      expect(millis(s.claimInterval)).toBe(1000)
      expect(millis(s.claimIdle)).toBe(60_000)
      expect(s.maxDeliveries).toBe(9)
      expect(millis(s.consumerIdleDelete)).toBe(120_000)
      expect(millis(s.retryMaxBackoff)).toBe(800)
      expect(s.logLevel).toBe(LogLevel.Debug)
      expect(s.logFormat).toBe("pretty")
      expect(millis(s.shutdownTimeout)).toBe(3000)
      expect(s.httpPort).toBe(0)
      expect(Option.map(s.httpAuthToken, Redacted.value)).toEqual(Option.some("t0ken"))
      expect(s.otlpEndpoint).toEqual(Option.some("http://otel:4318"))
      expect(s.serviceName).toBe("processor-eu")
      expect(millis(s.pgStatementTimeout)).toBe(500)
    }))

  it.effect.each([
    ["trace", LogLevel.Trace],
    ["DEBUG", LogLevel.Debug],
    ["Info", LogLevel.Info],
    ["warn", LogLevel.Warning],
    ["warning", LogLevel.Warning],
    ["error", LogLevel.Error],
    ["fatal", LogLevel.Fatal],
    ["none", LogLevel.None],
    ["NONE", LogLevel.None],
    ["off", LogLevel.None]
  ] as const)("reads LOG_LEVEL=%s, the README's names and Effect's, in any case", ([text, level]) =>
    Effect.gen(function*() {
      expect((yield* load([["LOG_LEVEL", text]])).logLevel).toBe(level)
    }))

  it.effect("accepts the edges of the ranges", () =>
    Effect.gen(function*() {
      const s = yield* load([["HTTP_PORT", "65535"], ["BATCH_SIZE", "1"], ["READ_BLOCK_MS", "1"]])
      expect(s.httpPort).toBe(65535)
      expect(s.batchSize).toBe(1)
      expect(millis(s.readBlock)).toBe(1)
    }))

  it.effect.each([
    ["BATCH_SIZE", "abc"],
    ["BATCH_SIZE", "0"],
    ["BATCH_SIZE", "1.5"],
    ["PG_POOL_SIZE", "-2"],
    ["LOG_FORMAT", "xml"],
    ["LOG_LEVEL", "loud"],
    ["HTTP_PORT", "70000"],
    ["HTTP_PORT", "-1"],
    ["READ_BLOCK_MS", "-5"],
    ["READ_BLOCK_MS", "0"],
    ["BATCH_MAX_WAIT_MS", "-1"],
    ["CLAIM_IDLE_MS", "soon"]
  ] as const)("rejects %s=%s with one line naming the variable", ([key, value]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load([[key, value]]))
      const message = describeConfigError(error)
      expect(message).toContain(`${key}: `)
      expect(message).not.toMatch(/[\r\n]/)
    }))

  it.effect("names every invalid variable in the one line", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(load([["BATCH_SIZE", "abc"], ["HTTP_PORT", "x"]]))
      const message = describeConfigError(error)
      expect(message).toContain("BATCH_SIZE: ")
      expect(message).toContain("HTTP_PORT: ")
      expect(message).not.toMatch(/[\r\n]/)
    }))

  it.effect("fails ProcessorConfig.layer with ConfigInvalid carrying the one-line message", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(ProcessorConfig.layer).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LOG_FORMAT", "xml"]])))
        )
      )
      expect(error._tag).toBe("ConfigInvalid")
      expect(error.message).toContain("LOG_FORMAT: ")
    }))

  describe("secrets", () => {
    const url = "postgres://u:s3cret@h/db"

    it.effect("never shows the password of POSTGRES_URL or the HTTP token", () =>
      Effect.gen(function*() {
        const s = yield* load([["POSTGRES_URL", url], ["HTTP_AUTH_TOKEN", "t0psecret"]])
        // Loaded for real: the value is there for whoever unwraps it.
        expect(Redacted.value(s.postgresUrl)).toBe(url)
        expect(String(s.postgresUrl)).not.toContain("s3cret")
        expect(`${s.postgresUrl}`).not.toContain("s3cret")
        const json = JSON.stringify(s)
        expect(json).not.toContain("s3cret")
        expect(json).not.toContain("t0psecret")
        const inspected = inspect(s, { depth: 10 })
        expect(inspected).not.toContain("s3cret")
        expect(inspected).not.toContain("t0psecret")
      }))

    it.effect("keeps the password out of the message when another variable is invalid", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(load([["POSTGRES_URL", url], ["BATCH_SIZE", "abc"]]))
        expect(describeConfigError(error)).not.toContain("s3cret")
      }))
  })

  describe("server URLs", () => {
    it.effect("REDIS_URL becomes explicit connection options, the password redacted", () =>
      Effect.gen(function*() {
        const s = yield* load([["REDIS_URL", "rediss://app:p%40ss@[::1]:6380/3"]])
        expect({ ...s.redis, password: Redacted.value(s.redis.password!) }).toEqual({
          host: "::1", port: 6380, username: "app", password: "p@ss", db: 3, tls: true, address: "rediss://app:***@[::1]:6380/3"
        })
        const d = yield* load([])
        expect(d.redis).toEqual({ host: "127.0.0.1", port: 6379, username: undefined, password: undefined, db: 0, tls: false, address: "redis://127.0.0.1:6379" })
        expect(d.postgres).toEqual({ host: "127.0.0.1", port: 5432, database: "postgres", user: "postgres", address: "postgres://postgres@127.0.0.1:5432/postgres" })
      }))

    it.effect("POSTGRES_URL: postgres: or postgresql:, query parameters kept for the pool, left out of the address", () =>
      Effect.gen(function*() {
        const s = yield* load([["POSTGRES_URL", "postgresql://app:s3cret@db:5433/telemetry?sslmode=require"]])
        expect(Redacted.value(s.postgresUrl)).toBe("postgresql://app:s3cret@db:5433/telemetry?sslmode=require")
        expect(s.postgres).toEqual({ host: "db", port: 5433, database: "telemetry", user: "app", address: "postgresql://app:***@db:5433/telemetry" })
      }))

    it.effect.each([
      ["REDIS_URL", "redis://:s3cret@[::1"],
      ["REDIS_URL", "redis://:s3cret@cache:port"],
      ["REDIS_URL", "redis://:s3cret@cache:6379/zero"],
      ["REDIS_URL", "redis://:s3cret@cache:6379?db=2"],
      ["REDIS_URL", "redis://:s3cret@cache:99999"],
      ["REDIS_URL", "http://:s3cret@cache:6379"],
      ["REDIS_URL", "cache:6379"],
      ["POSTGRES_URL", "127.0.0.1:5432"],
      ["POSTGRES_URL", "localhost:5432"],
      ["POSTGRES_URL", "mysql://u:s3cret@db/x"],
      ["POSTGRES_URL", "postgres://u:s3cret@db:port/x"],
      ["POSTGRES_URL", "postgres:///x"]
    ] as const)("rejects %s=%s in one line naming the variable, without the password", ([key, value]) =>
      Effect.gen(function*() {
        const message = describeConfigError(yield* Effect.flip(load([[key, value]])))
        expect(message).toContain(`${key}: Expected a URL such as `)
        expect(message).not.toContain("s3cret")
        expect(message).not.toMatch(/[\r\n]/)
      }))
  })
})
