import { Reason } from "../src/deadletter/Reason.js"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger, Metric, Option, Ref, Schedule } from "effect"
import { withTraceIds } from "../src/observability/Logging.js"
import * as Metrics from "../src/observability/Metrics.js"
import * as Telemetry from "../src/observability/Telemetry.js"
import { configLayer } from "./support/testConfig.js"

const telemetry = (env: Record<string, string> = {}) => Telemetry.layer.pipe(Layer.provide(configLayer(env)))

const scrape = Effect.flatMap(Telemetry.Prometheus, (p) => p.scrape)

/** Sample lines as "name{labels}" → value. */
const samples = (exposition: string): Map<string, number> => {
  const out = new Map<string, number>()
  for (const line of exposition.split("\n")) {
    if (line === "" || line.startsWith("#")) continue
    const at = line.lastIndexOf(" ")
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

const types = (exposition: string): Map<string, string> =>
  new Map(exposition.split("\n").flatMap((line) => {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line)
    return m === null ? [] : [[m[1]!, m[2]!] as const]
  }))

describe("Prometheus exposition", () => {
  it.effect("follows Prometheus naming: counters end in _total, seconds in names, histograms with _bucket/_sum/_count", () =>
    Effect.gen(function*() {
      yield* Metric.incrementBy(Metrics.inserted, 3)
      yield* Metric.update(Metrics.writeDuration, 0.012)
      yield* Metric.update(Metrics.lag, 0.5)
      yield* Metric.set(Metrics.pgPoolIdle, 1)
      yield* Metrics.deadLettered([{ id: "1-1", reason: Reason.Invalid({ message: "payload: not valid JSON" }) }])
      const text = yield* scrape
      const typeOf = types(text)

      for (const [name, type] of typeOf) {
        expect(name === "target_info" || /^(processor|process|nodejs)_/.test(name), name).toBe(true)
        if (type === "counter") expect(name, `${name} is a counter`).toMatch(/_total$/)
        if (name.endsWith("_total")) expect(type, `${name} ends in _total`).toBe("counter")
        // Durations are in seconds, never milliseconds.
        expect(name).not.toMatch(/_(ms|milliseconds)(_|$)/)
      }
      expect(typeOf.get("processor_records_total")).toBe("counter")
      expect(typeOf.get("processor_records_consumed_total")).toBe("counter")
      expect(typeOf.get("processor_dead_letters_total")).toBe("counter")
      expect(typeOf.get("processor_write_duration_seconds")).toBe("histogram")
      expect(typeOf.get("processor_lag_seconds")).toBe("histogram")
      expect(typeOf.get("processor_batch_size_records")).toBe("histogram")
      expect(typeOf.get("processor_pg_pool_connections")).toBe("gauge")
      // The runtime's own fiber metrics (a histogram in milliseconds) are not exported.
      expect(text).not.toContain("effect_fiber")

      const values = samples(text)
      expect(values.get("processor_records_total{outcome=\"inserted\"}")).toBeGreaterThanOrEqual(3)
      expect(values.get("processor_dead_letters_total{reason=\"invalid\"}")).toBeGreaterThanOrEqual(1)
      const count = values.get("processor_write_duration_seconds_count")!
      expect(count).toBeGreaterThanOrEqual(1)
      expect(values.get("processor_write_duration_seconds_bucket{le=\"+Inf\"}")).toBe(count)
      expect(values.get("processor_write_duration_seconds_sum")).toBeGreaterThan(0)
      expect(values.has("processor_write_duration_seconds_bucket{le=\"0.016\"}")).toBe(true)
      // Plain exposition: no per-sample timestamps.
      expect(text).toMatch(/^processor_records_total\{outcome="inserted"\} \d+$/m)
    }).pipe(Effect.provide(telemetry())))

  it.effect("exports every counter series at 0 before its first increment", () =>
    Effect.gen(function*() {
      const values = samples(yield* scrape)
      for (
        const series of [
          "processor_records_total{outcome=\"failed\"}",
          "processor_records_total{outcome=\"conflict\"}",
          "processor_dead_letters_total{reason=\"max_deliveries\"}",
          "processor_dead_letters_total{reason=\"rejected\"}",
          "processor_retries_total{cause=\"redis\"}",
          "processor_reclaimed_total",
          "processor_late_records_total",
          "processor_device_state_evictions_total"
        ]
      ) expect(values.has(series), series).toBe(true)
    }).pipe(Effect.provide(telemetry())))

  it.live("has the process's metrics: CPU, memory, heap, GC, event-loop delay and utilization, each family once", () =>
    Effect.gen(function*() {
      // Some garbage and some busy time between two scrapes, so GC has run and utilization is above 0.
      yield* scrape
      yield* Effect.sync(() => {
        let keep: Array<{ readonly i: number; readonly s: string }> = []
        const until = Date.now() + 100
        while (Date.now() < until) {
          for (let i = 0; i < 10_000; i++) keep.push({ i, s: `x${i}` })
          if (keep.length > 200_000) keep = []
        }
      })
      // GC entries reach prom-client through a PerformanceObserver, asynchronously: wait (with a deadline) for
      // the scrape that shows one, rather than for a fixed time that a loaded machine may not honour.
      const text = yield* scrape.pipe(
        Effect.filterOrFail((t) => /^nodejs_gc_duration_seconds_count\{[^}]*kind="minor"[^}]*\} [1-9]/m.test(t), () => "no minor GC yet"),
        Effect.retry(Schedule.spaced("20 millis")),
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no minor GC recorded within 10 s") }),
        Effect.orDie
      )
      const typeOf = types(text)

      expect(typeOf.get("process_cpu_seconds_total")).toBe("counter")
      expect(typeOf.get("process_resident_memory_bytes")).toBe("gauge")
      expect(typeOf.get("nodejs_heap_size_used_bytes")).toBe("gauge")
      expect(typeOf.get("nodejs_heap_size_total_bytes")).toBe("gauge")
      expect(typeOf.get("nodejs_gc_duration_seconds")).toBe("histogram")
      expect(typeOf.get("nodejs_eventloop_lag_p99_seconds")).toBe("gauge")
      expect(typeOf.get("nodejs_eventloop_utilization_ratio")).toBe("gauge")

      const values = samples(text)
      expect(values.get("process_cpu_seconds_total")).toBeGreaterThan(0)
      // Between 10 MiB and 4 GiB: a byte count, not kilobytes or pages.
      expect(values.get("process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20)
      expect(values.get("process_resident_memory_bytes")).toBeLessThan(4 * 2 ** 30)
      expect(values.get("nodejs_heap_size_used_bytes")).toBeLessThanOrEqual(values.get("nodejs_heap_size_total_bytes")!)
      const gcRuns = [...values].filter(([series]) => series.startsWith("nodejs_gc_duration_seconds_count{"))
      expect(gcRuns.length).toBeGreaterThan(0)
      expect(gcRuns.some(([series]) => series.includes("kind=\"minor\""))).toBe(true)
      expect(gcRuns.reduce((n, [, v]) => n + v, 0)).toBeGreaterThan(0)
      expect(values.get("nodejs_eventloop_lag_p99_seconds")).toBeGreaterThan(0)
      // Seconds: a delay of 1000 would be milliseconds.
      expect(values.get("nodejs_eventloop_lag_p99_seconds")).toBeLessThan(10)
      const utilization = values.get("nodejs_eventloop_utilization_ratio")!
      expect(utilization).toBeGreaterThan(0)
      expect(utilization).toBeLessThanOrEqual(1)

      // One HELP and one TYPE per family, every sample under a TYPE of its own family, one content type.
      const lines = text.split("\n")
      const helps = lines.filter((l) => l.startsWith("# HELP ")).map((l) => l.split(" ")[2]!)
      const typed = lines.filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]!)
      expect(new Set(helps).size).toBe(helps.length)
      expect(new Set(typed).size).toBe(typed.length)
      let family = ""
      for (const line of lines) {
        if (line.startsWith("# TYPE ")) family = line.split(" ")[2]!
        if (line === "" || line.startsWith("#")) continue
        const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0]
        expect([family, `${family}_bucket`, `${family}_sum`, `${family}_count`], line).toContain(name)
        expect(line, line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+$/)
      }
    }).pipe(Effect.provide(telemetry())))

  it.effect("names the service and its version in target_info", () =>
    Effect.gen(function*() {
      expect(yield* scrape).toMatch(/^target_info\{.*service_name="processor-unit".*service_version="\d+\.\d+\.\d+".*\} 1$/m)
    }).pipe(Effect.provide(telemetry({ OTEL_SERVICE_NAME: "processor-unit" }))))
})

