import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"
import { Redis as IORedis } from "ioredis"
import { REDIS_URL, uniqueName } from "./support/Integration.js"

// The command-line tools as operators and scripts run them: child processes through tsx, on the real Redis with
// keys of their own; exit codes and output are the contract.

const ROOT = fileURLToPath(new URL("../", import.meta.url))

interface Child {
  readonly process: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

const start = (tool: "dlq" | "simulate", args: ReadonlyArray<string>, env: Record<string, string> = {}): Child => {
  const child = spawn(process.execPath, ["--import", "tsx", `src/cli/${tool}.ts`, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => (stdout += d))
  child.stderr!.on("data", (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
  return { process: child, stdout: () => stdout, stderr: () => stderr, exited }
}

// Help is styled with ANSI escapes by @effect/cli; the tests read the text.
// eslint-disable-next-line no-control-regex
const plain = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, "")

const run = async (tool: "dlq" | "simulate", args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const child = start(tool, args, env)
  const code = await child.exited
  return { code, stdout: plain(child.stdout()), stderr: plain(child.stderr()) }
}

const waitFor = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

let redis: IORedis
const keys: Array<string> = []
const streams = () => {
  const base = uniqueName("test:cli")
  const source = `${base}:t`
  const dlq = `${base}:t:dlq`
  keys.push(source, dlq)
  return { source, dlq, env: { REDIS_URL, REDIS_STREAM: source, REDIS_DLQ_STREAM: dlq } }
}

beforeAll(() => {
  redis = new IORedis(REDIS_URL)
})

afterAll(async () => {
  if (keys.length > 0) await redis.del(...keys)
  await redis.quit()
})

const deadLetter = (key: string, id: string, fields: ReadonlyArray<string | Buffer>) =>
  redis.xadd(key, id, ...fields) as Promise<string>

const bookkeeping = (n: number) =>
  ["error", `bad ${n}`, "reason", "invalid", "source_id", `${n}-0`, "consumer", "c1", "failed_at", "2026-05-01T00:00:00.000Z"]

// Each run starts node with tsx: seconds apiece on a busy machine.
describe("dlq", { timeout: 120_000 }, () => {
  it("--help lists the commands and exits 0; a command's --help lists its options", async () => {
    const top = await run("dlq", ["--help"])
    expect(top.code).toBe(0)
    for (const command of ["list", "replay", "purge", "EXIT CODES"]) expect(top.stdout).toContain(command)
    const list = await run("dlq", ["list", "--help"])
    expect(list.code).toBe(0)
    for (const option of ["--limit N", "--oldest", "--json", "--full"]) expect(list.stdout).toContain(option)
    const purge = await run("dlq", ["purge", "--help"])
    expect(purge.stdout).toContain("--dry-run")
  })

  it("bare dlq prints the help on stderr and exits 2; bad command lines exit 2", async () => {
    const bare = await run("dlq", [])
    expect(bare).toMatchObject({ code: 2, stdout: "" })
    expect(bare.stderr).toContain("list")
    expect(bare.stderr).toContain("a command is required")
    const cases = [
      ["bogus"],
      ["list", "--limit", "x"],
      ["list", "--json", "--full"],
      ["replay", "--id", "1-0", "--all"],
      ["replay", "--id", "12"],
      ["purge", "--older-than", "1w"]
    ]
    // Refused before connecting: an unreachable Redis would make any of them exit 1 instead.
    for (let i = 0; i < cases.length; i += 3) {
      const results = await Promise.all(cases.slice(i, i + 3).map(async (args) => {
        const result = await run("dlq", args, { REDIS_URL: "redis://127.0.0.1:1" })
        return { args, code: result.code, stdout: result.stdout, said: result.stderr.length > 0 }
      }))
      expect(results).toEqual(cases.slice(i, i + 3).map((args) => ({ args, code: 2, stdout: "", said: true })))
    }
  })

  it("exits 1 when Redis cannot be reached, without printing the password", async () => {
    const port = await freePort()
    const result = await run("dlq", ["list"], { REDIS_URL: `redis://:hunter2secret@127.0.0.1:${port}` })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain("cannot connect to Redis")
    expect(result.stderr + result.stdout).not.toContain("hunter2secret")
  })

  it("list --json: one object per line with every field untruncated; --limit and --oldest", async () => {
    const { dlq, env } = streams()
    const long = JSON.stringify({ device_id: "x", note: "n".repeat(5_000) })
    const first = await deadLetter(dlq, "*", ["payload", long, ...bookkeeping(1)])
    const second = await deadLetter(dlq, "*", ["data", "line\nbreak", "trace", "t-2", ...bookkeeping(2)])
    const third = await deadLetter(dlq, "*", ["payload", Buffer.from([0xff, 0xfe]), ...bookkeeping(3)])

    const all = await run("dlq", ["list", "--json"], env)
    expect(all.code).toBe(0)
    const lines = all.stdout.trimEnd().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(lines.map((l) => l["id"])).toEqual([third, second, first])
    expect(lines[2]).toEqual({
      id: first,
      time: new Date(Number(first.split("-")[0])).toISOString(),
      fields: {
        payload: long,
        error: "bad 1",
        reason: "invalid",
        source_id: "1-0",
        consumer: "c1",
        failed_at: "2026-05-01T00:00:00.000Z"
      }
    })
    expect(lines[1]!["fields"]).toMatchObject({ data: "line\nbreak", trace: "t-2", reason: "invalid" })
    expect(lines[0]!["fields"]).toMatchObject({ payload: { base64: Buffer.from([0xff, 0xfe]).toString("base64") } })
    expect(all.stderr).toContain("3 shown of 3")

    const limited = await run("dlq", ["list", "--json", "--limit", "2", "--oldest"], env)
    expect(limited.stdout.trimEnd().split("\n").map((line) => (JSON.parse(line) as { id: string }).id)).toEqual([
      first,
      second
    ])

    const table = await run("dlq", ["list", "--limit", "1"], env)
    expect(table.code).toBe(0)
    expect(table.stdout).toContain(third)
    expect(table.stdout).not.toContain(first)
    expect(table.stdout).toContain("1 shown of 3")

    const full = await run("dlq", ["list", "--full", "--oldest", "--limit", "2"], env)
    expect(full.stdout).toContain(long)
    expect(full.stdout).toContain("line\\nbreak")
    const cut = await run("dlq", ["list", "--oldest", "--limit", "1"], env)
    expect(cut.stdout).not.toContain(long)
    expect(cut.stdout).toContain("…")
  })

  it("purge --dry-run reports what would go and leaves the stream unchanged; purge then removes it", async () => {
    const { dlq, env } = streams()
    const old = Date.now() - 8 * 86_400_000
    for (let i = 0; i < 3; i++) await deadLetter(dlq, `${old}-${i}`, ["payload", `p${i}`, ...bookkeeping(i)])
    await deadLetter(dlq, "*", ["payload", "fresh", ...bookkeeping(9)])
    const before = await redis.xrange(dlq, "-", "+")

    const dry = await run("dlq", ["purge", "--older-than", "7d", "--dry-run"], env)
    expect(dry.code).toBe(0)
    expect(dry.stdout).toContain("would remove 3 older than 7d")
    expect(await redis.xrange(dlq, "-", "+")).toEqual(before)

    const real = await run("dlq", ["purge", "--older-than", "7d"], env)
    expect(real.stdout).toContain("removed 3 older than 7d")
    expect(await redis.xlen(dlq)).toBe(1)
  })

  it("replay re-publishes every original field; an unknown id exits 1", async () => {
    const { dlq, env, source } = streams()
    const id = await deadLetter(dlq, "*", ["payload", "{\"a\":1}", "trace", "t-1", ...bookkeeping(1)])
    const result = await run("dlq", ["replay", "--id", id], env)
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`replayed 1 to ${source}`)
    const replayed = await redis.xrange(source, "-", "+")
    expect(replayed.map(([, fields]) => fields)).toEqual([["payload", "{\"a\":1}", "trace", "t-1"]])
    expect(await redis.xlen(dlq)).toBe(0)

    const unknown = await run("dlq", ["replay", "--id", id], env)
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain(`not found: ${id}`)
  })
})

describe("simulate", { timeout: 120_000 }, () => {
  it("--help lists the options and exits 0; bad options exit 2", async () => {
    const help = await run("simulate", ["--help"])
    expect(help.code).toBe(0)
    for (const option of ["--devices N", "--rate HZ", "--duration SECONDS", "--duplicates", "--late", "--stream", "--seed"]) {
      expect(help.stdout).toContain(option)
    }
    const missing = await run("simulate", [])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain("--devices")
    const bad = await run("simulate", ["--devices", "0", "--rate", "1", "--duration", "1"])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--devices must be an integer in 1..1000000")
  })

  it("publishes, shows progress on stderr and a summary on stdout that matches the stream", async () => {
    const { env, source } = streams()
    const result = await run("simulate", ["--devices", "20", "--rate", "50", "--duration", "2.5"], env)
    expect(result.code).toBe(0)
    const sent = Number(/sent=(\d+)/.exec(result.stdout)?.[1])
    expect(sent).toBe(2_500)
    expect(await redis.xlen(source)).toBe(sent)
    expect(result.stdout).toContain(`stream=${source}`)
    expect(result.stderr).toMatch(/simulate: sent \d+ \(\d+\/s\), \d+s of 2.5s/)
  })

  it("exits 1 with a summary of what was sent when Redis fails mid-run", async () => {
    const port = await freePort()
    const server = spawn("redis-server", ["--port", String(port), "--save", "", "--appendonly", "no"], { stdio: "ignore" })
    const serverExited = new Promise((resolve) => server.once("exit", resolve))
    try {
      const own = new IORedis({ port, lazyConnect: true, retryStrategy: () => null })
      // Refused connections while the server starts are expected; without a listener ioredis prints each one.
      own.on("error", () => {})
      await waitFor("redis-server", () => own.connect().then(() => true, () => false))
      const child = start("simulate", ["--devices", "10", "--rate", "20", "--duration", "60", "--stream", "sim"], {
        REDIS_URL: `redis://127.0.0.1:${port}`
      })
      await waitFor("entries", async () => (await own.xlen("sim")) > 100)
      own.disconnect()
      server.kill("SIGKILL")
      const code = await Promise.race([child.exited, new Promise((resolve) => setTimeout(() => resolve("timeout"), 30_000))])
      expect(code).toBe(1)
      const stdout = plain(child.stdout())
      expect(Number(/sent=(\d+)/.exec(stdout)?.[1])).toBeGreaterThan(100)
      expect(stdout).toContain("(stopped: Redis failed)")
      expect(plain(child.stderr())).toContain("simulate: XADD to sim failed")
    } finally {
      server.kill("SIGKILL")
      await serverExited
    }
  })

  it("SIGINT stops it with the summary and exit 130", async () => {
    const { env, source } = streams()
    const child = start("simulate", ["--devices", "5", "--rate", "10", "--duration", "60", "--quiet"], env)
    await waitFor("entries", async () => (await redis.xlen(source)) > 10)
    child.process.kill("SIGINT")
    expect(await child.exited).toBe(130)
    const stdout = plain(child.stdout())
    expect(stdout).toContain("(interrupted)")
    expect(Number(/sent=(\d+)/.exec(stdout)?.[1])).toBe(await redis.xlen(source))
    expect(child.stderr()).toBe("")
  })
})
