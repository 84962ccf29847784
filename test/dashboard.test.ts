import { readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { generatePayloads } from "../src/simulate/Generator.js"
import { publish } from "../src/simulate/Publish.js"
import { spawnWorker, testEnvironment, waitForLog } from "./support/Integration.js"

// The dashboard is checked against a scrape of a real worker (its own process, `src/main.ts`): every metric a
// panel queries must be in the exposition, with the labels the query filters and groups on, and with a type the
// query's functions fit.

interface Target {
  readonly expr: string
  readonly refId: string
}

interface Panel {
  readonly id: number
  readonly type: string
  readonly title: string
  readonly gridPos: { readonly h: number; readonly w: number; readonly x: number; readonly y: number }
  readonly datasource?: { readonly type: string; readonly uid: string }
  readonly targets?: ReadonlyArray<Target>
  readonly panels?: ReadonlyArray<Panel>
}

interface Dashboard {
  readonly panels: ReadonlyArray<Panel>
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly definition?: string }> }
}

const dashboard = JSON.parse(
  readFileSync(new URL("../grafana/processor-dashboard.json", import.meta.url), "utf8")
) as Dashboard

const allPanels: ReadonlyArray<Panel> = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])
const queryPanels = allPanels.filter((p) => p.type !== "row")

interface Sample {
  readonly name: string
  readonly labels: ReadonlyMap<string, string>
}

interface Exposition {
  /** Family name → type (counter, gauge, histogram, summary). */
  readonly types: ReadonlyMap<string, string>
  readonly samples: ReadonlyArray<Sample>
}

/** Prometheus text format 0.0.4, as far as this exposition uses it (no escaped quotes in label values). */
const parseExposition = (text: string): Exposition => {
  const types = new Map<string, string>()
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1]!, type[2]!)
    if (line === "" || line.startsWith("#")) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line.slice(0, 80)}`)
    const labels = new Map([...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!] as const))
    samples.push({ name: m[1]!, labels })
  }
  return { types, samples }
}

/** The family a sample name belongs to: itself, or a histogram's / summary's without _bucket, _sum, _count. */
const familyOf = (exposition: Exposition, name: string): string | undefined => {
  if (exposition.types.has(name)) return name
  const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1]
  return base !== undefined && exposition.types.has(base) ? base : undefined
}

interface Selector {
  readonly name: string
  readonly matchers: ReadonlyArray<{ readonly label: string; readonly op: string; readonly value: string }>
}

// Every query in this dashboard names its metrics with a selector (`name{...}`): at least the instance filter.
const selectorsOf = (expr: string): ReadonlyArray<Selector> =>
  [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)].map((m) => ({
    name: m[1]!,
    matchers: [...m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((x) => ({
      label: x[1]!,
      op: x[2]!,
      value: x[3]!
    }))
  }))

/** Names that look like this worker's metrics, wherever they occur in a query. */
const metricLikeNames = (expr: string): ReadonlyArray<string> =>
  [...expr.matchAll(/\b(?:processor|process|nodejs)_[a-zA-Z0-9_]+/g)].map((m) => m[0])

/** Metrics inside rate(...) / increase(...) / irate(...). */
const rated = (expr: string): ReadonlyArray<string> =>
  [...expr.matchAll(/\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1]!)

/** Labels in `by (...)` / `without (...)` clauses. */
const groupingLabels = (expr: string): ReadonlyArray<string> =>
  [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(",").map((l) => l.trim()).filter((l) => l !== ""))

// Labels Prometheus adds at scrape time; the exposition cannot have them.
const TARGET_LABELS = new Set(["instance", "job"])

/** What is wrong with the dashboard's queries against this exposition; empty when nothing is. */
const problems = (exposition: Exposition): ReadonlyArray<string> => {
  const found: Array<string> = []
  const queries = [
    ...queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr }))),
    ...dashboard.templating.list.flatMap((v) =>
      v.definition === undefined ? [] : [{ where: `variable ${v.name}`, expr: v.definition.replace(/(\w+),/, "$1{}, ") }]
    )
  ]
  for (const { expr, where } of queries) {
    const selectors = selectorsOf(expr)
    for (const name of metricLikeNames(expr)) {
      if (!selectors.some((s) => s.name === name)) found.push(`${where}: ${name} without a selector`)
    }
    for (const { matchers, name } of selectors) {
      const samples = exposition.samples.filter((s) => s.name === name)
      if (samples.length === 0) {
        found.push(`${where}: ${name} is not in the exposition`)
        continue
      }
      for (const { label, op, value } of matchers) {
        if (TARGET_LABELS.has(label)) continue
        if (op !== "=") found.push(`${where}: ${name}{${label}${op}…} is not checked by this test`)
        else if (!samples.some((s) => s.labels.get(label) === value)) found.push(`${where}: no ${name}{${label}="${value}"}`)
      }
    }
    for (const label of groupingLabels(expr)) {
      if (TARGET_LABELS.has(label)) continue
      const carried = selectors.some(({ name }) => exposition.samples.some((s) => s.name === name && s.labels.has(label)))
      if (!carried) found.push(`${where}: groups by ${label}, which none of its metrics has`)
    }
    for (const name of rated(expr)) {
      const family = familyOf(exposition, name)
      const type = family === undefined ? undefined : exposition.types.get(family)
      const ok = type === "counter" || ((type === "histogram" || type === "summary") && name !== family)
      if (!ok) found.push(`${where}: rate over ${name}, a ${type ?? "unknown"}, not a counter`)
    }
    for (const m of expr.matchAll(/histogram_quantile\([^,]+,[^{]*?([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)) {
      const name = m[1]!
      if (!name.endsWith("_bucket") || exposition.types.get(name.slice(0, -"_bucket".length)) !== "histogram") {
        found.push(`${where}: histogram_quantile over ${name}, not a histogram's buckets`)
      }
    }
  }
  return found
}