describe("tracing", () => {
  it.effect("installs no tracer without OTEL_EXPORTER_OTLP_ENDPOINT", () =>
    Effect.gen(function*() {
      const builtIn = yield* Effect.tracer
      const withTelemetry = yield* Effect.tracer.pipe(Effect.provide(telemetry()))
      expect(withTelemetry).toBe(builtIn)
      const withEndpoint = yield* Effect.tracer.pipe(Effect.provide(telemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" })))
      expect(withEndpoint).not.toBe(builtIn)
    }))

  it.scopedLive("exports spans over OTLP/HTTP to ${endpoint}/v1/traces with service.name and service.version", () =>
    Effect.gen(function*() {
      const received: Array<{ url: string; body: string }> = []
      const sink = yield* Effect.acquireRelease(
        Effect.async<Server>((resume) => {
          const server = createServer((req, res) => {
            let body = ""
            req.on("data", (d) => (body += d))
            req.on("end", () => {
              received.push({ url: req.url ?? "", body })
              res.writeHead(200, { "content-type": "application/json" }).end("{}")
            })
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const endpoint = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`
      // Closing the layer flushes the batch span processor.
      yield* Effect.void.pipe(
        Effect.withSpan("Test.span", { attributes: { answer: 42 } }),
        Effect.provide(telemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: "processor-otlp-test" })),
        Effect.scoped
      )
      expect(received.map((r) => r.url)).toContain("/v1/traces")
      const body = received.find((r) => r.url === "/v1/traces")!.body
      expect(body).toContain("Test.span")
      expect(body).toContain("processor-otlp-test")
      expect(body).toContain("service.version")
    }))
})

describe("log lines and traces", () => {
  const capture = Effect.gen(function*() {
    const lines = yield* Ref.make<ReadonlyArray<Record<string, unknown>>>([])
    const logger = withTraceIds(Logger.make(({ annotations }) => {
      Effect.runSync(Ref.update(lines, (all) => [...all, Object.fromEntries(HashMap.toEntries(annotations))]))
    }))
    return { lines: Ref.get(lines), layer: Logger.replace(Logger.defaultLogger, logger) }
  })

  it.effect("carry trace_id and span_id of the current span, and nothing outside spans", () =>
    Effect.gen(function*() {
      const { lines, layer } = yield* capture
      const span = yield* Effect.gen(function*() {
        yield* Effect.logInfo("inside")
        return yield* Effect.currentSpan
      }).pipe(Effect.withSpan("Test.logs"), Effect.annotateLogs({ service: "test" }), Effect.provide(layer))
      yield* Effect.logInfo("outside").pipe(Effect.provide(layer))
      const [inside, outside] = yield* lines
      expect(inside).toEqual({ service: "test", trace_id: span.traceId, span_id: span.spanId })
      expect(outside).toEqual({})
      expect(Option.isSome(yield* Effect.option(Effect.currentSpan))).toBe(false)
    }))
})
