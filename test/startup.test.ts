import { spawn } from "node:child_process"
import { createServer, type Server } from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Option } from "effect"
import { Redis as IORedis } from "ioredis"
import { ExitCode, exitCodeOf, StartFailed } from "../src/ExitCode.js"
import { DrainTimeout } from "../src/pipeline/Shutdown.js"
import { type ChildWorker, PG_ADMIN_URL, spawnWorker, testEnvironment, waitForLog, waitUntil } from "./support/Integration.js"
import { awaitExit, logLines } from "./support/faults.js"

// Start-up as an operator sees it: the real worker process, its exit code and every line it prints.

const SECRET = "S3cretPW"

const lines = (output: string) => output.split("\n").filter((l) => l.trim() !== "")

/** A TCP port nothing listens on (taken from the kernel, then released). */
const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  }))

/** A port held by a listener of the test's own for the scope. */
const busyPort = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<Server>((resolve) => {
      const server = createServer()
      server.listen(0, () => resolve(server))
    })),
  (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
).pipe(Effect.map((server) => (server.address() as { port: number }).port))

/** A redis-server of the test's own that wants a password, on a free port, stopped with the scope. */
const redisWithPassword = (password: string) =>
  Effect.gen(function*() {
    const port = yield* freePort
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "", "--appendonly", "no"], {
          stdio: "ignore"
        })),
      (child) =>
        Effect.promise(() =>
          new Promise<void>((resolve) => {
            child.once("exit", () => resolve())
            child.kill("SIGTERM")
          }))
    )
    const answers = Effect.promise(async () => {
      const probe = new IORedis({ port, password, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
      probe.on("error", () => {})
      const ok = await probe.connect().then(() => probe.ping(), () => "").then((r) => r === "PONG", () => false)
      probe.disconnect()
      return ok
    })
    yield* waitUntil("the test's redis-server", answers, 10_000)
    return port
  })

const httpPort = (worker: ChildWorker) => Number(/http listening on port (\d+)/.exec(worker.output())?.[1])

const get = (port: number, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  })

/** Lines at FATAL or ERROR, and lines that are not JSON log lines at all (a stack, a warning). */
const complaints = (output: string) => {
  const { lines, other } = logLines(output)
  return { fatal: lines.filter((l) => l.logLevel === "FATAL" || l.logLevel === "ERROR").map((l) => l.message), other }
}

describe("exit codes", () => {
  const interrupted = Cause.interrupt(0 as never)

  it("maps the main fiber's exit to the documented codes", () => {
    expect(exitCodeOf(Exit.void)).toBe(0)
    expect(exitCodeOf(Exit.failCause(interrupted))).toBe(0)
    expect(exitCodeOf(Exit.fail({ _tag: "ConfigInvalid", message: "x" }))).toBe(78)
    expect(exitCodeOf(Exit.fail(new StartFailed({ message: "x", exitCode: ExitCode.noPermission })))).toBe(77)
    expect(exitCodeOf(Exit.fail(new StartFailed({ message: "x", exitCode: ExitCode.unavailable })))).toBe(69)
    expect(exitCodeOf(Exit.die(new Error("bug")))).toBe(1)
    expect(exitCodeOf(Exit.fail("anything else"))).toBe(1)
    // A drain that timed out after a stop request: a defect beside the interruption.
    const timeout = new DrainTimeout({ timeout: Duration.seconds(1), pending: Option.some(3) })
    expect(exitCodeOf(Exit.failCause(Cause.sequential(interrupted, Cause.die(timeout))))).toBe(1)
    expect(timeout.message).toContain("3 entries stay pending")
  })
})

describe("configuration refused at start", () => {
  it.scoped.each([
    ["REDIS_URL", `redis://:${SECRET}@[::1`],
    ["REDIS_URL", `redis://:${SECRET}@127.0.0.1:port`],
    ["REDIS_URL", `redis://:${SECRET}@127.0.0.1:6379/zero`],
    ["REDIS_URL", `http://:${SECRET}@127.0.0.1:6379`],
    ["POSTGRES_URL", "127.0.0.1:5432"],
    ["POSTGRES_URL", `postgres://u:${SECRET}@127.0.0.1:port/db`]
  ] as const)("%s=%s: exit 78, one line naming the variable, no password anywhere", ([key, value]) =>
    Effect.gen(function*() {
      const worker = yield* spawnWorker({ [key]: value, HTTP_PORT: 0 })
      expect(yield* awaitExit(worker)).toEqual({ code: 78, signal: null })
      const output = worker.output()
      expect(lines(output)).toHaveLength(1)
      expect(output).toMatch(new RegExp(`^invalid configuration: ${key}: Expected a URL such as `))
      expect(output).not.toContain(SECRET)
      expect(output).not.toMatch(/DeprecationWarning|url\.parse/)
    }), 30_000)
})

