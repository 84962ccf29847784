// pnpm bench [flags]: the processor's throughput, latency and memory against the write limit and a bare
// baseline, on the local Redis and PostgreSQL. See bench/README.md for what each figure means.
import { execSync } from "node:child_process"
import { mkdir, writeFile } from "node:fs/promises"
import { cpus, totalmem } from "node:os"
import { join } from "node:path"
import type { Redis as IORedis } from "ioredis"
import { type Decoded, decodePayload } from "../src/position/decode.js"
import { type Figure, type Options, parseOptions, USAGE } from "./args.js"
import { buildBaseline, buildWorker, type WorkerCommand } from "./child.js"
import { type DrainResult, drainRun } from "./drain.js"
import { abort, connectRedis, load, log, releaseAll, RESULTS_DIR, ROOT } from "./infra.js"
import { type LatencyResult, latencyRun } from "./latency.js"
import { payloadChunks, payloads } from "./load.js"
import { format as formatProfile, type Summary, summarize } from "./profile-top.js"
import { BATCH, copyBatches, type WriteLimitVariant, writeLimitVariant } from "./writeLimit.js"

interface Results {
  meta: Record<string, unknown>
  writeLimit?: { rowsPerSecond: number; best: string; formatMicrosPerRow: number; variants: Array<WriteLimitVariant> }
  e2e?: DrainResult & { ratioToLimit: number | null; profiled: boolean }
  baseline?: DrainResult & { processorRatio: number | null }
  /** Several worker processes on one group, the same entries as e2e; ratio = rows/s ÷ e2e's rows/s. */
  scale?: DrainResult & { ratioToOne: number | null }
  /** The same entry count over two fleet sizes; ratios are the larger fleet's ÷ the smaller's. */
  fleet?: { small: DrainResult; large: DrainResult; cpuRatio: number; rateRatio: number }
  large?: { processor?: DrainResult; baseline?: DrainResult; processorRatio: number | null }
  latency?: Array<LatencyResult>
  /** The latency load's rates; nearMaxRate is derived from the baseline's drain rate (or --max-rate). */
  latencyRates?: { rates: Array<number>; nearMaxRate: number | null; nearMaxFrom: string }
  rss?: DrainResult & { ratioToLimit: number | null }
  profile?: Summary
  /** Every ratio of the issue's targets, with its verdict (null: not measured). */
  checks: Array<Check>
  errors: Array<{ figure: string; message: string }>
}

const stamp = new Date().toISOString().replace(/[:.]/g, "-")

const gitHead = () => {
  try {
    const head = execSync("git rev-parse --short HEAD", { cwd: ROOT, encoding: "utf8" }).trim()
    const dirty = execSync("git status --porcelain -- src migrations", { cwd: ROOT, encoding: "utf8" }).trim() !== ""
    return `${head}${dirty ? " (src or migrations modified)" : ""}`
  } catch {
    return "unknown"
  }
}

const decodeAll = (texts: ReadonlyArray<string>): Array<Decoded> => {
  const out = new Array<Decoded>(texts.length)
  for (let i = 0; i < texts.length; i++) {
    const d = decodePayload(texts[i])
    if (d._tag === "Left") throw new Error(`generated payload ${i} does not decode: ${d.left}`)
    out[i] = d.right
  }
  return out
}