describe("Grafana dashboard", () => {
  it("is well formed: unique ids, panels on the 24-column grid without overlap, one data source, every target a query", () => {
    const ids = allPanels.map((p) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    for (const p of allPanels) {
      const { h, w, x, y } = p.gridPos
      expect(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, p.title).toBe(true)
    }
    for (const [i, a] of allPanels.entries()) {
      for (const b of allPanels.slice(i + 1)) {
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w &&
          a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h
        expect(overlap, `"${a.title}" and "${b.title}" overlap`).toBe(false)
      }
    }
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: "${DS_PROMETHEUS}" })
      const targets = p.targets ?? []
      expect(targets.length, p.title).toBeGreaterThan(0)
      expect(new Set(targets.map((t) => t.refId)).size, p.title).toBe(targets.length)
      for (const t of targets) expect(t.expr, p.title).toMatch(/\S/)
    }
    // The process row is there.
    expect(allPanels.find((p) => p.type === "row" && p.title === "Process")).toBeDefined()
  })

  it.scopedLive("queries only metrics, labels and types that a running worker's /metrics has", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* spawnWorker({ ...t.env, LOG_LEVEL: "info" })
      yield* waitForLog(worker, "http listening on port", 60_000)
      const port = Number(/http listening on port (\d+)/.exec(worker.output())![1])

      // Records written and dead-lettered, so the histograms and labelled series have samples.
      yield* publish(t.redis, t.stream, [...generatePayloads({ devices: 10, seed: 7, count: 100 }), "{not json"])

      // Sampled gauges (group, pool) appear within their 5 s period: poll until nothing is missing, then report
      // what still is.
      const scrape = Effect.promise(async () => {
        const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })
        return parseExposition(await response.text())
      })
      const deadline = Date.now() + 30_000
      let found = problems(yield* scrape)
      while (found.length > 0 && Date.now() < deadline) {
        yield* Effect.sleep("200 millis")
        found = problems(yield* scrape)
      }
      expect(found).toEqual([])

      // And the checker itself finds what it should: a misspelt metric, a label no series has, rate over a gauge.
      const exposition = yield* scrape
      const broken = (expr: string) => {
        const original = queryPanels[0]!.targets![0]!
        const saved = original.expr
        ;(original as { expr: string }).expr = expr
        try {
          return problems(exposition)
        } finally {
          ;(original as { expr: string }).expr = saved
        }
      }
      expect(broken("sum(rate(processor_records_consumd_total{instance=~\"$instance\"}[5m]))").join()).toContain("not in the exposition")
      expect(broken("sum(rate(processor_records_total{instance=~\"$instance\", outcome=\"lost\"}[5m]))").join()).toContain("outcome=\"lost\"")
      expect(broken("sum by (space) (process_resident_memory_bytes{instance=~\"$instance\"})").join()).toContain("groups by space")
      expect(broken("rate(process_resident_memory_bytes{instance=~\"$instance\"}[5m])").join()).toContain("not a counter")
      expect(broken("histogram_quantile(0.99, sum by (le) (rate(nodejs_eventloop_lag_p99_seconds{instance=~\"$instance\"}[5m])))").join())
        .toContain("not a histogram's buckets")
      expect(broken("process_cpu_seconds_total").join()).toContain("without a selector")
    }), 120_000)
})
