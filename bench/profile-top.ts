// Reads a V8 .cpuprofile (node --cpu-prof) and prints the top functions by self time, with file:line mapped
// back to TypeScript through dist/'s source maps where there are any.
// usage: npx tsx bench/profile-top.ts <file.cpuprofile> [--top 25] [--callers] [--results bench/results/<run>.json]
// (--results: only the e2e processing window recorded in that run's JSON, as the bench itself reports it)
import { existsSync, readFileSync } from "node:fs"
import { SourceMap } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { relative } from "node:path"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface Row {
  readonly name: string
  readonly location: string
  readonly selfMs: number
  readonly selfPct: number
  readonly totalMs: number
}

export interface Summary {
  readonly file: string
  readonly window: string
  readonly durationMs: number
  readonly sampledMs: number
  /** Time not spent running JavaScript or GC: (idle) and (program). */
  readonly idleMs: number
  readonly gcMs: number
  /** Share of busy (non-idle) time, by package or app folder. */
  readonly byArea: ReadonlyArray<{ readonly area: string; readonly selfMs: number; readonly pct: number }>
  readonly top: ReadonlyArray<Row>
  /** For each of the top functions: the callers its self time came through, with their share. */
  readonly callers: Readonly<Record<string, ReadonlyArray<{ readonly caller: string; readonly selfMs: number }>>>
}

const ROOT = fileURLToPath(new URL("../", import.meta.url))
const maps = new Map<string, SourceMap | null>()

const sourceMapFor = (url: string): SourceMap | null => {
  let map = maps.get(url)
  if (map !== undefined) return map
  map = null
  try {
    const path = url.startsWith("file://") ? fileURLToPath(url) : url
    if (path.includes("/dist/") && existsSync(`${path}.map`)) map = new SourceMap(JSON.parse(readFileSync(`${path}.map`, "utf8")))
  } catch {
    map = null
  }
  maps.set(url, map)
  return map
}

const location = (frame: CallFrame): string => {
  if (frame.url === "") return ""
  const map = sourceMapFor(frame.url)
  if (map !== null) {
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber)
    if ("originalSource" in entry && entry.originalSource) {
      // Sources are absolute URLs or paths relative to the map (which sits next to the file).
      const source = entry.originalSource.startsWith("/") ? pathToFileURL(entry.originalSource).href : entry.originalSource
      return `${relative(ROOT, fileURLToPath(new URL(source, frame.url)))}:${entry.originalLine + 1}`
    }
  }
  const path = frame.url.startsWith("file://") ? relative(ROOT, fileURLToPath(frame.url)) : frame.url
  return `${path}:${frame.lineNumber + 1}`
}

const areaOf = (frame: CallFrame, loc: string): string => {
  if (frame.functionName === "(garbage collector)") return "(gc)"
  if (frame.url === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native/builtin)"
  if (frame.url.startsWith("node:")) return "node internals"
  const nm = loc.lastIndexOf("node_modules/")
  if (nm >= 0) {
    const rest = loc.slice(nm + "node_modules/".length).split("/")
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const parts = loc.split("/")
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0]!.split(":")[0]!
}

/** Monotonic-clock window (µs, CLOCK_MONOTONIC as process.hrtime and V8's profiler use) to restrict samples to. */
export interface Window {
  readonly fromUs: number
  readonly toUs: number
}

