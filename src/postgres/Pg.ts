import type { SqlError } from "@effect/sql/SqlError"
import * as PgClient from "@effect/sql-pg/PgClient"
import { SqlClient } from "@effect/sql"
import { Context, Data, Duration, Effect, Layer, Option, Redacted, Ref } from "effect"
import pg from "pg"
import * as Backoff from "../Backoff.js"
import { ProcessorConfig } from "../config/Config.js"
import { messageOf } from "../ErrorMessage.js"
import { ExitCode, StartFailed } from "../ExitCode.js"
import { Health } from "../observability/Health.js"
import * as Metrics from "../observability/Metrics.js"

export class PgError extends Data.TaggedError("PgError")<{
  readonly op: string
  readonly cause: unknown
}> {
  get sqlstate(): string | undefined {
    return sqlstateOf(this.cause)
  }
  get kind(): ErrorKind {
    return classify(this.cause)
  }
  override get message() {
    const state = this.sqlstate
    return `${this.op}: ${messageOf(this.cause)}${state ? ` (SQLSTATE ${state})` : ""}`
  }
}

/**
 * transient: the database or the network is away (connection lost or refused, 08xxx, 57Pxx, FATAL, disk
 *   full); retry for as long as it lasts, never dead-letter: no record is to blame.
 * retryable: this statement failed for a reason of the moment (statement timeout 57014, deadlock 40P01,
 *   serialization 40001, lock not available 55P03, out of memory 53200, a configuration limit 53400); retried
 *   a few times (RETRYABLE_ATTEMPTS), then handled like "other": the same error for the same rows again and
 *   again says it is these rows (a trigger that never finishes on one device, a batch too big for memory).
 * data: this data can never be written (bad value, constraint); isolate and dead-letter the record.
 * systemic: the schema, privileges or the client itself are wrong; every record would fail alike, so the
 *   entries are left pending as they are (isolating records would only multiply failing statements).
 * other: anything else (a trigger raising, …); isolate the failing records and leave them pending, to be
 *   retried later and dead-lettered after MAX_DELIVERIES.
 */
export type ErrorKind = "transient" | "retryable" | "data" | "systemic" | "other"

// Syntax or access rule (undefined table, permission denied), catalog/schema, unsupported feature,
// transaction state, authorization, external routine, system and internal errors.
const SYSTEMIC_CLASSES = new Set(["42", "3D", "3F", "0A", "25", "28", "2B", "39", "55", "58", "XX"])

const RETRYABLE_STATES = new Set(["40001", "40P01", "55P03", "57014", "53200", "53400"])

/** Attempts of one statement that fails with a "retryable" error before the caller isolates its rows. */
export const RETRYABLE_ATTEMPTS = 3