const run = async (o: Options, redis: IORedis, results: Results) => {
  const want = (f: Parameters<Options["only"]["has"]>[0]) => o.only.has(f)
  const needWorker = want("e2e") || want("scale") || want("fleet") || (want("large") && !o.skipLarge) || want("latency") ||
    (want("rss") && !o.skipRss)
  let worker: WorkerCommand | undefined
  if (needWorker) {
    log("building the worker (tsc -p tsconfig.build.json)")
    const built = buildWorker()
    // The defaults first: a flag given again in --node-flags overrides its default (the last one counts).
    worker = { ...built, args: [...built.defaultFlags, ...o.workerNodeFlags, ...built.args] }
    results.meta["worker"] = { how: worker.how, args: worker.args, defaultFlags: worker.defaultFlags, buildSeconds: worker.buildSeconds }
    log(`worker: node ${worker.args.join(" ")} (build ${worker.buildSeconds.toFixed(1)} s)`)
  }
  const dataset = { count: o.n, devices: o.devices, seed: o.seed }
  const attempt = async (figure: string, f: () => Promise<void>) => {
    try {
      await f()
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      log(`${figure} FAILED: ${message}`)
      results.errors.push({ figure, message })
    }
  }

  let texts: Array<string> | undefined
  if (want("limit") || want("e2e") || want("baseline") || want("scale")) {
    const t0 = performance.now()
    texts = payloads(dataset)
    log(`generated ${texts.length} payloads over ${o.devices} devices in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }

  if (want("limit")) {
    await attempt("write limit", async () => {
      const t0 = performance.now()
      const positions = decodeAll(texts!)
      log(`decoded ${positions.length} payloads in ${((performance.now() - t0) / 1000).toFixed(1)} s (not timed)`)
      const batches = copyBatches(positions)
      positions.length = 0
      const variants: Array<WriteLimitVariant> = []
      for (const v of [{ concurrency: 1, returning: false }, { concurrency: 2, returning: false }, { concurrency: 2, returning: true }]) {
        variants.push(await writeLimitVariant(o.postgresUrl, batches, v))
      }
      const best = variants.filter((v) => !v.returning).sort((a, b) => b.rowsPerSecond - a.rowsPerSecond)[0]!
      results.writeLimit = { rowsPerSecond: best.rowsPerSecond, best: best.label, formatMicrosPerRow: batches.formatMicrosPerRow, variants }
    })
  }

  if (want("e2e")) {
    await attempt("processor e2e", async () => {
      const r = await drainRun({
        label: "processor e2e",
        adminUrl: o.postgresUrl,
        redisUrl: o.redisUrl,
        redis,
        chunks: [texts!],
        entries: o.n,
        devices: o.devices,
        nodeArgs: worker!.args,
        migrateFirst: false,
        env: o.workerEnv,
        ...(o.profile ? { cpuProfileName: `worker-e2e-${stamp}.cpuprofile` } : {})
      })
      results.e2e = { ...r, ratioToLimit: results.writeLimit ? r.rowsPerSecond / results.writeLimit.rowsPerSecond : null, profiled: o.profile }
      if (r.cpuProfile !== undefined) results.profile = summarize(r.cpuProfile, 25, r.window)
    })
  }

  const drain = (label: string, consumer: "processor" | "baseline", chunks: Iterable<ReadonlyArray<string>>, entries: number, devices: number, processes = 1) =>
    drainRun({
      label,
      adminUrl: o.postgresUrl,
      redisUrl: o.redisUrl,
      redis,
      chunks,
      entries,
      devices,
      nodeArgs: consumer === "processor" ? worker!.args : baselineArgs!,
      migrateFirst: consumer === "baseline",
      processes,
      ...(consumer === "processor" ? { env: o.workerEnv } : {})
    })
  const baselineArgs = want("baseline") || want("large") || want("latency") ? await buildBaseline() : undefined

  if (want("baseline")) {
    await attempt("baseline", async () => {
      const r = await drain("baseline", "baseline", [texts!], o.n, o.devices)
      results.baseline = { ...r, processorRatio: results.e2e ? results.e2e.rowsPerSecond / r.rowsPerSecond : null }
    })
  }

  if (want("scale")) {
    await attempt(`${o.processes} processes`, async () => {
      const r = await drain(`processor x${o.processes}`, "processor", [texts!], o.n, o.devices, o.processes)
      results.scale = { ...r, ratioToOne: results.e2e ? r.rowsPerSecond / results.e2e.rowsPerSecond : null }
    })
  }
  texts = undefined

  if (want("fleet")) {
    await attempt("fleet", async () => {
      const [smallFleet, largeFleet] = o.fleetDevices
      const run = (devices: number) =>
        drain(`fleet ${devices} devices`, "processor", payloadChunks({ count: o.n, devices, seed: o.seed }, 50_000), o.n, devices)
      const small = await run(smallFleet)
      const large = await run(largeFleet)
      results.fleet = {
        small,
        large,
        cpuRatio: large.consumerCpuMicrosPerRow / small.consumerCpuMicrosPerRow,
        rateRatio: large.rowsPerSecond / small.rowsPerSecond
      }
    })
  }

  if (want("large") && !o.skipLarge) {
    const large: NonNullable<Results["large"]> = { processorRatio: null }
    results.large = large
    const chunks = () => payloadChunks({ count: o.largeN, devices: o.devices, seed: o.seed }, 50_000)
    await attempt(`processor e2e @${o.largeN}`, async () => {
      large.processor = await drain(`processor e2e ${o.largeN}`, "processor", chunks(), o.largeN, o.devices)
    })
    await attempt(`baseline @${o.largeN}`, async () => {
      large.baseline = await drain(`baseline ${o.largeN}`, "baseline", chunks(), o.largeN, o.devices)
    })
    if (large.processor && large.baseline) large.processorRatio = large.processor.rowsPerSecond / large.baseline.rowsPerSecond
  }

  if (want("latency")) {
    results.latency = []
    const base = results.baseline ?? results.large?.baseline
    const nearMaxRate = o.maxRate ?? (base && o.nearMax !== undefined ? Math.max(1000, Math.floor((o.nearMax * base.rowsPerSecond) / 1000) * 1000) : null)
    const nearMaxFrom = o.maxRate !== undefined
      ? "--max-rate"
      : o.nearMax === undefined ? "not asked for (--quick)"
      : base ? `${o.nearMax} × the baseline's ${int(base.rowsPerSecond)} rows/s draining ${int(base.entries)} entries` : "no baseline figure in this run"
    if (nearMaxRate === null && o.nearMax !== undefined) log("latency: no baseline rate to derive the rate near its maximum from (run the baseline figure or give --max-rate)")
    const rates = [...new Set([...o.rates, ...(nearMaxRate === null ? [] : [nearMaxRate])])]
    results.latencyRates = { rates, nearMaxRate, nearMaxFrom }
    for (const rate of rates) {
      for (const consumer of ["processor", "baseline"] as const) {
        await attempt(`latency ${consumer} @${rate}/s`, async () => {
          results.latency!.push(await latencyRun({
            consumer,
            migrateFirst: consumer === "baseline",
            adminUrl: o.postgresUrl,
            redisUrl: o.redisUrl,
            redis,
            rate,
            duration: o.duration,
            warmup: o.warmup,
            devices: o.devices,
            seed: o.seed,
            nodeArgs: consumer === "processor" ? worker!.args : baselineArgs!,
            env: consumer === "processor" ? o.workerEnv : {}
          }))
        })
      }
    }
  }

  if (want("rss") && !o.skipRss) {
    await attempt("peak RSS", async () => {
      const r = await drain("rss backlog", "processor", payloadChunks({ count: o.rssN, devices: o.rssDevices, seed: o.seed }, 50_000), o.rssN, o.rssDevices)
      results.rss = { ...r, ratioToLimit: results.writeLimit ? r.rowsPerSecond / results.writeLimit.rowsPerSecond : null }
    })
  }
}

// ---- the report ---------------------------------------------------------------------------------------------

/** One of the issue's targets (#11): a ratio within this run (or MiB, ms) and its verdict; null when not measured. */
export interface Check {
  readonly id: string
  readonly figure: string
  readonly value: string
  readonly target: string
  readonly measured: number | null
  readonly ok: boolean | null
  /** The figures it needs were asked for (--only, --skip-*); the table leaves out unmeasured rows that were not. */
  readonly requested: boolean
}

const int = (x: number) => Math.round(x).toLocaleString("en-US")
const ms = (x: number) => (x < 10 ? x.toFixed(1) : x.toFixed(0))
const ratio = (x: number) => x.toFixed(2)
const micros = (x: number) => x.toFixed(1)
const WITHIN = 0.15

const check = (
  requested: boolean,
  id: string,
  figure: string,
  target: string,
  measured: number | null | undefined,
  pass: (x: number) => boolean,
  value: (x: number) => string
): Check =>
  measured === null || measured === undefined || !Number.isFinite(measured)
    ? { id, figure, value: "not measured", target, measured: null, ok: null, requested }
    : { id, figure, value: value(measured), target, measured, ok: pass(measured), requested }

const checks = (o: Options, r: Results): Array<Check> => {
  const out: Array<Check> = []
  const asked = (...figures: ReadonlyArray<Figure>) => figures.every((f) => o.only.has(f))
  const pair = asked("e2e", "baseline")
  const e2e = r.e2e
  const base = r.baseline
  const both = e2e !== undefined && base !== undefined
  out.push(check(pair, "worker-cpu", "worker CPU/row ÷ baseline's", "≤ 0.75",
    both ? e2e.consumerCpuMicrosPerRow / base.consumerCpuMicrosPerRow : null, (x) => x <= 0.75,
    (x) => `${ratio(x)} (${micros(e2e!.consumerCpuMicrosPerRow)} / ${micros(base!.consumerCpuMicrosPerRow)} µs)`))
  out.push(check(pair, "postgres-cpu", "PostgreSQL CPU/row, processor ÷ baseline", "≤ 0.6",
    both ? e2e.postgresCpuMicrosPerRow / base.postgresCpuMicrosPerRow : null, (x) => x <= 0.6,
    (x) => `${ratio(x)} (${micros(e2e!.postgresCpuMicrosPerRow)} / ${micros(base!.postgresCpuMicrosPerRow)} µs)`))
  out.push(check(pair, "e2e", `e2e rows/s @${int(o.n)}, processor ÷ baseline`, "≥ 1.5",
    both ? e2e.rowsPerSecond / base.rowsPerSecond : null, (x) => x >= 1.5,
    (x) => `${ratio(x)} (${int(e2e!.rowsPerSecond)} / ${int(base!.rowsPerSecond)})`))
  const large = r.large
  out.push(check(asked("large") && !o.skipLarge, "e2e-large", `e2e rows/s @${int(o.largeN)}, processor ÷ baseline`, "≥ 1.5",
    large?.processorRatio, (x) => x >= 1.5,
    (x) => `${ratio(x)} (${int(large!.processor!.rowsPerSecond)} / ${int(large!.baseline!.rowsPerSecond)})`))
  const fleet = r.fleet
  const [smallFleet, largeFleet] = o.fleetDevices
  const flat = (x: number) => Math.abs(x - 1) <= WITHIN
  out.push(check(asked("fleet"), "fleet-cpu", `worker CPU/row, ${int(largeFleet)} ÷ ${int(smallFleet)} devices`, "within 15 %",
    fleet?.cpuRatio, flat,
    (x) => `${ratio(x)} (${micros(fleet!.large.consumerCpuMicrosPerRow)} / ${micros(fleet!.small.consumerCpuMicrosPerRow)} µs)`))
  out.push(check(asked("fleet"), "fleet-rate", `rows/s, ${int(largeFleet)} ÷ ${int(smallFleet)} devices`, "within 15 %",
    fleet?.rateRatio, flat,
    (x) => `${ratio(x)} (${int(fleet!.large.rowsPerSecond)} / ${int(fleet!.small.rowsPerSecond)})`))
  const settings = [...o.workerNodeFlags, ...Object.entries(o.workerEnv).map(([k, v]) => `${k}=${v}`)]
  out.push(check(asked("rss") && !o.skipRss, "rss", `peak RSS, ${int(o.rssN)} backlog / ${int(o.rssDevices)} devices`, "≤ 200 MiB, default settings",
    o.skipRss ? null : r.rss?.peakRssMiB, (x) => x <= 200,
    (x) => `${x.toFixed(0)} MiB (${int(r.rss!.rowsPerSecond)} rows/s${settings.length > 0 ? `; with ${settings.join(" ")}` : ""})`))
  for (const rate of r.latencyRates?.rates ?? []) {
    const p = r.latency?.find((l) => l.consumer === "processor" && l.rate === rate)
    const b = r.latency?.find((l) => l.consumer === "baseline" && l.rate === rate)
    const near = rate === r.latencyRates?.nearMaxRate ? " (near the baseline's max)" : ""
    out.push(check(true, `latency-${rate}`, `latency p99 @${int(rate)}/s${near}, processor ÷ baseline`, "≤ 1",
      p && b ? p.p99Ms / b.p99Ms : null, (x) => x <= 1,
      (x) => `${ratio(x)} (${ms(p!.p99Ms)} / ${ms(b!.p99Ms)} ms; p50 ${ms(p!.p50Ms)} vs ${ms(b!.p50Ms)}; sent ${int(p!.load.achievedRate)} / ${int(b!.load.achievedRate)}/s)`))
  }
  for (const [rate, bound] of [[2000, 20], [20000, 250]] as const) {
    const p = r.latency?.find((l) => l.consumer === "processor" && l.rate === rate)
    if (p === undefined && !(r.latencyRates?.rates.includes(rate) ?? false)) continue
    out.push(check(true, `latency-abs-${rate}`, `latency p50/p95/p99/max @${int(rate)}/s, processor`, `p99 ≤ ${bound} ms (README)`,
      p?.p99Ms, (x) => x <= bound,
      () => `${ms(p!.p50Ms)} / ${ms(p!.p95Ms)} / ${ms(p!.p99Ms)} / ${ms(p!.maxMs)} ms`))
  }
  const scale = r.scale
  out.push(check(asked("e2e", "scale"), "scale", `drain rows/s, ${o.processes} processes ÷ 1`, "> 1",
    scale?.ratioToOne, (x) => x > 1,
    (x) => `${ratio(x)} (${int(scale!.rowsPerSecond)} / ${int(e2e!.rowsPerSecond)})`))
  return out
}

/** Figures that are not targets themselves but explain them. */
const figures = (o: Options, r: Results): Array<[string, string]> => {
  const rows: Array<[string, string]> = []
  const limit = r.writeLimit
  if (limit) {
    rows.push([`write limit (rows/s), ${BATCH.toLocaleString("en-US")}/batch`,
      `${int(limit.rowsPerSecond)} (${limit.variants.map((v) => `${v.concurrency}c${v.returning ? "+RET" : ""} ${int(v.rowsPerSecond)}`).join(", ")})`])
  }
  const drained: Array<[string, DrainResult | undefined]> = [
    [`processor @${int(o.n)}`, r.e2e],
    [`baseline @${int(o.n)}`, r.baseline],
    [`${o.processes} processes @${int(o.n)}`, r.scale],
    [`processor @${int(o.n)}, ${int(o.fleetDevices[0])} devices`, r.fleet?.small],
    [`processor @${int(o.n)}, ${int(o.fleetDevices[1])} devices`, r.fleet?.large],
    [`processor @${int(o.largeN)}`, r.large?.processor],
    [`baseline @${int(o.largeN)}`, r.large?.baseline],
    [`processor, RSS run`, r.rss]
  ]
  for (const [what, d] of drained) {
    if (d === undefined) continue
    rows.push([`${what}: rows/s, CPU µs/row worker + PostgreSQL, peak RSS`,
      `${int(d.rowsPerSecond)}, ${micros(d.consumerCpuMicrosPerRow)} + ${micros(d.postgresCpuMicrosPerRow)}, ${d.peakRssMiB.toFixed(0)} MiB` +
      ` (${d.avgRowsPerTransaction.toFixed(0)} rows/txn${limit ? `, ${ratio(d.rowsPerSecond / limit.rowsPerSecond)} of the limit` : ""})`])
  }
  for (const l of r.latency ?? []) {
    rows.push([`latency p50/p95/p99/max @${int(l.rate)}/s, ${l.consumer}`,
      `${ms(l.p50Ms)} / ${ms(l.p95Ms)} / ${ms(l.p99Ms)} / ${ms(l.maxMs)} ms (sent ${int(l.load.achievedRate)}/s, max backlog ${int(l.load.maxBacklog)})`])
  }
  const idle = r.latency?.find((l) => l.consumer === "processor")?.idleRssMiB
  if (idle !== undefined) rows.push(["worker RSS idle", `${idle.toFixed(0)} MiB`])
  return rows
}

const markdown = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n")
}

