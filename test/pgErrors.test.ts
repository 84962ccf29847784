import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Redacted } from "effect"
import { classify, orPgError, Pg, PgError, RETRYABLE_ATTEMPTS } from "../src/postgres/Pg.js"
import { PG_ADMIN_URL } from "./support/Integration.js"
import { configLayer } from "./support/testConfig.js"

const pgError = (code: string, severity = "ERROR") => Object.assign(new Error(`error ${code}`), { code, severity })

describe("classify (what the writer does with a PostgreSQL failure)", () => {
  it.each([
    ["connection refused", Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })],
    ["connection terminated", new Error("Connection terminated unexpectedly")],
    ["connection exception 08006", pgError("08006")],
    ["too many connections 53300", pgError("53300")],
    ["admin shutdown 57P01", pgError("57P01", "FATAL")],
    ["database refusing connections 55000 FATAL", pgError("55000", "FATAL")],
    ["disk full 53100", pgError("53100")],
    ["idle in transaction timeout 25P03 FATAL", pgError("25P03", "FATAL")]
  ])("%s is transient: retried for as long as it lasts, never dead-lettered", (_, cause) => {
    expect(classify(cause)).toBe("transient")
  })

  it.each([
    ["statement timeout 57014", pgError("57014")],
    ["serialization failure 40001", pgError("40001")],
    ["deadlock 40P01", pgError("40P01")],
    ["lock not available 55P03", pgError("55P03")],
    ["out of memory 53200", pgError("53200")],
    ["configuration limit exceeded 53400", pgError("53400")]
  ])("%s is retryable: retried a few times, then its rows are isolated", (_, cause) => {
    expect(classify(cause)).toBe("retryable")
  })

  it.each([
    ["numeric out of range 22003", pgError("22003")],
    ["invalid text 22P02", pgError("22P02")],
    ["not null 23502", pgError("23502")],
    ["check constraint 23514", pgError("23514")]
  ])("%s is the data's fault: isolated and dead-lettered", (_, cause) => {
    expect(classify(cause)).toBe("data")
  })

  it.each([
    ["undefined table 42P01", pgError("42P01")],
    ["permission denied 42501", pgError("42501")],
    ["a pool used after end", new Error("Cannot use a pool after calling end on the pool")]
  ])("%s is systemic: the batch stays pending as a whole", (_, cause) => {
    expect(classify(cause)).toBe("systemic")
  })

  it("an exception raised by a trigger is isolated and left pending", () => {
    expect(classify(pgError("P0001"))).toBe("other")
  })

  it("reads the code of a wrapped cause", () => {
    expect(classify({ cause: pgError("22003") })).toBe("data")
  })
})

describe("retryTransient", () => {
  // The pool connects lazily: these tests never reach a server.
  const make = Pg.make({ url: Redacted.make("postgres://nobody@127.0.0.1:1/none"), poolSize: 1, retryMaxBackoff: Duration.millis(10) })

  /** An operation that fails with `codes` in turn (the last one for ever), counting its attempts. */
  const failing = (...codes: ReadonlyArray<string>) => {
    let attempts = 0
    const effect = Effect.suspend(() => {
      const code = codes[Math.min(attempts, codes.length - 1)]!
      attempts++
      return code === "ok" ? Effect.succeed("written") : Effect.fail(new PgError({ op: "write", cause: pgError(code) }))
    })
    return { effect, attempts: () => attempts }
  }

  it.scopedLive("gives up on a statement timeout after RETRYABLE_ATTEMPTS attempts, returning the error", () =>
    Effect.gen(function*() {
      const pg = yield* make
      const op = failing("57014")
      const result = yield* Effect.either(pg.retryTransient(op.effect))
      expect(op.attempts()).toBe(RETRYABLE_ATTEMPTS)
      expect(Either.getLeft(result).pipe((e) => e._tag === "Some" && e.value.sqlstate)).toBe("57014")
      const once = failing("57014")
      yield* Effect.either(pg.retryTransient(once.effect, { attempts: 1 }))
      expect(once.attempts()).toBe(1)
    }))

  it.scopedLive("retries connection loss for as long as it lasts, and a retryable error that then passes", () =>
    Effect.gen(function*() {
      const pg = yield* make
      const outage = failing("08006", "08006", "08006", "57P01", "08006", "08006", "ok")
      expect(yield* pg.retryTransient(outage.effect)).toBe("written")
      expect(outage.attempts()).toBe(7)
      // Connection trouble between timeouts does not use up the attempts.
      const mixed = failing("57014", "08006", "08006", "08006", "57014", "ok")
      expect(yield* pg.retryTransient(mixed.effect)).toBe("written")
    }))

  it.scopedLive("does not retry data errors", () =>
    Effect.gen(function*() {
      const pg = yield* make
      const op = failing("22003")
      yield* Effect.either(pg.retryTransient(op.effect))
      expect(op.attempts()).toBe(1)
    }))
})

describe("statements through SqlClient (orPgError)", () => {
  /** `statement` on Pg.layer's SqlClient for POSTGRES_URL=`url`, failed: the PgError it gives. */
  const failure = (url: string, statement: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* Effect.flip(statement(sql))
    }).pipe(Effect.provide(Pg.layer.pipe(Layer.provide(configLayer({ POSTGRES_URL: url, PG_POOL_SIZE: 1 })))))

  it.live("a refused value is the data's fault, named by the server's own message", () =>
    Effect.gen(function*() {
      const error = yield* failure(PG_ADMIN_URL, (sql) => sql`SELECT ${"x"}::int`.pipe(orPgError("probe")))
      expect(error).toBeInstanceOf(PgError)
      const e = error as PgError
      expect([e.sqlstate, e.kind]).toEqual(["22P02", "data"])
      // The driver's message, not SqlError's "Failed to execute statement".
      expect(e.message).toBe(`probe: invalid input syntax for type integer: "x" (SQLSTATE 22P02)`)
    }))

  it.live("a missing table is systemic", () =>
    Effect.gen(function*() {
      const e = (yield* failure(PG_ADMIN_URL, (sql) => sql`SELECT * FROM no_such_table_at_all`.pipe(orPgError("probe")))) as PgError
      expect([e.sqlstate, e.kind]).toEqual(["42P01", "systemic"])
    }))

  it.live("a server that refuses the connection is transient, with the network code", () =>
    Effect.gen(function*() {
      const e = (yield* failure("postgres://nobody@127.0.0.1:1/none", (sql) => sql`SELECT 1`.pipe(orPgError("connect")))) as PgError
      expect(e.kind).toBe("transient")
      expect(e.sqlstate).toBeUndefined()
      expect(e.message).toMatch(/^connect: .*ECONNREFUSED/)
    }))
})