export const sqlstateOf = (cause: unknown): string | undefined => {
  const inner = (cause as { cause?: unknown })?.cause
  const code = (cause as { code?: unknown })?.code ?? (inner as { code?: unknown })?.code
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

const severityOf = (cause: unknown): unknown =>
  (cause as { severity?: unknown })?.severity ?? ((cause as { cause?: unknown })?.cause as { severity?: unknown })?.severity

export const classify = (cause: unknown): ErrorKind => {
  const state = sqlstateOf(cause)
  // No SQLSTATE: the connection failed, was refused or timed out — or the client was misused (a bug).
  if (state === undefined) return isConnectionTrouble(cause) ? "transient" : "systemic"
  // FATAL ends the session, whatever the code: a refused connection (55000 "not currently accepting
  // connections", 57P03, 53300…) or a terminated one. The data has nothing to do with it.
  const severity = severityOf(cause)
  if (severity === "FATAL" || severity === "PANIC") return "transient"
  const cls = state.slice(0, 2)
  if (RETRYABLE_STATES.has(state)) return "retryable"
  if (cls === "08" || cls === "53" || state.startsWith("57P")) return "transient"
  if (cls === "22" || cls === "23") return "data"
  if (SYSTEMIC_CLASSES.has(cls)) return "systemic"
  return "other"
}

const guarded = new WeakSet<pg.PoolClient>()

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"])

const isConnectionTrouble = (cause: unknown): boolean => {
  const code = (cause as { code?: unknown })?.code
  if (typeof code === "string" && NETWORK_CODES.has(code)) return true
  const message = messageOf(cause)
  return /connect|terminat|timeout|timed out|closed|socket|ended unexpectedly/i.test(message) && !/after calling end/i.test(message)
}

/**
 * A statement of @effect/sql's SqlClient with its failure as a PgError named `op`: the one place where SqlError
 * becomes PgError. SqlError carries the driver's error as its `cause` (SQLSTATE, severity, network code), and
 * that is what PgError classifies, so a statement fails alike whichever API ran it.
 */
export const orPgError = (op: string) => <A, R>(statement: Effect.Effect<A, SqlError, R>): Effect.Effect<A, PgError, R> =>
  Effect.mapError(statement, (error) => new PgError({ op, cause: error.cause ?? error }))

/**
 * The raw `pg` pool, for what @effect/sql has no helper for: COPY (the writer) and the pool's own gauges. Every
 * other statement goes through SqlClient, which Pg.layer provides on this same pool.
 */
export interface PgService {
  readonly pool: pg.Pool
  /**
   * Runs `f` in a transaction on one pooled connection (`singleStatement`: `f` runs exactly one statement, which is
   * atomic by itself, so no BEGIN/COMMIT is sent). On failure the transaction is rolled back; a
   * connection that cannot even roll back is destroyed rather than returned to the pool.
   */
  readonly transaction: <A>(
    op: string,
    f: (client: pg.PoolClient) => Promise<A>,
    options?: { readonly singleStatement?: boolean }
  ) => Effect.Effect<A, PgError>
  /**
   * Retries transient failures with capped, jittered exponential backoff, for as long as it takes: while the
   * database is away the pipeline stalls here (backpressure) and nothing is acknowledged. The outage is
   * logged once when it starts and once when it ends. A "retryable" failure is retried with the same backoff
   * until `attempts` (default RETRYABLE_ATTEMPTS) attempts have failed so, then returned to the caller.
   */
  readonly retryTransient: <A, R>(
    effect: Effect.Effect<A, PgError, R>,
    options?: { readonly attempts?: number }
  ) => Effect.Effect<A, PgError, R>
}

export class Pg extends Context.Tag("processor/Pg")<Pg, PgService>() {
  static readonly make = (options: {
    readonly url: Redacted.Redacted
    readonly poolSize: number
    readonly retryMaxBackoff: Duration.Duration
    /** Default 60 s. */
    readonly statementTimeout?: Duration.Duration
  }) =>
    Effect.gen(function*() {
      const statementTimeoutMs = options.statementTimeout === undefined ? 60_000 : Duration.toMillis(options.statementTimeout)
      const pool = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const pool = new pg.Pool({
            connectionString: Redacted.value(options.url),
            max: options.poolSize,
            connectionTimeoutMillis: 5_000,
            idleTimeoutMillis: 30_000,
            // Deadlines: the server cancels a statement after PG_STATEMENT_TIMEOUT_MS, the client gives up waiting 5 s later
            // (a server that vanished answers nothing), and TCP keepalive probes an idle connection after
            // 10 s instead of the kernel's two hours.
            statement_timeout: statementTimeoutMs,
            query_timeout: statementTimeoutMs + 5_000,
            keepAlive: true,
            keepAliveInitialDelayMillis: 10_000,
            application_name: "processor"
          })
          // An idle client that loses its connection emits here; the next query reports the problem.
          pool.on("error", () => {})
          return pool
        }),
        // Interruptible, or the timeout would wait for pool.end(), which waits for every checked-out client
        // (a query stuck on a lock) however long that takes. Past the deadline the process exit closes them.
        (pool) => Effect.interruptible(Effect.promise(() => pool.end())).pipe(Effect.timeout("2 seconds"), Effect.ignore)
      )

      const transaction = <A>(op: string, f: (client: pg.PoolClient) => Promise<A>, options?: { readonly singleStatement?: boolean }) =>
        Effect.tryPromise({
          try: async () => {
            const client = await pool.connect()
            // The pool listens for errors only on idle clients: a checked-out client whose connection dies
            // would emit "error" with no listener and crash the process. The failure reaches the query anyway.
            if (!guarded.has(client)) {
              client.on("error", () => {})
              guarded.add(client)
            }
            // One statement is a transaction of its own: BEGIN and COMMIT would only add two round trips.
            const single = options?.singleStatement === true
            try {
              if (!single) await client.query("BEGIN")
              const result = await f(client)
              if (!single) await client.query("COMMIT")
              client.release()
              return result
            } catch (error) {
              // No reply within the deadline (query_timeout: PG_STATEMENT_TIMEOUT_MS + 5 s): the connection is as
              // good as gone, and a ROLLBACK would wait behind the unanswered statement for a second deadline.
              // The connection is dropped at once (the server rolls back what it had) and the pool makes a new one.
              if (error instanceof Error && error.message === "Query read timeout") client.release(error)
              else if (single) client.release()
              else await client.query("ROLLBACK").then(() => client.release(), (broken: Error) => client.release(broken))
              throw error
            }
          },
          catch: (cause) => new PgError({ op, cause })
        })

      // `since`: when the current outage began (undefined: none). `endedAt`: when the last one ended. Writes
      // retry concurrently, so a failure can arrive after another write already saw the database back: an
      // attempt that began before the end belongs to the outage that ended and does not open a new one.
      const outage = yield* Ref.make<{ readonly since: number | undefined; readonly endedAt: number }>({ since: undefined, endedAt: 0 })
      const schedule = Backoff.whileRunning(options.retryMaxBackoff)
      const retryTransient = <A, R>(effect: Effect.Effect<A, PgError, R>, retryOptions?: { readonly attempts?: number }) =>
        Effect.suspend(() => {
          const attempts = retryOptions?.attempts ?? RETRYABLE_ATTEMPTS
          // Retryable failures of this run so far.
          let failures = 0
          const retryable = (error: PgError) => {
            failures++
            return failures >= attempts ? Effect.void : Effect.zipRight(
              Metrics.retry("postgres"),
              Effect.logWarning(`${error.message}; attempt ${failures} of ${attempts}, retrying`)
            )
          }
          return Effect.suspend(() => {
            const startedAt = Date.now()
            return effect.pipe(
              Effect.tapError((error) =>
                error.kind === "retryable" ? retryable(error) : error.kind !== "transient" ? Effect.void : Effect.zipRight(
                  Metrics.retry("postgres"),
                  Ref.modify(outage, (o) =>
                    o.since === undefined && startedAt >= o.endedAt ? [true, { ...o, since: Date.now() }] as const : [false, o] as const
                  ).pipe(
                    Effect.flatMap((started) =>
                      started ? Effect.logWarning(`PostgreSQL unavailable, retrying until it answers: ${error.message}`) : Effect.void
                    )
                  )
                )
              )
            )
          }).pipe(
            Effect.retry({ schedule, while: (error) => error.kind === "transient" || (error.kind === "retryable" && failures < attempts) }),
            Effect.tap(() =>
              Ref.modify(outage, (o) =>
                o.since === undefined ? [undefined, o] as const : [o.since, { since: undefined, endedAt: Date.now() }] as const
              ).pipe(
                Effect.flatMap((since) =>
                  since === undefined ? Effect.void : Effect.logInfo(`PostgreSQL available again after ${((Date.now() - since) / 1000).toFixed(1)} s`)
                )
              )
            )
          )
        })

      return { pool, transaction, retryTransient } satisfies PgService
    })

  /** The pool from ProcessorConfig (no connection yet), and SqlClient on it; the pool ends with the layer. */
  static readonly layer = Layer.unwrapEffect(
    // The SqlClient leaves the pool to Pg (it only acquires it): one pool, ended once.
    Effect.map(Pg, ({ pool }) => PgClient.layerFromPool({ acquire: Effect.succeed(pool), applicationName: "processor" }))
  ).pipe(
    Layer.provideMerge(Layer.scoped(
      Pg,
      Effect.flatMap(ProcessorConfig, (config) =>
        Pg.make({
          url: config.postgresUrl,
          poolSize: config.pgPoolSize,
          retryMaxBackoff: config.retryMaxBackoff,
          statementTimeout: config.pgStatementTimeout
        }))
    ))
  )
}

