import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { Lru } from "../src/state/Lru.js"

const filled = (capacity: number, keys: ReadonlyArray<string>) => {
  const lru = new Lru<string, number>(capacity)
  keys.forEach((key, i) => lru.set(key, i))
  return lru
}

describe("Lru", () => {
  it("keeps at most `capacity` keys", () => {
    const lru = filled(3, ["a", "b", "c", "d", "e"])
    expect(lru.size).toBe(3)
    expect([...lru.keys()]).toEqual(["c", "d", "e"])
  })

  it("evicts the least recently used key first and reports how many it evicted", () => {
    const lru = filled(2, ["a", "b"])
    expect(lru.set("c", 2)).toBe(1)
    expect(lru.has("a")).toBe(false)
    expect(lru.peek("b")).toBe(1)
    expect(lru.peek("c")).toBe(2)
  })

  it("returns 0 from set while under capacity", () => {
    const lru = new Lru<string, number>(3)
    expect(lru.set("a", 1)).toBe(0)
    expect(lru.set("b", 2)).toBe(0)
    expect(lru.set("c", 3)).toBe(0)
    expect(lru.set("d", 4)).toBe(1)
  })

  it("refreshes a key on get", () => {
    const lru = filled(2, ["a", "b"])
    expect(lru.get("a")).toBe(0)
    lru.set("c", 2)
    expect(lru.has("a")).toBe(true)
    expect(lru.has("b")).toBe(false)
  })

  it("leaves the order alone on peek", () => {
    const lru = filled(2, ["a", "b"])
    expect(lru.peek("a")).toBe(0)
    lru.set("c", 2)
    expect(lru.has("a")).toBe(false)
    expect(lru.has("b")).toBe(true)
  })

  it("refreshes an existing key on set, replacing its value without evicting", () => {
    const lru = filled(2, ["a", "b"])
    expect(lru.set("a", 10)).toBe(0)
    expect(lru.size).toBe(2)
    expect(lru.peek("a")).toBe(10)
    expect(lru.set("c", 2)).toBe(1)
    expect([...lru.keys()]).toEqual(["a", "c"])
  })

  it("misses leave the cache unchanged", () => {
    const lru = filled(2, ["a", "b"])
    expect(lru.get("z")).toBeUndefined()
    expect(lru.peek("z")).toBeUndefined()
    expect(lru.has("z")).toBe(false)
    expect([...lru.keys()]).toEqual(["a", "b"])
  })

  it("works with capacity 1", () => {
    const lru = filled(1, ["a"])
    expect(lru.set("b", 1)).toBe(1)
    expect([...lru.keys()]).toEqual(["b"])
  })

  it.each([0, -1, 1.5, Number.NaN])("rejects capacity %s", (capacity) => {
    expect(() => new Lru(capacity)).toThrow(RangeError)
  })

  type Command =
    | { readonly op: "get" | "peek" | "has"; readonly key: number }
    | { readonly op: "set"; readonly key: number; readonly value: number }

  const key = fc.integer({ min: 0, max: 7 })
  const command: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ op: fc.constantFrom("get" as const, "peek" as const, "has" as const), key }),
    fc.record({ op: fc.constant("set" as const), key, value: fc.integer() })
  )

  it("behaves like a reference model (array ordered least to most recently used)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(command, { maxLength: 60 }), (capacity, commands) => {
        const lru = new Lru<number, number>(capacity)
        let order: Array<number> = []
        const values = new Map<number, number>()
        for (const c of commands) {
          switch (c.op) {
            case "get": {
              expect(lru.get(c.key)).toBe(values.get(c.key))
              if (values.has(c.key)) order = [...order.filter((k) => k !== c.key), c.key]
              break
            }
            case "peek":
              expect(lru.peek(c.key)).toBe(values.get(c.key))
              break
            case "has":
              expect(lru.has(c.key)).toBe(values.has(c.key))
              break
            case "set": {
              order = [...order.filter((k) => k !== c.key), c.key]
              values.set(c.key, c.value)
              const evicted = order.slice(0, Math.max(0, order.length - capacity))
              order = order.slice(evicted.length)
              for (const k of evicted) values.delete(k)
              expect(lru.set(c.key, c.value)).toBe(evicted.length)
              break
            }
          }
          expect([...lru.keys()]).toEqual(order)
          expect(lru.size).toBe(order.length)
        }
      }),
      { numRuns: 1000 }
    )
  })
})
