import { readFileSync } from "node:fs"
import { performance } from "node:perf_hooks"
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import type { MetricProducer } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Context, Duration, Effect, Layer, Option } from "effect"
import { collectDefaultMetrics, Gauge, Registry } from "prom-client"
import { ProcessorConfig } from "../config/Config.js"
import * as Metrics from "./Metrics.js"

/**
 * The Node process's own metrics, on a prom-client registry apart from its global one: prom-client's defaults
 * (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`,
 * `nodejs_gc_duration_seconds{kind}`, `nodejs_eventloop_lag_p99_seconds` and the rest) plus
 * `nodejs_eventloop_utilization_ratio`, which prom-client lacks.
 *
 * One registry per process, made on first use: the defaults start a GC observer and an event-loop delay
 * monitor that prom-client gives no way to stop, and these figures describe the process, not a layer.
 */
export const processRegistry: () => Registry = (() => {
  let registry: Registry | undefined
  return () => {
    if (registry !== undefined) return registry
    const made = new Registry()
    collectDefaultMetrics({ register: made })
    // Gauges named like counters break Prometheus' naming rule (and rate() over them is wrong); the
    // per-type series they sum (nodejs_active_handles{type} and the like) stay.
    for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
      made.removeSingleMetric(name)
    }
    // Node's event-loop utilization (active time ÷ elapsed time, 0..1), the name OpenTelemetry's
    // `nodejs.eventloop.utilization` takes in Prometheus. Measured over the time since the previous scrape.
    let previous = performance.eventLoopUtilization()
    new Gauge({
      name: "nodejs_eventloop_utilization_ratio",
      help: "Share of the time since the previous scrape that the event loop was busy (0..1).",
      registers: [made],
      collect() {
        const now = performance.eventLoopUtilization()
        const { utilization } = performance.eventLoopUtilization(now, previous)
        previous = now
        // Two scrapes within the same tick measure nothing (0 ÷ 0): keep the last value.
        if (Number.isFinite(utilization)) this.set(utilization)
      }
    })
    return (registry = made)
  }
})()

/** The Prometheus side of the metrics: a pull reader whose output the worker's own HTTP server serves. */
export class Prometheus extends Context.Tag("processor/Prometheus")<Prometheus, {
  readonly reader: PrometheusExporter
  /**
   * The current exposition (Prometheus text format 0.0.4): the processor's metrics through OpenTelemetry,
   * then the process's (see `processRegistry`). The two share no metric name (`processor_` against
   * `process_` and `nodejs_`).
   */
  readonly scrape: Effect.Effect<string>
}>() {
  static readonly make = Effect.sync(() => {
    // No server of its own (one port: ours), and no sample timestamps: Prometheus stamps the scrape itself.
    const reader = new PrometheusExporter({ preventServerStart: true, appendTimestamp: false })
    const serializer = new PrometheusSerializer(undefined, false)
    const registry = processRegistry()
    const scrape = Effect.all([
      Effect.promise(() => reader.collect()).pipe(
        Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics))
      ),
      Effect.promise(() => registry.metrics())
    ]).pipe(Effect.map(([ours, process]) => ours === "" || ours.endsWith("\n") ? ours + process : `${ours}\n${process}`))
    return Prometheus.of({ reader, scrape })
  })

  static readonly layer = Layer.effect(Prometheus, Prometheus.make)
}

// Effect's registry is global and also holds the runtime's own fiber metrics (effect_fiber_*: a lifetime
// histogram in milliseconds with the unit as a label, no descriptions). Only the processor's metrics, which
// follow Prometheus conventions, are exported.
const onlyProcessorMetrics = (producer: MetricProducer): MetricProducer => ({
  collect: (options) =>
    producer.collect(options).then((result) => ({
      ...result,
      resourceMetrics: {
        ...result.resourceMetrics,
        scopeMetrics: result.resourceMetrics.scopeMetrics.map((scope) => ({
          ...scope,
          metrics: scope.metrics.filter((metric) => metric.descriptor.name.startsWith(Metrics.PREFIX))
        }))
      }
    }))
})

const metricsLayer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const { reader } = yield* Prometheus
    const producer = yield* OtelMetrics.makeProducer
    yield* OtelMetrics.registerProducer(onlyProcessorMetrics(producer), () => reader)
    // Every counter series exported from the start, at 0.
    yield* Metrics.initialize
  })
)

// src/observability and dist/observability are both two levels below the package root.
const serviceVersion = Effect.try(() =>
  String((JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: unknown }).version)
).pipe(Effect.orElseSucceed(() => "unknown"))

/** OTLP/HTTP traces go to `${endpoint}/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT is defined. */
export const tracesUrl = (endpoint: string) => `${endpoint.replace(/\/+$/, "")}/v1/traces`

/**
 * Effect's metrics exported through OpenTelemetry to the Prometheus reader, always; spans exported over
 * OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set. Without it no tracer is installed: Effect's
 * built-in one keeps spans in memory only (they give log lines their trace ids) and exports nothing.
 */
export const layer = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* ProcessorConfig
    const version = yield* serviceVersion
    // The OTLP exporter (with protobufjs and its generated message types: about 2 MiB of heap that every full GC
    // marks, 5 MiB of idle RSS) is loaded only when spans are exported: a function that makes it, or undefined.
    const makeExporter = yield* Option.match(config.otlpEndpoint, {
      onNone: () => Effect.succeed(undefined),
      onSome: (endpoint) =>
        Effect.promise(() => import("@opentelemetry/exporter-trace-otlp-http")).pipe(
          Effect.map(({ OTLPTraceExporter }) => () => new OTLPTraceExporter({ url: tracesUrl(endpoint) }))
        )
    })
    // Resource (service.name, service.version, OTEL_RESOURCE_ATTRIBUTES) and, with an endpoint, the tracer.
    const sdk = NodeSdk.layer((): NodeSdk.Configuration => ({
      resource: { serviceName: config.serviceName, serviceVersion: version },
      spanProcessor: makeExporter === undefined ? undefined : new BatchSpanProcessor(makeExporter()),
      // Bounds the final flush of spans when the worker stops.
      shutdownTimeout: Duration.seconds(3)
    }))
    return metricsLayer.pipe(Layer.provideMerge(sdk), Layer.provideMerge(Prometheus.layer))
  })
)