describe("servers that refuse the worker at start", () => {
  it.scopedLive("a missing database: exit 69, one line naming it (3D000), password redacted", () =>
    Effect.gen(function*() {
      const url = new URL(PG_ADMIN_URL)
      url.password = SECRET
      url.pathname = "/processor_missing_db"
      const worker = yield* spawnWorker({ POSTGRES_URL: url.toString(), HTTP_PORT: 0, LOG_LEVEL: "info" })
      expect(yield* awaitExit(worker)).toEqual({ code: 69, signal: null })
      const { fatal, other } = complaints(worker.output())
      expect(other).toEqual([])
      expect(fatal).toHaveLength(1)
      expect(fatal[0]).toMatch(/^PostgreSQL at postgres:\/\/postgres:\*\*\*@.*\/processor_missing_db has no such database: .*3D000/)
      expect(worker.output()).not.toContain(SECRET)
    }), 30_000)

  it.scopedLive("an unknown role: exit 77, one line naming it (28000)", () =>
    Effect.gen(function*() {
      const url = new URL(PG_ADMIN_URL)
      url.username = "processor_no_such_role"
      const worker = yield* spawnWorker({ POSTGRES_URL: url.toString(), HTTP_PORT: 0 })
      expect(yield* awaitExit(worker)).toEqual({ code: 77, signal: null })
      const { fatal, other } = complaints(worker.output())
      expect(other).toEqual([])
      expect(fatal).toEqual([expect.stringMatching(/refused the role: .*processor_no_such_role.*28000/)])
    }), 30_000)

  it.scopedLive("a wrong Redis password: exit 77, one line naming WRONGPASS with the address redacted", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const port = yield* redisWithPassword(`${SECRET}-right`)
      const worker = yield* spawnWorker({ ...t.env, REDIS_URL: `redis://:${SECRET}@127.0.0.1:${port}`, LOG_LEVEL: "info" })
      expect(yield* awaitExit(worker)).toEqual({ code: 77, signal: null })
      const { fatal, other } = complaints(worker.output())
      expect(other).toEqual([])
      expect(fatal).toEqual([`Redis at redis://:***@127.0.0.1:${port} refused the credentials: WRONGPASS invalid username-password pair or user is disabled.`])
      expect(worker.output()).not.toContain(SECRET)
      expect(worker.output()).not.toContain("Connection is closed")
    }), 30_000)

  it.scopedLive("no Redis password where one is required: exit 77 naming NOAUTH", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const port = yield* redisWithPassword(SECRET)
      const worker = yield* spawnWorker({ ...t.env, REDIS_URL: `redis://127.0.0.1:${port}` })
      expect(yield* awaitExit(worker)).toEqual({ code: 77, signal: null })
      expect(complaints(worker.output()).fatal).toEqual([expect.stringMatching(/^Redis at redis:\/\/127\.0\.0\.1:\d+ refused the credentials: NOAUTH/)])
    }), 30_000)

  it.scopedLive("a Redis database the server does not have: exit 78, one line naming it, never database 0 instead", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const worker = yield* spawnWorker({ ...t.env, REDIS_URL: "redis://127.0.0.1:6379/99" })
      expect(yield* awaitExit(worker)).toEqual({ code: 78, signal: null })
      expect(complaints(worker.output()).fatal).toEqual([expect.stringMatching(/^REDIS_URL: Redis at redis:\/\/127\.0\.0\.1:6379\/99 has no database 99: .*DB index is out of range/)])
      // Nothing was read from database 0 in its place.
      expect(yield* Effect.promise(() => t.redis.exists(t.stream))).toBe(0)
    }), 30_000)

  it.scopedLive("a busy HTTP_PORT: exit 1, one line naming the port, no stack", () =>
    Effect.gen(function*() {
      const port = yield* busyPort
      const worker = yield* spawnWorker({ HTTP_PORT: port, POSTGRES_URL: "postgres://postgres@127.0.0.1:1/x" })
      expect(yield* awaitExit(worker)).toEqual({ code: 1, signal: null })
      const { fatal, other } = complaints(worker.output())
      expect(other).toEqual([])
      expect(fatal).toEqual([expect.stringMatching(new RegExp(`^cannot listen on HTTP_PORT ${port}: .*EADDRINUSE`))])
    }), 30_000)
})

describe("waiting for a server at start", () => {
  const waitsThenStops = (server: "Redis" | "PostgreSQL", env: Record<string, string | number>, signal: NodeJS.Signals) =>
    Effect.gen(function*() {
      const worker = yield* spawnWorker({ ...env, HTTP_PORT: 0, LOG_LEVEL: "info" })
      yield* waitForLog(worker, `waiting for ${server} at `, 30_000)
      // The HTTP endpoints answer during the wait: alive, not ready, and readiness says what it waits for.
      const port = httpPort(worker)
      expect(yield* get(port, "/healthz")).toEqual({ status: 200, body: { status: "ok" } })
      const ready = yield* get(port, "/readyz")
      expect(ready.status).toBe(503)
      expect(ready.body["checks"]).toMatchObject({ [server === "Redis" ? "redis" : "postgres"]: "waiting: ECONNREFUSED", consumer: "starting" })
      // Several attempts (ioredis and the start schedule retry within a second or two), one line.
      yield* Effect.sleep("2500 millis")
      const waiting = logLines(worker.output()).lines.filter((l) => l.message.startsWith(`waiting for ${server}`))
      expect(waiting).toHaveLength(1)
      expect(waiting[0]!.message).toMatch(/:\*\*\*@127\.0\.0\.1:\d+.*: ECONNREFUSED: /)
      expect(worker.output()).not.toContain(SECRET)

      const stopped = Date.now()
      worker.process.kill(signal)
      expect(yield* awaitExit(worker, 10_000)).toEqual({ code: 0, signal: null })
      expect(Date.now() - stopped).toBeLessThan(2_000)
      expect(complaints(worker.output())).toEqual({ fatal: [], other: [] })
    })

  it.scopedLive("unreachable PostgreSQL: one line with the redacted address and the code, probes answer, SIGTERM exits at once", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      yield* waitsThenStops("PostgreSQL", { POSTGRES_URL: `postgres://postgres:${SECRET}@127.0.0.1:${port}/x` }, "SIGTERM")
    }), 60_000)

  it.scopedLive("unreachable Redis: the same, and SIGINT exits at once too", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const port = yield* freePort
      yield* waitsThenStops("Redis", { ...t.env, REDIS_URL: `redis://:${SECRET}@127.0.0.1:${port}` }, "SIGINT")
    }), 60_000)
})
