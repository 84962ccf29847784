// The cost of observability: throughput of the in-process worker draining a preloaded stream
//   (a) with spans exported over OTLP/HTTP (to a local sink that accepts and discards them) and /metrics scraped
//       every second, and
//   (b) with no OTLP endpoint (no tracer installed) and nobody scraping,
// each on a fresh database and stream, alternating a b b a … so that warm-up and drift hit both alike.
// Effect's metrics are updated in both: they are part of the pipeline, not an option.
//
//   npx tsx bench/overhead.ts [--n 100000] [--devices 1000] [--rounds 2] [--warmup 20000] [--scrape-ms 1000]
//
// The clock runs from the pipeline's "processor ready" (migrations done, group created) until every entry is
// acknowledged (XPENDING empty, group lag 0); acknowledgement follows the commit, so that is "all written".
// Besides records/s (wall clock, sensitive to whatever else runs on the machine) it reports this process's CPU
// time per record over the same interval, which other load disturbs much less. A warm-up run (not reported)
// comes first so that neither variant pays for the JIT alone.

import { randomBytes } from "node:crypto"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { loadavg } from "node:os"
import { parseArgs } from "node:util"
import { ConfigProvider, Effect, Fiber, Layer, Logger, LogLevel } from "effect"
import { Redis as IORedis } from "ioredis"
import pg from "pg"
import { ProcessorConfig, settings } from "../src/config/Config.js"
import { generatePayloads } from "../src/simulate/Generator.js"
import { publish } from "../src/simulate/Publish.js"
import * as Worker from "../src/Worker.js"

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "100000" },
    devices: { type: "string", default: "1000" },
    rounds: { type: "string", default: "2" },
    warmup: { type: "string", default: "20000" },
    "scrape-ms": { type: "string", default: "1000" }
  }
})
const N = Number(values.n)
const DEVICES = Number(values.devices)
const ROUNDS = Number(values.rounds)
const WARMUP = Number(values.warmup)
const SCRAPE_MS = Number(values["scrape-ms"])
const ADMIN_URL = process.env["TEST_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
const REDIS_URL = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const unique = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`
const log = (line: string) => process.stderr.write(`[overhead] ${line}\n`)

const admin = async (text: string) => {
  const client = new pg.Client({ connectionString: ADMIN_URL })
  await client.connect()
  try {
    return await client.query(text)
  } finally {
    await client.end()
  }
}

const databaseUrl = (name: string) => {
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  return url.toString()
}

/** An OTLP/HTTP endpoint that accepts everything and keeps only counts. */
const startSink = () =>
  new Promise<{ server: Server; url: string; stats: { requests: number; bytes: number } }>((resolve) => {
    const stats = { requests: 0, bytes: 0 }
    const server = createServer((req, res) => {
      req.on("data", (d: Buffer) => (stats.bytes += d.length))
      req.on("end", () => {
        stats.requests++
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, stats }))
  })

interface Result {
  readonly variant: "a" | "b"
  readonly seconds: number
  readonly rate: number
  /** CPU time of this process (user + system) per record, in microseconds. */
  readonly cpuMicros: number
  readonly note: string
}

const groupDone = async (redis: IORedis, stream: string, group: string) => {
  const groups = (await redis.xinfo("GROUPS", stream)) as Array<Array<unknown>>
  for (const g of groups) {
    const info = new Map<unknown, unknown>()
    for (let i = 0; i < g.length; i += 2) info.set(g[i], g[i + 1])
    if (info.get("name") === group) return info.get("lag") === 0 && info.get("pending") === 0
  }
  return false
}

const runOnce = async (variant: "a" | "b", payloads: ReadonlyArray<string>, redis: IORedis, sink: Awaited<ReturnType<typeof startSink>>): Promise<Result> => {
  const db = unique("bench_overhead")
  const prefix = unique("bench:overhead")
  const stream = `${prefix}:t`
  const dlq = `${prefix}:dlq`
  const group = "bench"
  await admin(`CREATE DATABASE ${db}`)
  try {
    await Effect.runPromise(publish(redis, stream, payloads, 2_000))

    const env: Record<string, string> = {
      POSTGRES_URL: databaseUrl(db),
      REDIS_URL,
      REDIS_STREAM: stream,
      REDIS_DLQ_STREAM: dlq,
      REDIS_GROUP: group,
      REDIS_CONSUMER: "bench-1",
      HTTP_PORT: "0",
      ...(variant === "a" ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_SERVICE_NAME: "processor-bench" } : {})
    }
    let port: number | undefined
    let readyAt: number | undefined
    let cpuAtReady: NodeJS.CpuUsage | undefined
    const logger = Logger.make((options) => {
      const text = String(Array.isArray(options.message) ? options.message[0] : options.message)
      if (text === "processor ready" && readyAt === undefined) {
        readyAt = performance.now()
        cpuAtReady = process.cpuUsage()
      }
      const m = /^http listening on port (\d+)$/.exec(text)
      if (m !== null) port = Number(m[1])
      if (LogLevel.greaterThanEqual(options.logLevel, LogLevel.Warning)) Logger.prettyLoggerDefault.log(options)
    })
    const config = Layer.effect(ProcessorConfig, Effect.withConfigProvider(settings, ConfigProvider.fromMap(new Map(Object.entries(env)))))
    const fiber = Effect.runFork(Worker.run.pipe(
      Effect.provide(config),
      Effect.provide(Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.Info)))
    ))

    const requestsBefore = sink.stats.requests
    let scrapes = 0
    let scrapeBytes = 0
    let done = false
    const scraper = (async () => {
      if (variant !== "a") return
      while (!done) {
        if (port !== undefined) {
          const body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "")
          scrapes++
          scrapeBytes += body.length
        }
        await sleep(SCRAPE_MS)
      }
    })()

    const deadline = Date.now() + 600_000
    while (!(readyAt !== undefined && (await groupDone(redis, stream, group)))) {
      if (fiber.unsafePoll() !== null) throw new Error(`worker ended early: ${String(fiber.unsafePoll())}`)
      if (Date.now() > deadline) throw new Error("timed out")
      await sleep(10)
    }
    const seconds = (performance.now() - readyAt!) / 1000
    const cpu = process.cpuUsage(cpuAtReady)
    done = true
    await scraper
    await Effect.runPromise(Fiber.interrupt(fiber))

    const check = new pg.Client({ connectionString: databaseUrl(db) })
    await check.connect()
    const rows = Number((await check.query<{ n: string }>("SELECT count(*) AS n FROM positions")).rows[0]!.n)
    await check.end()
    if (rows !== payloads.length) throw new Error(`expected ${payloads.length} rows, found ${rows}`)

    const note = variant === "a"
      ? `OTLP posts ${sink.stats.requests - requestsBefore} (flushed at stop included), scrapes ${scrapes} (${Math.round(scrapeBytes / Math.max(scrapes, 1))} B each)`
      : "no tracer, no scrapes"
    return { variant, seconds, rate: payloads.length / seconds, cpuMicros: (cpu.user + cpu.system) / payloads.length, note }
  } finally {
    await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {})
    await redis.del(stream, dlq).catch(() => 0)
  }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const main = async () => {
  log(`N=${N} devices=${DEVICES} rounds=${ROUNDS} scrape every ${SCRAPE_MS} ms; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)
  const payloads = generatePayloads({ devices: DEVICES, seed: 42, count: N })
  const redis = new IORedis(REDIS_URL)
  const sink = await startSink()
  if (WARMUP > 0) {
    const warm = await runOnce("a", generatePayloads({ devices: DEVICES, seed: 7, count: WARMUP }), redis, sink)
    log(`warm-up: ${WARMUP} records at ${Math.round(warm.rate).toLocaleString("en")} records/s (not counted)`)
  }
  const order: Array<"a" | "b"> = []
  for (let r = 0; r < ROUNDS; r++) order.push(...(r % 2 === 0 ? ["a", "b"] as const : ["b", "a"] as const))
  const results: Array<Result> = []
  try {
    for (const [i, variant] of order.entries()) {
      const result = await runOnce(variant, payloads, redis, sink)
      results.push(result)
      const label = variant === "a" ? "(a) metrics + OTLP tracing" : "(b) no OTLP endpoint     "
      console.log(
        `run ${i + 1} ${label}: ${N} records in ${result.seconds.toFixed(2)} s = ${Math.round(result.rate).toLocaleString("en")} records/s, ` +
          `${result.cpuMicros.toFixed(1)} µs CPU/record  [${result.note}]`
      )
    }
  } finally {
    await redis.quit()
    await new Promise<void>((resolve) => sink.server.close(() => resolve()))
  }
  const of = (variant: "a" | "b", f: (r: Result) => number) => median(results.filter((r) => r.variant === variant).map(f))
  const [a, b] = [of("a", (r) => r.rate), of("b", (r) => r.rate)]
  const [ca, cb] = [of("a", (r) => r.cpuMicros), of("b", (r) => r.cpuMicros)]
  console.log(`median (a) metrics + OTLP tracing: ${Math.round(a).toLocaleString("en")} records/s, ${ca.toFixed(1)} µs CPU/record`)
  console.log(`median (b) no OTLP endpoint:       ${Math.round(b).toLocaleString("en")} records/s, ${cb.toFixed(1)} µs CPU/record`)
  console.log(`(a) vs (b): throughput ${(((a - b) / b) * 100).toFixed(1)}%, CPU per record ${(((ca - cb) / cb) * 100).toFixed(1)}%`)
  log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`)
}

main().then(() => process.exit(0), (error: unknown) => {
  console.error(error)
  process.exit(1)
})
