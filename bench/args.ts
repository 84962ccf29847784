import { parseArgs } from "node:util"

export type Figure = "limit" | "e2e" | "baseline" | "scale" | "fleet" | "large" | "latency" | "rss"
export const FIGURES: ReadonlyArray<Figure> = ["limit", "e2e", "baseline", "scale", "fleet", "large", "latency", "rss"]

export interface Options {
  readonly n: number
  readonly devices: number
  readonly seed: number
  readonly rates: ReadonlyArray<number>
  /**
   * The latency load's last rate is this fraction of the baseline's drain rate ("near the baseline's maximum")...
   * undefined: no such rate (the --quick default, as it can take longer than the rest of a quick run).
   */
  readonly nearMax: number | undefined
  /** ... unless given as a rate (entries/s). */
  readonly maxRate: number | undefined
  /** Entries for the second e2e + baseline pair (the N = 1,000,000). */
  readonly largeN: number
  readonly skipLarge: boolean
  /** The two fleet sizes compared at the default device-state capacity (the issue: 1,000 and 100,000). */
  readonly fleetDevices: readonly [number, number]
  /** Worker processes on one group for the scale figure. */
  readonly processes: number
  readonly duration: number
  readonly warmup: number
  readonly rssN: number
  readonly rssDevices: number
  readonly skipRss: boolean
  readonly quick: boolean
  readonly profile: boolean
  readonly only: ReadonlySet<Figure>
  /** Extra variables for the worker (KEY=VALUE), e.g. to try READ_COUNT or BATCH_SIZE without editing src. */
  readonly workerEnv: Readonly<Record<string, string>>
  /** Extra `node` flags for the worker (space-separated), e.g. "--trace-gc" (not allowed in NODE_OPTIONS). */
  readonly workerNodeFlags: ReadonlyArray<string>
  readonly redisUrl: string
  readonly postgresUrl: string
}

export const USAGE = `usage: pnpm bench [--n 200000] [--devices 5000] [--rates 2000,20000 | --rate 2000]
  [--near-max 0.8 | --max-rate 50000] [--duration 10] [--warmup 2] [--large-n 1000000] [--skip-large]
  [--fleet-devices 1000,100000] [--processes 2] [--rss-n 1000000] [--rss-devices 100000] [--skip-rss] [--quick]
  [--profile] [--only ${FIGURES.join(",")}] [--env KEY=VALUE ...] [--node-flags="--trace-gc"] [--seed 42]`

const int = (raw: string | undefined, flag: string, fallback: number, min = 1): number => {
  if (raw === undefined) return fallback
  const n = Number(raw.replaceAll("_", ""))
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min}, got '${raw}'`)
  return n
}

const seconds = (raw: string | undefined, flag: string, fallback: number, min: number): number => {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n < min) throw new Error(`--${flag} must be a number of seconds ≥ ${min}, got '${raw}'`)
  return n
}

export const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      n: { type: "string" },
      devices: { type: "string" },
      seed: { type: "string" },
      rate: { type: "string" },
      rates: { type: "string" },
      "near-max": { type: "string" },
      "max-rate": { type: "string" },
      "large-n": { type: "string" },
      "skip-large": { type: "boolean" },
      "fleet-devices": { type: "string" },
      processes: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      "rss-n": { type: "string" },
      "rss-devices": { type: "string" },
      "skip-rss": { type: "boolean" },
      quick: { type: "boolean" },
      profile: { type: "boolean" },
      only: { type: "string" },
      env: { type: "string", multiple: true },
      "node-flags": { type: "string" },
      help: { type: "boolean" }
    }
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const quick = values.quick === true
  const rateText = values.rates ?? values.rate
  const rates = rateText === undefined
    ? (quick ? [2000] : [2000, 20000])
    : rateText.split(",").map((r) => int(r.trim(), "rates", 0, 1))
  const only = new Set<Figure>()
  for (const f of (values.only ?? FIGURES.join(",")).split(",")) {
    const figure = f.trim() as Figure
    if (!FIGURES.includes(figure)) throw new Error(`--only takes ${FIGURES.join(",")}; got '${f}'`)
    only.add(figure)
  }
  const fleet = (values["fleet-devices"] ?? "1000,100000").split(",").map((d) => int(d.trim(), "fleet-devices", 0))
  if (fleet.length !== 2) throw new Error(`--fleet-devices takes two fleet sizes, got '${values["fleet-devices"]}'`)
  const nearMaxText = values["near-max"] ?? (quick ? undefined : "0.8")
  const nearMax = nearMaxText === undefined ? undefined : Number(nearMaxText)
  if (nearMax !== undefined && !(nearMax > 0 && nearMax <= 2)) throw new Error(`--near-max must be a fraction in (0, 2], got '${values["near-max"]}'`)
  const workerEnv: Record<string, string> = {}
  for (const kv of values.env ?? []) {
    const at = kv.indexOf("=")
    if (at < 1) throw new Error(`--env takes KEY=VALUE, got '${kv}'`)
    workerEnv[kv.slice(0, at)] = kv.slice(at + 1)
  }
  return {
    n: int(values.n, "n", quick ? 20_000 : 200_000),
    devices: int(values.devices, "devices", quick ? 2_000 : 5_000),
    seed: int(values.seed, "seed", 42, 0),
    rates,
    nearMax,
    maxRate: values["max-rate"] === undefined ? undefined : int(values["max-rate"], "max-rate", 0),
    largeN: int(values["large-n"], "large-n", quick ? 40_000 : 1_000_000),
    // The quick run leaves the large pair out unless --large-n asks for it: it repeats the e2e + baseline path.
    skipLarge: values["skip-large"] === true || (quick && values["large-n"] === undefined),
    fleetDevices: [fleet[0]!, fleet[1]!],
    processes: int(values.processes, "processes", 2, 2),
    duration: seconds(values.duration, "duration", quick ? 2 : 10, 0.5),
    warmup: seconds(values.warmup, "warmup", quick ? 1 : 2, 0),
    rssN: int(values["rss-n"], "rss-n", quick ? 50_000 : 1_000_000),
    rssDevices: int(values["rss-devices"], "rss-devices", quick ? 20_000 : 100_000),
    skipRss: values["skip-rss"] === true,
    quick,
    profile: values.profile === true,
    only,
    workerEnv,
    workerNodeFlags: (values["node-flags"] ?? "").split(" ").filter((f) => f !== ""),
    redisUrl: process.env["BENCH_REDIS_URL"] ?? "redis://127.0.0.1:6379",
    postgresUrl: process.env["BENCH_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
  }
}