export const summarize = (file: string, topN = 25, window?: Window): Summary => {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const c of node.children ?? []) parent.set(c, node.id)
  }
  const keyOf = new Map<number, string>()
  const locOf = new Map<string, string>()
  const frameOf = new Map<string, CallFrame>()
  for (const node of profile.nodes) {
    const f = node.callFrame
    const loc = location(f)
    const key = `${f.functionName || "(anonymous)"}\u0000${loc}`
    keyOf.set(node.id, key)
    locOf.set(key, loc)
    frameOf.set(key, f)
  }
  // Distinct function keys on each node's stack, for inclusive time without double-counting recursion.
  const stacks = new Map<number, ReadonlyArray<string>>()
  const stackOf = (id: number): ReadonlyArray<string> => {
    const known = stacks.get(id)
    if (known !== undefined) return known
    const up = parent.get(id)
    const above = up === undefined ? [] : stackOf(up)
    const key = keyOf.get(id)!
    const stack = above.includes(key) ? above : [...above, key]
    stacks.set(id, stack)
    return stack
  }

  const self = new Map<string, number>()
  const total = new Map<string, number>()
  const viaCaller = new Map<string, Map<string, number>>()
  let sampledUs = 0
  let at = profile.startTime
  let firstUs = Infinity
  let lastUs = -Infinity
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0
    // timeDeltas[i] is the time before sample i; the interval that sample i stands for is the next delta.
    const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0
    if (dt < 0) continue
    if (window !== undefined && (at < window.fromUs || at > window.toUs)) continue
    if (at < firstUs) firstUs = at
    if (at > lastUs) lastUs = at
    const id = profile.samples[i]!
    sampledUs += dt
    const key = keyOf.get(id)!
    self.set(key, (self.get(key) ?? 0) + dt)
    // The nearest caller that is a different function (skipping self-recursion).
    let up = parent.get(id)
    while (up !== undefined && keyOf.get(up) === key) up = parent.get(up)
    const caller = up === undefined ? "(root)" : keyOf.get(up)!
    let callers = viaCaller.get(key)
    if (callers === undefined) viaCaller.set(key, (callers = new Map()))
    callers.set(caller, (callers.get(caller) ?? 0) + dt)
    for (const k of stackOf(id)) total.set(k, (total.get(k) ?? 0) + dt)
  }

  const nameOf = (key: string) => key.slice(0, key.indexOf("\u0000"))
  let idleUs = 0
  let gcUs = 0
  const areas = new Map<string, number>()
  for (const [key, us] of self) {
    const name = nameOf(key)
    if (name === "(idle)" || name === "(program)") {
      idleUs += us
      continue
    }
    if (name === "(garbage collector)") gcUs += us
    const area = areaOf(frameOf.get(key)!, locOf.get(key)!)
    areas.set(area, (areas.get(area) ?? 0) + us)
  }
  const busyUs = Math.max(1, sampledUs - idleUs)
  const top = [...self.entries()]
    .filter(([key]) => !["(idle)", "(program)", "(root)"].includes(nameOf(key)))
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([key, us]): Row => ({
      name: nameOf(key),
      location: locOf.get(key)!,
      selfMs: us / 1000,
      selfPct: (100 * us) / busyUs,
      totalMs: (total.get(key) ?? 0) / 1000
    }))
  return {
    file,
    window: window === undefined ? "whole profile" : "processing window (first read to drained)",
    durationMs: lastUs > firstUs ? (lastUs - firstUs) / 1000 : 0,
    sampledMs: sampledUs / 1000,
    idleMs: idleUs / 1000,
    gcMs: gcUs / 1000,
    byArea: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, selfMs: us / 1000, pct: (100 * us) / busyUs })),
    top,
    callers: Object.fromEntries(
      [...self.entries()]
        .filter(([key]) => !["(idle)", "(program)", "(root)"].includes(nameOf(key)))
        .sort((a, b) => b[1] - a[1])
        .slice(0, topN)
        .map(([key]) => [
          `${nameOf(key)} (${locOf.get(key) || "native"})`,
          [...(viaCaller.get(key) ?? new Map<string, number>()).entries()]
            .sort((a, b) => b[1] - a[1])
            .slice(0, 3)
            .map(([caller, us]) => ({ caller: `${nameOf(caller)} (${locOf.get(caller) || "native"})`, selfMs: us / 1000 }))
        ])
    )
  }
}

export const format = (s: Summary): string => {
  const lines: Array<string> = []
  const busy = s.sampledMs - s.idleMs
  lines.push(`${s.file} (${s.window}): ${(s.durationMs / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s busy ` +
    `(${(s.idleMs / 1000).toFixed(1)} s idle/program), GC ${(s.gcMs / 1000).toFixed(2)} s; percentages are of busy time`)
  lines.push("")
  lines.push("self time by area:")
  for (const a of s.byArea.slice(0, 12)) lines.push(`  ${a.pct.toFixed(1).padStart(5)}%  ${a.selfMs.toFixed(0).padStart(7)} ms  ${a.area}`)
  lines.push("")
  lines.push(`top ${s.top.length} by self time:`)
  lines.push(`  ${"self %".padStart(6)} ${"self ms".padStart(8)} ${"total ms".padStart(9)}  function  (file:line)`)
  for (const r of s.top) {
    lines.push(`  ${r.selfPct.toFixed(1).padStart(6)} ${r.selfMs.toFixed(0).padStart(8)} ${r.totalMs.toFixed(0).padStart(9)}  ${r.name}  (${r.location || "native"})`)
  }
  return lines.join("\n")
}

export const formatCallers = (s: Summary, count = 10): string =>
  Object.entries(s.callers)
    .slice(0, count)
    .map(([fn, callers]) => `  ${fn}\n${callers.map((c) => `      ${c.selfMs.toFixed(0).padStart(6)} ms via ${c.caller}`).join("\n")}`)
    .join("\n")

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2)
  const valueOf = (flag: string) => {
    const at = args.indexOf(flag)
    return at >= 0 ? args[at + 1] : undefined
  }
  const topN = Number(valueOf("--top") ?? 25)
  const resultsFile = valueOf("--results")
  const file = args.find((a, i) => !a.startsWith("--") && !["--top", "--results"].includes(args[i - 1] ?? ""))
  if (file === undefined) {
    process.stderr.write("usage: npx tsx bench/profile-top.ts <file.cpuprofile> [--top 25] [--callers] [--results <run>.json]\n")
    process.exit(2)
  }
  const window = resultsFile === undefined
    ? undefined
    : (JSON.parse(readFileSync(resultsFile, "utf8")) as { e2e?: { window?: Window } }).e2e?.window
  const summary = summarize(file, topN, window)
  process.stdout.write(`${format(summary)}\n\ncallers of the top functions:\n${formatCallers(summary, args.includes("--callers") ? topN : 10)}\n`)
}