const report = (o: Options, r: Results): string => {
  const verdict = (ok: boolean | null) => (ok === null ? "–" : ok ? "✓" : "✗")
  return [
    markdown(["target (issue #11)", "value", "target", ""], r.checks.filter((c) => c.requested || c.ok !== null).map((c) => [c.figure, c.value, c.target, verdict(c.ok)])),
    "",
    markdown(["figure", "value"], figures(o, r))
  ].join("\n")
}

const main = async () => {
  let o: Options
  try {
    o = parseOptions(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`)
    process.exit(2)
  }
  const results: Results = {
    meta: {
      startedAt: new Date().toISOString(),
      git: gitHead(),
      node: process.version,
      cpus: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      loadAtStart: load(),
      options: { ...o, only: [...o.only] }
    },
    checks: [],
    errors: []
  }
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    log(`${signal}: cleaning up`)
    void abort().finally(() => process.exit(130))
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)

  const redis = await connectRedis(o.redisUrl)
  try {
    await run(o, redis, results)
  } catch (error) {
    results.errors.push({ figure: "bench", message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
    log(`bench failed: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    await releaseAll()
    await redis.quit().catch(() => redis.disconnect())
  }
  results.meta["finishedAt"] = new Date().toISOString()
  results.meta["loadAtEnd"] = load()
  results.checks = checks(o, results)

  await mkdir(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${stamp}.json`)
  await writeFile(file, JSON.stringify(results, null, 2))
  if (results.profile) process.stdout.write(`\n${formatProfile(results.profile)}\n`)
  // "Default settings" include the start script's node flags: say which they were.
  const worker = results.meta["worker"] as { readonly args: ReadonlyArray<string> } | undefined
  process.stdout.write(`\n${report(o, results)}\n\n${worker === undefined ? "" : `worker: node ${worker.args.join(" ")}; `}` +
    `load average start ${(results.meta["loadAtStart"] as Array<number>).join(" ")}, ` +
    `end ${(results.meta["loadAtEnd"] as Array<number>).join(" ")}; results: ${file}\n`)
  if (results.errors.length > 0) {
    process.stdout.write(`\n${results.errors.length} figure(s) failed:\n${results.errors.map((e) => `  ${e.figure}: ${e.message.split("\n")[0]}`).join("\n")}\n`)
    process.exitCode = 1
  }
}

void main()
