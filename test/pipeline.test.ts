import { BATCH_MAX_BYTES } from "../src/pipeline/Pipeline.js"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Option, Ref, TestClock } from "effect"
import { type Accepted, DomainStage } from "../src/pipeline/DomainStage.js"
import * as Pipeline from "../src/pipeline/Pipeline.js"
import { ScannedPosition } from "../src/position/scan.js"
import { DeviceState } from "../src/state/DeviceState.js"
import { LatestPositions } from "../src/state/LatestPositions.js"
import { type CopyRow, readKey, RowEncoder, rowKey } from "../src/writer/copyBinary.js"
import { Duplicate, Inserted, type Outcome, Writer } from "../src/writer/Writer.js"
import { entry, makeMemoryConsumer, position } from "./support/MemoryConsumer.js"
import { configLayer } from "./support/testConfig.js"

/** What the writer is given, read back from an encoded row: the key columns. */
interface Written {
  readonly device_id: string
  readonly timestamp: number
}
const fromRow = (row: CopyRow): Written => {
  const { deviceId, ms } = readKey(row)
  return { device_id: deviceId, timestamp: ms }
}

// A writer with the semantics of the real one, decided by device id: "fail…" cannot be written now,
// "bad…" is refused for its data, anything else is inserted once and a duplicate afterwards.
const makeFakeWriter = Effect.gen(function*() {
  const batches = yield* Ref.make<ReadonlyArray<ReadonlyArray<Written>>>([])
  const stored = new Set<string>()
  const write = (batch: ReadonlyArray<CopyRow>) =>
    Ref.update(batches, (all) => [...all, batch.map(fromRow)]).pipe(
      Effect.as(batch.map((row): Outcome => {
        const deviceId = fromRow(row).device_id
        if (deviceId.startsWith("fail")) return { _tag: "Failed", reason: "connection refused", permanent: false }
        if (deviceId.startsWith("bad")) return { _tag: "Failed", reason: "rejected by the database: 22003", permanent: true }
        const key = rowKey(row)
        if (stored.has(key)) return Duplicate
        stored.add(key)
        return Inserted
      }))
    )
  return { batches: Ref.get(batches), layer: Layer.succeed(Writer, Writer.of({ write })) }
})

const noStoredPositions = Layer.succeed(LatestPositions, LatestPositions.of({ latest: () => Effect.succeed(new Map()) }))

const setup = (env: Record<string, string | number> = {}) =>
  Effect.gen(function*() {
    const consumer = yield* makeMemoryConsumer
    const writer = yield* makeFakeWriter
    const config = configLayer(env)
    const state = Layer.effect(DeviceState, DeviceState.make(100)).pipe(Layer.provide(noStoredPositions))
    const layer = Layer.mergeAll(consumer.layer, writer.layer, state, config)
    return { consumer, writer, run: Pipeline.run.pipe(Effect.provide(layer)) }
  })

