import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkWorker, testEnvironment, waitUntil } from "./support/Integration.js"

const consumers = (redis: import("ioredis").Redis, stream: string, group: string) =>
  Effect.promise(async () => {
    const rows = (await redis.xinfo("CONSUMERS", stream, group)) as Array<Array<string | number>>
    return new Map(rows.map((row) => {
      const info = new Map<string | number, string | number>()
      for (let i = 0; i < row.length; i += 2) info.set(row[i]!, row[i + 1]!)
      return [String(info.get("name")), Number(info.get("pending"))] as const
    }))
  })

describe("idle consumers", () => {
  it.scopedLive("are removed from the group when they hold nothing; a consumer with pending entries is kept", () =>
    Effect.gen(function*() {
      const t = yield* testEnvironment
      yield* Effect.promise(async () => {
        await t.redis.xgroup("CREATE", t.stream, t.group, "0", "MKSTREAM")
        await t.redis.xgroup("CREATECONSUMER", t.stream, t.group, "ghost")
        await t.redis.xadd(t.stream, "*", "payload", "{}")
        // "holder" reads the entry and never acknowledges it.
        await t.redis.xreadgroup("GROUP", t.group, "holder", "COUNT", 1, "STREAMS", t.stream, ">")
      })
      expect([...(yield* consumers(t.redis, t.stream, t.group)).keys()].sort()).toEqual(["ghost", "holder"])

      // Claims (and with them the clean-up) run often; holder's entry is far from idle enough to be claimed.
      yield* forkWorker({ ...t.env, CLAIM_INTERVAL_MS: 100, CLAIM_IDLE_MS: 600_000, CONSUMER_IDLE_DELETE_MS: 300, READ_BLOCK_MS: 100 })
      yield* waitUntil("ghost to be removed", Effect.map(consumers(t.redis, t.stream, t.group), (c) => !c.has("ghost")))
      const left = yield* consumers(t.redis, t.stream, t.group)
      expect(left.get("holder")).toBe(1)
      expect(left.has("worker-1")).toBe(true)
    }))
})
