import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { InFlight } from "../src/consumer/InFlight.js"

// InFlight against a Set<string> (the model), from its public contract only: add (of ids not here), delete (any
// id; true when it was here), has, size, toArray (oldest first, i.e. the Set's insertion order). Sequences start
// from a fill around its internal sizes (1,000 to 100,000 ids held) and mix every finishing order the consumer
// makes and some it should never make. Also: `slots` (memory) stays within its documented bound, and the cost of
// one has/delete is compared with a Set's.

// Redis ids ("<ms>-<seq>"), each a fresh string as a read makes them.
const idAt = (n: number) => `${1_764_500_000_000 + Math.floor(n / 7)}-${n % 7}`

type Op =
  | { readonly t: "add"; readonly n: number }
  | { readonly t: "delHeld"; readonly pick: number }
  | { readonly t: "delOldest" }
  | { readonly t: "delNewest" }
  | { readonly t: "delNever"; readonly pick: number }
  | { readonly t: "delAgain"; readonly pick: number }
  | { readonly t: "reAdd"; readonly pick: number }
  | { readonly t: "has"; readonly pick: number }
  | { readonly t: "batches"; readonly size: number; readonly writers: number; readonly reverse: boolean; readonly stride: number; readonly backwards: boolean }
  | { readonly t: "clear" }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant("add" as const), n: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 5000 })) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant("delHeld" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.constant({ t: "delOldest" as const }) },
  { weight: 2, arbitrary: fc.constant({ t: "delNewest" as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("delNever" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("delAgain" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("reAdd" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("has" as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("batches" as const),
      size: fc.integer({ min: 1, max: 6000 }),
      writers: fc.integer({ min: 1, max: 3 }),
      reverse: fc.boolean(),
      stride: fc.integer({ min: 1, max: 4 }),
      backwards: fc.boolean()
    })
  },
  { weight: 1, arbitrary: fc.constant({ t: "clear" as const }) }
)

const FILLS = [0, 999, 1000, 1023, 1024, 1025, 4096, 8191, 8192, 8193, 16383, 16384, 16385]

const sameArray = (actual: ReadonlyArray<string>, expected: ReadonlyArray<string>) => {
  if (actual.length !== expected.length || actual.some((id, i) => id !== expected[i])) expect(actual).toEqual(expected)
}

const check = (fill: number, ops: ReadonlyArray<Op>) => {
  let next = 0
  const fresh = () => idAt(next++)
  const subject = new InFlight()
  const model = new Set<string>()
  const ever: Array<string> = []
  const finished: Array<string> = []
  const add = (id: string) => {
    subject.add(id)
    model.add(id)
  }
  // Plain comparisons in the loops (expect per call is slow at 100,000 ids); one expect says what differed.
  const same = (what: string, actual: unknown, expected: unknown) => {
    if (actual !== expected) expect({ what, actual }).toEqual({ what, actual: expected })
  }
  const del = (id: string) => {
    same(`delete ${id}`, subject.delete(id), model.delete(id))
    finished.push(id)
  }
  for (let i = 0; i < fill; i++) {
    const id = fresh()
    ever.push(id)
    add(id)
  }
  for (const o of ops) {
    switch (o.t) {
      case "add":
        for (let i = 0; i < o.n; i++) {
          const id = fresh()
          ever.push(id)
          add(id)
        }
        break
      case "delHeld": {
        if (model.size === 0) break
        const held = [...model]
        del(held[o.pick % held.length]!)
        break
      }
      case "delOldest": {
        const id = model.values().next().value
        if (id !== undefined) del(id)
        break
      }
      case "delNewest": {
        const held = [...model]
        if (held.length > 0) del(held[held.length - 1]!)
        break
      }
      case "delNever":
        // Same shape as the ids here, never added.
        del(`${1_664_500_000_000 + o.pick}-0`)
        break
      case "delAgain":
        if (finished.length > 0) del(finished[o.pick % finished.length]!)
        break
      case "reAdd": {
        // A finished id handed out again (own pending read, or a claim after a failed write).
        if (ever.length === 0) break
        const id = ever[o.pick % ever.length]!
        if (!model.has(id)) add(`${id}`)
        break
      }
      case "has":
        if (ever.length > 0) {
          const id = ever[o.pick % ever.length]!
          same(`has ${id}`, subject.has(id), model.has(id))
        }
        break
      case "batches": {
        // Up to `writers` consecutive batches of what is held, every `stride`-th id of each, finished in
        // turn (or the last batch first), each batch in order (or backwards).
        const held = [...model]
        const batches: Array<Array<string>> = []
        for (let i = 0; i < held.length && batches.length < o.writers; i += o.size) {
          const batch = held.slice(i, i + o.size).filter((_, j) => j % o.stride === 0)
          batches.push(o.backwards ? batch.reverse() : batch)
        }
        if (o.reverse) batches.reverse()
        for (const batch of batches) for (const id of batch) del(id)
        break
      }
      case "clear":
        subject.clear()
        model.clear()
    }
    same("size", subject.size, model.size)
    // Memory: at most about 4 × size once past 1,024 slots (the class's docstring for `slots`).
    if (subject.slots >= Math.max(1024, 4 * subject.size + 1)) expect({ slots: subject.slots, size: subject.size }).toBe("within 4 × size")
    if (model.size <= 20_000) sameArray(subject.toArray(), [...model])
    for (const id of ever.slice(-20)) same(`has ${id}`, subject.has(id), model.has(id))
  }
  sameArray(subject.toArray(), [...model])
  for (const id of ever) same(`has ${id}`, subject.has(id), model.has(id))
}

describe("InFlight against a Set", () => {
  it("the same answers on random sequences from fills around its thresholds (1,000 to 16,385 held)", () => {
    fc.assert(fc.property(fc.constantFrom(...FILLS), fc.array(op, { minLength: 1, maxLength: 60 }), check), { numRuns: 25 })
  }, 300_000)

  it("the same answers from a fill of 100,000", () => {
    fc.assert(fc.property(fc.constant(100_000), fc.array(op, { minLength: 1, maxLength: 25 }), check), { numRuns: 3 })
  }, 300_000)

  it("an id held for a long time while 150,000 pass in every finishing order: slots follow the ids here", () => {
    const orders: Record<string, (run: Array<string>) => Array<string>> = {
      inOrder: (run) => run,
      backwards: (run) => [...run].reverse(),
      twoWriters: (run) => [...run.slice(1000), ...run.slice(0, 1000)],
      interleaved: (run) => [...run.filter((_, i) => i % 2 === 1), ...run.filter((_, i) => i % 2 === 0)],
      shuffled: (run) => {
        const out = [...run]
        let x = 12345
        for (let i = out.length - 1; i > 0; i--) {
          x = (x * 1103515245 + 12345) & 0x7fffffff
          const j = x % (i + 1)
          ;[out[i], out[j]] = [out[j]!, out[i]!]
        }
        return out
      }
    }
    for (const [name, order] of Object.entries(orders)) {
      const subject = new InFlight()
      subject.add("1764400000000-0")
      let next = 0
      let maxSlots = 0
      for (let round = 0; round < 75; round++) {
        const run = Array.from({ length: 2000 }, () => idAt(next++))
        for (const id of run) subject.add(id)
        for (const id of order(run)) expect(subject.delete(id), name).toBe(true)
        maxSlots = Math.max(maxSlots, subject.slots)
      }
      expect(subject.toArray(), name).toEqual(["1764400000000-0"])
      expect(maxSlots, name).toBeLessThanOrEqual(4096)
    }
  })
})