describe("Pipeline", () => {
  it.effect("acknowledges inserted and duplicate records, dead-letters invalid and rejected ones, leaves failed pending", () =>
    Effect.gen(function*() {
      const { consumer, run } = yield* setup()
      const ok1 = entry(position("dev-1", "2026-05-01T10:00:00.000Z"))
      const ok2 = entry(position("dev-2", "2026-05-01T10:00:00.000Z"))
      const dup = entry(position("dev-1", "2026-05-01T10:00:00.000Z"))
      const failed = entry(position("fail-1", "2026-05-01T10:00:00.000Z"))
      const rejected = entry(position("bad-1", "2026-05-01T10:00:00.000Z"))
      const invalid = entry(position("dev-3", "2026-05-01T10:00:00.000Z", { latitude: 123 }))
      const notJson = entry("{not json")
      yield* consumer.read([ok1, ok2, failed, invalid])
      yield* consumer.read([dup, rejected, notJson])
      yield* consumer.end
      yield* run

      const acked = yield* consumer.acked
      expect([...acked].sort()).toEqual([ok1.id, ok2.id, dup.id, rejected.id, invalid.id, notJson.id].sort())
      expect(acked).not.toContain(failed.id)
      const letters = yield* consumer.deadLetters
      expect(letters.map((l) => l.id).sort()).toEqual([invalid.id, notJson.id, rejected.id].sort())
      const byId = new Map(letters.map((l) => [l.id, l]))
      expect(byId.get(invalid.id)!.reason).toMatchObject({ _tag: "Invalid", message: expect.stringMatching(/^latitude: /) })
      expect(byId.get(invalid.id)!.payload).toBe(invalid.payload)
      expect(byId.get(notJson.id)!.reason).toMatchObject({ _tag: "Invalid", message: expect.stringMatching(/^payload: not valid JSON/) })
      expect(byId.get(rejected.id)!.reason._tag).toBe("Rejected")
      expect(byId.get(rejected.id)!.payload).toBe(rejected.payload)
    }))

  it.effect("writes batches of at most BATCH_SIZE records, in stream order", () =>
    Effect.gen(function*() {
      const { consumer, writer, run } = yield* setup({ BATCH_SIZE: 3 })
      const entries = Array.from({ length: 10 }, (_, i) => entry(position(`dev-${i}`, "2026-05-01T10:00:00.000Z")))
      yield* consumer.read(entries)
      yield* consumer.end
      yield* run
      const batches = yield* writer.batches
      expect(batches.every((b) => b.length >= 1 && b.length <= 3)).toBe(true)
      expect(batches.flat().map((p) => p.device_id)).toEqual(entries.map((_, i) => `dev-${i}`))
      expect((yield* consumer.acked).length).toBe(10)
    }))

  it.effect("keeps a batch under BATCH_MAX_BYTES of encoded rows: large records make smaller batches", () =>
    Effect.gen(function*() {
      const { consumer, writer, run } = yield* setup({ BATCH_SIZE: 5000, MAX_PAYLOAD_BYTES: 1_000_000 })
      // 200 records of about 60 KB each: 12 MB, three or more batches of at most 4 MiB (plus the row that crosses it).
      const big = "x".repeat(60_000)
      const entries = Array.from({ length: 200 }, (_, i) => entry(position(`dev-${i}`, "2026-05-01T10:00:00.000Z", { attributes: { note: big } })))
      yield* consumer.read(entries)
      yield* consumer.end
      yield* run
      const batches = yield* writer.batches
      expect(batches.length).toBeGreaterThanOrEqual(3)
      for (const b of batches) expect(b.length * 60_000).toBeLessThan(BATCH_MAX_BYTES + 61_000)
      expect(batches.flat().length).toBe(200)
    }))

  it.effect("with BATCH_MAX_WAIT_MS, a partial batch waits for the timer", () =>
    Effect.gen(function*() {
      const { consumer, writer, run } = yield* setup({ BATCH_SIZE: 100, BATCH_MAX_WAIT_MS: 250 })
      const fiber = yield* Effect.fork(run)
      yield* consumer.read([entry(position("dev-1", "2026-05-01T10:00:00.000Z")), entry(position("dev-2", "2026-05-01T10:00:00.000Z"))])
      yield* TestClock.adjust("100 millis")
      expect((yield* writer.batches).length).toBe(0)
      yield* TestClock.adjust("200 millis")
      const written = yield* Effect.repeat(writer.batches, { until: (b) => b.length > 0 }).pipe(Effect.timeout("5 seconds"))
      expect(written.map((b) => b.length)).toEqual([2])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("updates device state before the write: the writer's records are already in state", () =>
    Effect.gen(function*() {
      const consumer = yield* makeMemoryConsumer
      const seenInState = yield* Ref.make<ReadonlyArray<boolean>>([])
      const stateLayer = Layer.effect(DeviceState, DeviceState.make(100)).pipe(Layer.provide(noStoredPositions))
      const writerLayer = Layer.effect(
        Writer,
        Effect.map(DeviceState, (state) =>
          Writer.of({
            write: (batch) =>
              Effect.forEach(batch.map(fromRow), (p) =>
                state.get(p.device_id).pipe(
                  Effect.map(Option.exists((d) => d.last_position?.timestamp.getTime() === p.timestamp))
                )).pipe(
                  Effect.tap((seen) => Ref.update(seenInState, (all) => [...all, ...seen])),
                  Effect.as(batch.map(() => Inserted))
                )
          }))
      )
      const layer = Layer.mergeAll(consumer.layer, writerLayer.pipe(Layer.provideMerge(stateLayer)), configLayer())
      yield* consumer.read([entry(position("dev-1", "2026-05-01T10:00:00.000Z")), entry(position("dev-2", "2026-05-01T10:00:01.000Z"))])
      yield* consumer.end
      yield* Pipeline.run.pipe(Effect.provide(layer))
      expect(yield* Ref.get(seenInState)).toEqual([true, true])
    }))

  it.effect("an empty read writes nothing", () =>
    Effect.gen(function*() {
      const { consumer, writer, run } = yield* setup()
      yield* consumer.read([])
      yield* consumer.end
      yield* run
      expect(Chunk.size(Chunk.fromIterable(yield* writer.batches))).toBe(0)
    }))

  it.effect("rows of scanned records and of records a domain stage makes are the encoder's UTF-8 rows of what the stage returns", () =>
    Effect.gen(function*() {
      const consumer = yield* makeMemoryConsumer
      const rows: Array<Buffer> = []
      const writerLayer = Layer.succeed(Writer, Writer.of({
        write: (batch) =>
          Effect.sync(() => {
            for (const row of batch) rows.push(Buffer.from(row.block.subarray(row.start, row.end)))
            return batch.map(() => Inserted)
          })
      }))
      // Passes the first record on, gives the second a non-ASCII device id and attributes (a new record, from a
      // scanned one), and the third new attributes only (its position still the scanner's).
      const returned: Array<Accepted> = []
      const stage = Layer.succeed(DomainStage, {
        process: (records: ReadonlyArray<Accepted>) =>
          Effect.sync(() => {
            const [kept, renamed, annotated] = records as [Accepted, Accepted, Accepted]
            const out: Array<Accepted> = [
              kept,
              { ...renamed, position: { ...renamed.position, attributes: renamed.position.attributes, device_id: "dév-✓" }, attributesJson: "{\"n\":\"ü😀\"}" },
              { ...annotated, attributesJson: "{\"zone\":\"Šiauliai\"}" }
            ]
            returned.push(...out)
            return out
          })
      })
      const state = Layer.effect(DeviceState, DeviceState.make(100)).pipe(Layer.provide(noStoredPositions))
      // Read as bytes, as RedisConsumer reads them: the byte scanner decodes them.
      const entries = ["dev-1", "dev-2", "dev-3"].map((id) => {
        const e = entry(position(id, "2026-05-01T10:00:00.000Z", { attributes: { "16": 1 } }))
        return { ...e, payloadBytes: Buffer.from(e.payload!) }
      })
      yield* consumer.read(entries)
      yield* consumer.end
      yield* Pipeline.run.pipe(Effect.provide(Layer.mergeAll(consumer.layer, writerLayer, state, stage, configLayer())))
      expect(returned[0]!.position).toBeInstanceOf(ScannedPosition)
      const reference = new RowEncoder()
      expect(rows).toEqual(returned.map((r) => {
        const row = reference.encode(r.position, r.attributesJson)
        return Buffer.from(row.block.subarray(row.start, row.end))
      }))
      expect(readKey({ block: rows[1]!, start: 0, end: rows[1]!.length }).deviceId).toBe("dév-✓")
    }))
})
