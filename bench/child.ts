import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import ts from "typescript"
import { checkAborted, defer, log, RESULTS_DIR, ROOT, sleep } from "./infra.js"

// ---- how the worker is started ------------------------------------------------------------------------------

export interface WorkerCommand {
  /** The worker's default `node` flags (package.json's `start`), before `--node-flags` so those can override them. */
  readonly defaultFlags: ReadonlyArray<string>
  /** Arguments to `node` after the flags: the script (before any profiling flags). */
  readonly args: ReadonlyArray<string>
  readonly how: "dist" | "tsx"
  readonly buildSeconds: number
  readonly buildOutput: string
}

/** Newest modification time (ms) of the files under `dir`, recursively. */
const newestMtime = (dir: string): number => {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return newest
}

/** dist/main.js was built after every change to src/ and the compiler settings (a checkout touches what it changes). */
const distUpToDate = (): boolean => {
  const main = join(ROOT, "dist", "main.js")
  if (!existsSync(main)) return false
  const inputs = Math.max(newestMtime(join(ROOT, "src")), ...["tsconfig.json", "tsconfig.build.json", "pnpm-lock.yaml"]
    .map((f) => (existsSync(join(ROOT, f)) ? statSync(join(ROOT, f)).mtimeMs : 0)))
  return statSync(main).mtimeMs > inputs
}

/**
 * The `node` flags operators start the worker with: those of package.json's `start` script, `node [--flag …]
 * dist/main.js`, the one source of them (test/manifests.test.ts holds the Dockerfile's CMD to the same flags).
 * Throws when the script has another shape.
 */
export const defaultWorkerFlags = (): ReadonlyArray<string> => {
  const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts?: Record<string, string> }
  const start = manifest.scripts?.["start"] ?? ""
  const match = /^node((?:\s+--\S+)*)\s+dist\/main\.js$/.exec(start.trim())
  if (match === null) throw new Error(`package.json: the start script is not "node [--flag …] dist/main.js": '${start}'`)
  return match[1]!.split(/\s+/).filter((flag) => flag !== "")
}

/**
 * `tsc -p tsconfig.build.json` into dist/ (skipped when dist/ is newer than src/), then `node dist/main.js`;
 * `node --import tsx src/main.ts` if the build fails.
 */
export const buildWorker = (): WorkerCommand => {
  const defaultFlags = defaultWorkerFlags()
  if (distUpToDate()) return { defaultFlags, args: ["dist/main.js"], how: "dist", buildSeconds: 0, buildOutput: "dist/ newer than src/: not rebuilt" }
  const started = performance.now()
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc")
  const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: ROOT, encoding: "utf8" })
  const buildSeconds = (performance.now() - started) / 1000
  const buildOutput = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim()
  if (result.status === 0 && existsSync(join(ROOT, "dist", "main.js"))) {
    return { defaultFlags, args: ["dist/main.js"], how: "dist", buildSeconds, buildOutput }
  }
  log(`build failed (exit ${result.status}); running the worker with tsx instead:\n${buildOutput.slice(0, 2000)}`)
  return { defaultFlags, args: ["--import", "tsx", "src/main.ts"], how: "tsx", buildSeconds, buildOutput }
}

/** The baseline consumer, transpiled (no type check) to plain JS so it runs on bare node like dist/main.js. */
export const buildBaseline = async (file = join(ROOT, "bench", "baseline.ts")): Promise<ReadonlyArray<string>> => {
  const source = readFileSync(file, "utf8")
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false }
  })
  const dir = join(RESULTS_DIR, ".build")
  await mkdir(dir, { recursive: true })
  const out = join(dir, `${basename(file, ".ts")}.mjs`)
  await writeFile(out, outputText)
  return [out]
}

// ---- a child process with RSS sampling ----------------------------------------------------------------------

export interface MemorySample {
  /** VmRSS, kiB. */
  readonly rssKiB: number
  /** VmHWM (peak RSS since start), kiB. */
  readonly hwmKiB: number
}

