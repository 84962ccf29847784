import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { InFlight } from "../src/consumer/InFlight.js"

// InFlight (the consumer's set of ids handed out and not finished) against a Set, on sequences of operations in
// the orders the pipeline makes (batches finished in order, two writers out of order, sparse dead letters) and in
// any order: what it holds, `has`, `delete`'s result and `toArray` (oldest first) are the Set's at every step.

type Op =
  | { readonly _tag: "add"; readonly count: number }
  | { readonly _tag: "finishRun"; readonly from: number; readonly count: number; readonly step: number; readonly reverse: boolean }
  | { readonly _tag: "finishAny"; readonly picks: ReadonlyArray<number> }
  | { readonly _tag: "reAdd"; readonly pick: number }
  | { readonly _tag: "deleteUnknown" }
  | { readonly _tag: "clear" }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("add" as const), count: fc.integer({ min: 1, max: 3000 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      _tag: fc.constant("finishRun" as const),
      from: fc.nat(),
      count: fc.integer({ min: 1, max: 6000 }),
      step: fc.integer({ min: 1, max: 3 }),
      reverse: fc.boolean()
    })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("finishAny" as const), picks: fc.array(fc.nat(), { maxLength: 50 }) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("reAdd" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "deleteUnknown" as const }) },
  { weight: 1, arbitrary: fc.constant({ _tag: "clear" as const }) }
)

// Ids as Redis makes them, each a fresh string (as each read makes them), so equal ids are not the same object.
const idOf = (n: number) => `${1_764_500_000_000 + (n >> 4)}-${n & 15}`.split("").join("")

const check = (ops: ReadonlyArray<Op>) => {
  const subject = new InFlight()
  const model = new Set<string>()
  // Everything ever added, in order: runs are taken from here, as batches are taken from what was read.
  const added: Array<string> = []
  const expectSame = () => {
    expect(subject.size).toBe(model.size)
    expect(subject.toArray()).toEqual([...model])
  }
  for (const o of ops) {
    switch (o._tag) {
      case "add":
        for (let i = 0; i < o.count; i++) {
          const id = idOf(added.length)
          added.push(id)
          subject.add(id)
          model.add(id)
        }
        break
      case "finishRun": {
        if (added.length === 0) break
        const from = o.from % added.length
        const run: Array<string> = []
        for (let i = from; i < Math.min(added.length, from + o.count); i += o.step) run.push(idOf(i))
        if (o.reverse) run.reverse()
        for (const id of run) expect(subject.delete(id)).toBe(model.delete(id))
        break
      }
      case "finishAny":
        for (const p of o.picks) {
          if (added.length === 0) break
          const id = idOf(p % added.length)
          expect(subject.has(id)).toBe(model.has(id))
          expect(subject.delete(id)).toBe(model.delete(id))
        }
        break
      case "reAdd": {
        // A finished id handed out again (a reclaim after a failed write).
        if (added.length === 0) break
        const id = idOf(o.pick % added.length)
        if (!model.has(id)) {
          subject.add(id)
          model.delete(id)
          model.add(id)
        }
        break
      }
      case "deleteUnknown":
        expect(subject.delete("0-0")).toBe(false)
        expect(subject.has("0-0")).toBe(false)
        break
      case "clear":
        subject.clear()
        model.clear()
    }
    expectSame()
  }
  for (const id of added) expect(subject.has(id)).toBe(model.has(id))
}

describe("InFlight", () => {
  it("holds what a Set holds, in handed-out order, whatever the order of finishes", () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), check), { numRuns: 60 })
  })

  it("the pipeline's pattern: reads of 2000, batches of 5000 finished by two writers out of order, dead letters between", () => {
    const subject = new InFlight()
    const model = new Set<string>()
    let read = 0
    let finished = 0
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < 2000; i++) {
        const id = idOf(read++)
        subject.add(id)
        model.add(id)
      }
      // Every 97th entry of the read is invalid: dead-lettered at once.
      for (let i = read - 2000; i < read; i += 97) expect(subject.delete(idOf(i))).toBe(model.delete(idOf(i)))
      if (read - finished >= 10_000) {
        // The second batch first, then the first.
        for (const [from, to] of [[finished + 5000, finished + 10_000], [finished, finished + 5000]] as const) {
          for (let i = from; i < to; i++) expect(subject.delete(idOf(i))).toBe(model.delete(idOf(i)))
        }
        finished += 10_000
      }
      expect(subject.size).toBe(model.size)
    }
    expect(subject.toArray()).toEqual([...model])
  })

  it("a finished id handed out again is in flight again, and only once", () => {
    const subject = new InFlight()
    for (const id of ["1-0", "1-1", "1-2"]) subject.add(id)
    expect(subject.delete("1-1")).toBe(true)
    expect(subject.has("1-1")).toBe(false)
    subject.add("1-1")
    expect(subject.toArray()).toEqual(["1-0", "1-2", "1-1"])
    expect(subject.delete("1-1")).toBe(true)
    expect(subject.delete("1-1")).toBe(false)
    expect(subject.toArray()).toEqual(["1-0", "1-2"])
  })

  it("an id held long (a slow write) while 200,000 others come and go: its slots follow what is here, not the traffic", () => {
    const subject = new InFlight()
    subject.add("0-1")
    let maxSlots = 0
    for (let n = 0; n < 200_000; n += 2000) {
      const ids = Array.from({ length: 2000 }, (_, i) => idOf(n + i))
      for (const id of ids) subject.add(id)
      for (const id of ids) expect(subject.delete(id)).toBe(true)
      maxSlots = Math.max(maxSlots, subject.slots)
    }
    expect(subject.size).toBe(1)
    expect(subject.toArray()).toEqual(["0-1"])
    expect(subject.has("0-1")).toBe(true)
    expect(maxSlots).toBeLessThanOrEqual(4096)
  })
})
