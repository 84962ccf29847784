import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { generatePayloads } from "../src/simulate/Generator.js"
import { publish } from "../src/simulate/Publish.js"
import { countRows, forkWorker, groupLag, pendingCount, testEnvironment, waitUntil } from "./support/Integration.js"
import { tcpProxy } from "./support/TcpProxy.js"

// A PostgreSQL connection that goes silent mid-write (a failover, a NAT timeout): the statement gets no reply.
// The worker gives up on it after one deadline (PG_STATEMENT_TIMEOUT_MS + 5 s), drops the connection without
// waiting for a ROLLBACK behind the unanswered statement (a second deadline), and writes on a new one. (Each
// pooled connection that went silent costs one deadline when it is next used: one connection here.)

describe("PostgreSQL deadlines", () => {
  it.scopedLive("a connection black-holed mid-write is dropped after one deadline and the worker resumes by itself", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      const target = new URL(t.db.url)
      const proxy = yield* tcpProxy({ host: target.hostname, port: Number(target.port || 5432) })
      const viaProxy = new URL(t.db.url)
      viaProxy.port = String(proxy.port)
      yield* forkWorker({
        ...t.env,
        POSTGRES_URL: viaProxy.toString(),
        PG_STATEMENT_TIMEOUT_MS: 5_000,
        PG_POOL_SIZE: 1,
        BATCH_SIZE: 50,
        READ_COUNT: 50,
        WRITE_CONCURRENCY: 1
      })
      const total = 6_000
      yield* publish(t.redis, t.stream, generatePayloads({ devices: 100, seed: 11, count: total }), 1_000)
      yield* waitUntil("the first rows", Effect.map(countRows(t.pool), (n) => n > 0), 30_000)

      proxy.cut("blackhole")
      const cutAt = Date.now()
      const before = yield* countRows(t.pool)
      yield* waitUntil("rows again after the cut", Effect.map(countRows(t.pool), (n) => n > before + 50), 30_000)
      // One deadline (5 s + 5 s) and a retry; waiting for a ROLLBACK behind the silent statement would take 20 s.
      expect(Date.now() - cutAt).toBeLessThan(17_000)

      yield* waitUntil(
        "every row, nothing pending",
        Effect.all([countRows(t.pool), pendingCount(t.redis, t.stream, t.group), groupLag(t.redis, t.stream, t.group)]).pipe(
          Effect.map(([n, pending, lag]) => n === total && pending === 0 && lag === 0)
        ),
        60_000
      )
    }), 120_000)
})