export const readMemory = (pid: number): MemorySample | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN)
    return { rssKiB: field("VmRSS"), hwmKiB: field("VmHWM") }
  } catch {
    return undefined
  }
}

/** User + system CPU seconds of a process (all its threads), or NaN once it is gone. */
export const cpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name, which is in parentheses and may contain spaces: utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return NaN
  }
}

const CLOCK_TICKS = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" })
  const n = Number(r.stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
})()

export interface Child {
  readonly name: string
  readonly process: ChildProcess
  readonly pid: number
  readonly output: () => string
  readonly exited: () => boolean
  /** Throws with the child's output when it has exited. */
  readonly assertAlive: () => void
  /** Max VmRSS seen by the sampler and the latest VmHWM, kiB. */
  readonly memory: () => { readonly maxRssKiB: number; readonly hwmKiB: number; readonly samples: number }
  readonly cpuSeconds: () => number
  /** SIGTERM, then SIGKILL after `graceMs`; reads VmHWM first. Returns the exit code or signal. */
  readonly stop: (graceMs?: number) => Promise<string>
}

const OUTPUT_LIMIT = 64 * 1024

export const spawnChild = (name: string, nodeArgs: ReadonlyArray<string>, env: Record<string, string>): Child => {
  checkAborted()
  const child = spawn(process.execPath, [...nodeArgs], {
    cwd: ROOT,
    // A clean environment: only what the child needs, so variables of the caller's shell cannot leak in.
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: process.env["HOME"] ?? "/root",
      ...(process.env["TMPDIR"] === undefined ? {} : { TMPDIR: process.env["TMPDIR"] }),
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  if (child.pid === undefined) throw new Error(`${name}: spawn failed`)
  const pid = child.pid
  let output = ""
  const append = (d: Buffer) => {
    output += d.toString()
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT)
  }
  child.stdout!.on("data", append)
  child.stderr!.on("data", append)
  let exit: string | undefined
  const exitedPromise = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => {
      exit = signal ?? `exit ${code}`
      resolve(exit)
    })
  )

  let maxRssKiB = 0
  let hwmKiB = 0
  let samples = 0
  const sample = () => {
    const m = readMemory(pid)
    if (m === undefined) return
    samples++
    if (m.rssKiB > maxRssKiB) maxRssKiB = m.rssKiB
    if (m.hwmKiB > hwmKiB) hwmKiB = m.hwmKiB
  }
  const sampler = setInterval(sample, 100)

  const stop = async (graceMs = 20_000) => {
    clearInterval(sampler)
    if (exit !== undefined) return exit
    sample()
    child.kill("SIGTERM")
    const result = await Promise.race([exitedPromise, sleep(graceMs).then(() => undefined)])
    if (result !== undefined) return result
    log(`${name} did not stop within ${graceMs} ms of SIGTERM; killing it`)
    child.kill("SIGKILL")
    return exitedPromise
  }
  const release = defer(`${name} (pid ${pid})`, async () => {
    await stop(5_000)
  })
  // The tail of what the child printed (warnings, crashes, --trace-gc) is kept beside the results.
  const saveOutput = async () => {
    if (output.trim() === "") return
    const dir = join(RESULTS_DIR, "logs")
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, `${name.replace(/\W+/g, "_")}-${pid}.log`), output)
  }

  return {
    name,
    process: child,
    pid,
    output: () => output,
    exited: () => exit !== undefined,
    assertAlive: () => {
      if (exit !== undefined) throw new Error(`${name} exited (${exit}) unexpectedly; its output:\n${output.slice(-4000)}`)
    },
    memory: () => ({ maxRssKiB, hwmKiB, samples }),
    cpuSeconds: () => cpuSeconds(pid),
    stop: async (graceMs) => {
      const result = await stop(graceMs)
      await release()
      await saveOutput().catch(() => {})
      return result
    }
  }
}