// At start, refusals that waiting does not cure: the credentials (28000 invalid authorization, which is
// also an unknown role, and 28P01 wrong password) and a database that does not exist (3D000).
const REFUSED_AT_START: Record<string, { readonly what: string; readonly exitCode: number }> = {
  "28000": { what: "refused the role", exitCode: ExitCode.noPermission },
  "28P01": { what: "refused the password", exitCode: ExitCode.noPermission },
  "3D000": { what: "has no such database", exitCode: ExitCode.unavailable }
}

/** What start-up is waiting on: the SQLSTATE, the network error code (ECONNREFUSED…), or "error". */
const waitCode = (error: PgError): string => {
  const code = error.sqlstate ?? (error.cause as { code?: unknown })?.code
  return typeof code === "string" ? code : "error"
}

/**
 * Waits until PostgreSQL answers SELECT 1, logging one line each time what it waits on changes (address
 * with the password redacted, error code) and showing it on /readyz. Fails with StartFailed: at once for
 * a refused role or password (exit 77) or a missing database (exit 69); after Backoff.atStart's deadline
 * (a minute) for anything else (exit 1). Interruptible throughout: a stop request ends the wait at once.
 */
export const awaitReachable = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { postgres } = yield* ProcessorConfig
  const health = yield* Effect.serviceOption(Health)
  const waitingOn = yield* Ref.make<string | undefined>(undefined)
  // Disconnected: a stop request does not wait for the cancel of a SELECT 1 stuck on a vanished server.
  yield* Effect.disconnect(sql`SELECT 1`).pipe(
    orPgError("connect"),
    Effect.mapError((error) => {
      const refused = error.sqlstate === undefined ? undefined : REFUSED_AT_START[error.sqlstate]
      return refused === undefined
        ? error
        : new StartFailed({ message: `PostgreSQL at ${postgres.address} ${refused.what}: ${error.message}`, exitCode: refused.exitCode })
    }),
    Effect.tapError((error) =>
      error._tag === "StartFailed" ? Effect.void : Effect.gen(function*() {
        const code = waitCode(error)
        if ((yield* Ref.getAndSet(waitingOn, code)) === code) return
        yield* Effect.logWarning(`waiting for PostgreSQL at ${postgres.address}: ${code}: ${error.message}`)
        if (Option.isSome(health)) yield* health.value.note("postgres", `waiting: ${code}`)
      })),
    Effect.retry({ schedule: Backoff.atStart, while: (error) => error._tag === "PgError" }),
    Effect.catchTag("PgError", (error) =>
      Effect.fail(new StartFailed({ message: `PostgreSQL at ${postgres.address} not reachable at start: ${waitCode(error)}: ${error.message}`, exitCode: ExitCode.failure })))
  )
  if (Option.isSome(health)) yield* health.value.note("postgres", "ok")
  yield* Effect.logInfo(`PostgreSQL connected at ${postgres.address}`)
})
