import { readdir, readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { orPgError } from "./Pg.js"

const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url))

const listMigrations = Effect.promise(async () => {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => f.endsWith(".sql")).sort()
  return Promise.all(files.map(async (name) => ({ name, text: await readFile(MIGRATIONS_DIR + name, "utf8") })))
})

/**
 * Applies the SQL files in migrations/ that are not yet recorded, in name order, in one transaction.
 * The transaction-scoped advisory lock makes instances that start together apply them once, one after
 * the other; the later ones find everything recorded. Fails with PgError (op "migrations").
 */
export const migrate = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const migrations = yield* listMigrations
  const applied = yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(hashtext('processor.migrations'))`
    yield* sql`CREATE TABLE IF NOT EXISTS processor_migrations (
      name text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`
    const done = new Set((yield* sql<{ name: string }>`SELECT name FROM processor_migrations`).map((r) => r.name))
    const todo = migrations.filter((m) => !done.has(m.name))
    for (const m of todo) {
      yield* sql.unsafe(m.text)
      yield* sql`INSERT INTO processor_migrations (name) VALUES (${m.name})`
    }
    return todo.map((m) => m.name)
  }))
  yield* Effect.logInfo(applied.length > 0 ? `migrations applied: ${applied.join(", ")}` : "migrations applied: none pending")

  const [{ hypertable }] = (yield* sql<{ hypertable: boolean }>`
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
       AND to_regclass('timescaledb_information.hypertables') IS NOT NULL AS hypertable`) as [{ hypertable: boolean }]
  if (hypertable) {
    const [row] = yield* sql.unsafe<{ is: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'positions') AS is"
    )
    if (row?.is) return
  }
  yield* Effect.logWarning("TimescaleDB is not available: positions is a plain table (no hypertable)")
}).pipe(orPgError("migrations"), Effect.withSpan("Migrations.migrate"))
