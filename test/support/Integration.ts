import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Cause, Effect, Exit, type Fiber, Layer, Logger, LogLevel } from "effect"
import { Redis as IORedis } from "ioredis"
import pg from "pg"
import * as Worker from "../../src/Worker.js"
import { configLayer } from "./testConfig.js"

// Integration tests run against the real local servers. Each test gets its own database and stream keys,
// and removes them afterwards.

export const PG_ADMIN_URL = process.env["TEST_POSTGRES_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres"
export const REDIS_URL = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const ROOT = fileURLToPath(new URL("../../", import.meta.url))

export const uniqueName = (prefix: string) => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`

const databaseUrl = (name: string) => {
  const url = new URL(PG_ADMIN_URL)
  url.pathname = `/${name}`
  return url.toString()
}

/** A statement on the admin connection (the `postgres` database), never on the database under test. */
export const adminQuery = (text: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL })
    await client.connect()
    try {
      return await client.query(text)
    } finally {
      await client.end()
    }
  })

/** A fresh, empty database, dropped (with its connections) when the scope closes. */
export const freshDatabase = Effect.acquireRelease(
  Effect.gen(function*() {
    const name = uniqueName("processor_test")
    yield* adminQuery(`CREATE DATABASE ${name}`)
    return { name, url: databaseUrl(name) }
  }),
  ({ name }) => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
)

/**
 * A connection of the test's own holding `positions` locked in `mode` inside an open transaction, until the
 * test commits or rolls it back, or the scope closes. EXCLUSIVE blocks writes only; ACCESS EXCLUSIVE reads too.
 */
export const lockPositions = (url: string, mode: "EXCLUSIVE" | "ACCESS EXCLUSIVE") =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: url })
      client.on("error", () => {})
      await client.connect()
      await client.query("BEGIN")
      await client.query(`LOCK TABLE positions IN ${mode} MODE`)
      return client
    }),
    (client) => Effect.promise(() => client.end())
  )

/** A pg pool on the test database, for assertions. */
export const testPool = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pool = new pg.Pool({ connectionString: url, max: 2 })
      // Fault scenarios terminate every connection to the test database, this pool's idle ones included.
      pool.on("error", () => {})
      return pool
    }),
    (pool) =>
    Effect.promise(() => pool.end()))

/** A Redis client for the test itself, plus stream keys of its own that are deleted afterwards. */
export const testRedis = Effect.acquireRelease(
  Effect.sync(() => {
    const redis = new IORedis(REDIS_URL)
    const prefix = uniqueName("test")
    return {
      redis,
      stream: `${prefix}:t`,
      dlq: `${prefix}:t:dlq`,
      group: "processor"
    }
  }),
  ({ redis, stream, dlq }) => Effect.promise(() => redis.del(stream, dlq).then(() => redis.quit()))
)

export type TestRedis = Effect.Effect.Success<typeof testRedis>

export interface TestEnvironment {
  readonly db: { readonly name: string; readonly url: string }
  readonly pool: pg.Pool
  readonly redis: IORedis
  readonly stream: string
  readonly dlq: string
  readonly group: string
  /** The variables a worker for this test needs; add to them per test. */
  readonly env: Record<string, string>
}

export const testEnvironment = Effect.gen(function*() {
  const db = yield* freshDatabase
  const pool = yield* testPool(db.url)
  const { redis, stream, dlq, group } = yield* testRedis
  const env = {
    POSTGRES_URL: db.url,
    REDIS_URL,
    REDIS_STREAM: stream,
    REDIS_DLQ_STREAM: dlq,
    REDIS_GROUP: group,
    REDIS_CONSUMER: "worker-1",
    LOG_LEVEL: "warn",
    // A free port each: workers of parallel tests must not compete for the default 9464.
    HTTP_PORT: "0"
  }
  return { db, pool, redis, stream, dlq, group, env } satisfies TestEnvironment
})

/** The worker, in this process, with warnings and errors printed. */
export const runWorker = (env: Record<string, string | number>) =>
  Worker.run.pipe(
    Effect.provide(configLayer({ HTTP_PORT: 0, ...env })),
    Effect.provide(Layer.merge(Logger.pretty, Logger.minimumLogLevel(LogLevel.Warning)))
  )

// The in-process worker a test is waiting on: if it dies, waiting fails at once with its cause.
let watched: Fiber.RuntimeFiber<unknown, unknown> | undefined

/** Forks the worker into the test's scope and watches it: waitUntil fails as soon as it exits. */
export const forkWorker = (env: Record<string, string | number>) =>
  Effect.tap(Effect.forkScoped(runWorker(env)), (fiber) => Effect.sync(() => (watched = fiber)))

/** Polls `check` until it returns true, failing after `timeout` or when a watched worker has exited. */
export const waitUntil = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  timeout: number = 30_000,
  interval: number = 50
) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeout
    while (!(yield* check)) {
      const exit = watched?.unsafePoll()
      if (exit) return yield* Effect.dieMessage(`the worker exited while waiting for ${what}: ${Cause.pretty(Exit.isFailure(exit) ? exit.cause : Cause.empty)}`)
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out after ${timeout} ms waiting for ${what}`)
      yield* Effect.sleep(interval)
    }
  })

export const countRows = (pool: pg.Pool, where = "true") =>
  Effect.promise(() => pool.query<{ n: string }>(`SELECT count(*) AS n FROM positions WHERE ${where}`)).pipe(
    Effect.map((r) => Number(r.rows[0]!.n)),
    // The table appears only once the worker has migrated.
    Effect.catchAllDefect(() => Effect.succeed(-1))
  )

/** Entries delivered to the group but not acknowledged. */
export const pendingCount = (redis: IORedis, stream: string, group: string) =>
  Effect.promise(async () => {
    const summary = (await redis.xpending(stream, group).catch(() => [0])) as [number, ...Array<unknown>]
    return Number(summary[0])
  })

export const streamLength = (redis: IORedis, key: string) => Effect.promise(() => redis.xlen(key))

/** Entries read by nobody yet (XINFO GROUPS lag), or -1 when unknown. */
export const groupLag = (redis: IORedis, stream: string, group: string) =>
  Effect.promise(async () => {
    const groups = (await redis.xinfo("GROUPS", stream).catch(() => [])) as Array<Array<unknown>>
    for (const g of groups) {
      const info = new Map<unknown, unknown>()
      for (let i = 0; i < g.length; i += 2) info.set(g[i], g[i + 1])
      if (info.get("name") === group) return Number(info.get("lag") ?? -1)
    }
    return -1
  })

export interface ChildWorker {
  readonly process: ChildProcess
  readonly output: () => string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** The worker as its own process (`npx tsx src/main.ts`), for signals and kill -9. */
export const spawnWorker = (env: Record<string, string | number>) =>
  Effect.acquireRelease(
    Effect.sync((): ChildWorker => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
        cwd: ROOT,
        env: { ...process.env, LOG_FORMAT: "json", ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout!.on("data", (d) => (output += d))
      child.stderr!.on("data", (d) => (output += d))
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
      return { process: child, output: () => output, exited }
    }),
    (worker) =>
      Effect.promise(async () => {
        if (worker.process.exitCode === null && worker.process.signalCode === null) worker.process.kill("SIGKILL")
        await worker.exited
      })
  )

/** Waits for the child worker to log a line containing `text`. */
export const waitForLog = (worker: ChildWorker, text: string, timeout = 30_000) =>
  waitUntil(`log "${text}"`, Effect.sync(() => worker.output().includes(text)), timeout)
