// npm run bench -- [flags]: the processor's throughput, latency and memory against the write limit and a bare
// baseline, on the local Redis and PostgreSQL. See bench/README.md for what each figure means.
import { execSync } from "node:child_process"
import { mkdir, writeFile } from "node:fs/promises"
import { cpus, totalmem } from "node:os"
import { join } from "node:path"
import type { Redis as IORedis } from "ioredis"
import { type Decoded, decodePayload } from "../src/position/decode.js"
import { type Options, parseOptions, USAGE } from "./args.js"
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
  latency?: Array<LatencyResult>
  rss?: DrainResult & { ratioToLimit: number | null }
  profile?: Summary
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
  const needWorker = want("e2e") || want("latency") || (want("rss") && !o.skipRss)
  let worker: WorkerCommand | undefined
  if (needWorker) {
    log("building the worker (tsc -p tsconfig.build.json)")
    const built = buildWorker()
    worker = { ...built, args: [...o.workerNodeFlags, ...built.args] }
    results.meta["worker"] = { how: worker.how, args: worker.args, buildSeconds: worker.buildSeconds }
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
  if (want("limit") || want("e2e") || want("baseline")) {
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

  if (want("baseline")) {
    await attempt("baseline", async () => {
      const args = await buildBaseline()
      const r = await drainRun({
        label: "baseline",
        adminUrl: o.postgresUrl,
        redisUrl: o.redisUrl,
        redis,
        chunks: [texts!],
        entries: o.n,
        devices: o.devices,
        nodeArgs: args,
        migrateFirst: true
      })
      results.baseline = { ...r, processorRatio: results.e2e ? results.e2e.rowsPerSecond / r.rowsPerSecond : null }
    })
  }
  texts = undefined

  if (want("latency")) {
    results.latency = []
    for (const rate of o.rates) {
      await attempt(`latency @${rate}/s`, async () => {
        results.latency!.push(await latencyRun({
          adminUrl: o.postgresUrl,
          redisUrl: o.redisUrl,
          redis,
          rate,
          duration: o.duration,
          warmup: o.warmup,
          devices: o.devices,
          seed: o.seed,
          nodeArgs: worker!.args,
          env: o.workerEnv
        }))
      })
    }
  }

  if (want("rss") && !o.skipRss) {
    await attempt("peak RSS", async () => {
      const rssData = { count: o.rssN, devices: o.rssDevices, seed: o.seed }
      const r = await drainRun({
        label: "rss backlog",
        adminUrl: o.postgresUrl,
        redisUrl: o.redisUrl,
        redis,
        chunks: payloadChunks(rssData, 50_000),
        entries: o.rssN,
        devices: o.rssDevices,
        nodeArgs: worker!.args,
        migrateFirst: false,
        env: o.workerEnv
      })
      results.rss = { ...r, ratioToLimit: results.writeLimit ? r.rowsPerSecond / results.writeLimit.rowsPerSecond : null }
    })
  }
}

// ---- the report ---------------------------------------------------------------------------------------------

const int = (x: number) => Math.round(x).toLocaleString("en-US")
const ms = (x: number) => (x < 10 ? x.toFixed(1) : x.toFixed(0))
const mark = (ok: boolean | undefined) => (ok === undefined ? "" : ok ? " ✓" : " ✗")

const table = (o: Options, r: Results): string => {
  const rows: Array<[string, string, string]> = []
  const limit = r.writeLimit
  rows.push([
    `write limit (rows/s), ${BATCH.toLocaleString("en-US")}/batch`,
    limit ? `${int(limit.rowsPerSecond)} (${limit.variants.map((v) => `${v.concurrency}c${v.returning ? "+RET" : ""} ${int(v.rowsPerSecond)}`).join(", ")})` : "–",
    ""
  ])
  const e2e = r.e2e
  const e2eTarget = o.n >= 1_000_000 ? 0.7 : 0.6
  rows.push([
    `processor e2e (rows/s) @${int(o.n)}, ratio to limit`,
    e2e
      ? `${int(e2e.rowsPerSecond)}, ${e2e.ratioToLimit?.toFixed(2) ?? "–"}${mark(e2e.ratioToLimit === null ? undefined : e2e.ratioToLimit >= e2eTarget)}` +
        ` (${e2e.avgRowsPerTransaction.toFixed(0)} rows/txn${e2e.profiled ? ", profiled" : ""})`
      : "–",
    "≥ 0.6 at 200k, ≥ 0.7 at 1M"
  ])
  const base = r.baseline
  rows.push([
    "baseline (rows/s), processor/baseline",
    base ? `${int(base.rowsPerSecond)}, ${base.processorRatio?.toFixed(2) ?? "–"}${mark(base.processorRatio === null ? undefined : base.processorRatio >= 1.5)}` : "–",
    "≥ 1.5"
  ])
  const cpu = (d: DrainResult) => `${d.consumerCpuMicrosPerRow.toFixed(1)} + ${d.postgresCpuMicrosPerRow.toFixed(1)}`
  if (e2e || base) {
    rows.push([
      "CPU µs/row, consumer + postgres backends",
      `processor ${e2e ? cpu(e2e) : "–"}; baseline ${base ? cpu(base) : "–"}`,
      ""
    ])
  }
  for (const l of r.latency ?? []) {
    const target = l.rate <= 2000 ? 20 : 250
    rows.push([
      `latency p50/p95/p99/max (ms) @${int(l.rate)}/s`,
      `${ms(l.p50Ms)} / ${ms(l.p95Ms)} / ${ms(l.p99Ms)} / ${ms(l.maxMs)}${mark(l.rate <= 2000 || l.rate >= 20000 ? l.p99Ms <= target : undefined)} (sent ${int(l.load.achievedRate)}/s)`,
      l.rate <= 2000 ? "p99 ≤ 20 ms" : l.rate >= 20000 ? "p99 ≤ 250 ms" : ""
    ])
  }
  const rss = r.rss
  rows.push([
    `peak RSS backlog ${int(o.rssN)} / ${int(o.rssDevices)} devices`,
    rss
      ? `${rss.peakRssMiB.toFixed(0)} MiB${mark(rss.peakRssMiB <= 200)} (e2e ${int(rss.rowsPerSecond)} rows/s, ratio ${rss.ratioToLimit?.toFixed(2) ?? "–"})`
      : o.skipRss ? "skipped" : "–",
    "≤ 200 MiB"
  ])
  const idle = r.latency?.[0]?.idleRssMiB
  if (e2e || idle !== undefined) {
    rows.push([
      "worker RSS: idle / peak during e2e",
      `${idle === undefined ? "–" : `${idle.toFixed(0)} MiB`} / ${e2e ? `${e2e.peakRssMiB.toFixed(0)} MiB` : "–"}`,
      ""
    ])
  }
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length), ["figure", "value", "target"][i]!.length))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  return [line(["figure", "value", "target"]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n")
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

  await mkdir(RESULTS_DIR, { recursive: true })
  const file = join(RESULTS_DIR, `${stamp}.json`)
  await writeFile(file, JSON.stringify(results, null, 2))
  if (results.profile) process.stdout.write(`\n${formatProfile(results.profile)}\n`)
  process.stdout.write(`\n${table(o, results)}\n\nload average start ${(results.meta["loadAtStart"] as Array<number>).join(" ")}, ` +
    `end ${(results.meta["loadAtEnd"] as Array<number>).join(" ")}; results: ${file}\n`)
  if (results.errors.length > 0) {
    process.stdout.write(`\n${results.errors.length} figure(s) failed:\n${results.errors.map((e) => `  ${e.figure}: ${e.message.split("\n")[0]}`).join("\n")}\n`)
    process.exitCode = 1
  }
}

void main()
