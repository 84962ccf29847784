import { describe, expect, it } from "@effect/vitest"
import { classify } from "../src/postgres/Pg.js"

const pgError = (code: string, severity = "ERROR") => Object.assign(new Error(`error ${code}`), { code, severity })

describe("classify (what the writer does with a PostgreSQL failure)", () => {
  it.each([
    ["connection refused", Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })],
    ["connection terminated", new Error("Connection terminated unexpectedly")],
    ["connection exception 08006", pgError("08006")],
    ["too many connections 53300", pgError("53300")],
    ["admin shutdown 57P01", pgError("57P01", "FATAL")],
    ["database refusing connections 55000 FATAL", pgError("55000", "FATAL")],
    ["serialization failure 40001", pgError("40001")],
    ["deadlock 40P01", pgError("40P01")],
    ["statement timeout 57014", pgError("57014")]
  ])("%s is transient: retried, never dead-lettered", (_, cause) => {
    expect(classify(cause)).toBe("transient")
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
