import { Chunk, Effect, Layer, Queue, Ref, Stream } from "effect"
import { Consumer, type DeadLetter, type StreamEntry } from "../../src/consumer/Consumer.js"

/** A dead letter as the memory consumer keeps it: with the entry's payload and the rendered reason. */
export interface StoredLetter extends DeadLetter {
  readonly payload: string | undefined
}

/** An in-memory consumer group: the test offers chunks (one per "read") and inspects acks and dead letters. */
export interface MemoryConsumer {
  readonly read: (entries: ReadonlyArray<StreamEntry>) => Effect.Effect<void>
  readonly end: Effect.Effect<void>
  readonly acked: Effect.Effect<ReadonlyArray<string>>
  readonly deadLetters: Effect.Effect<ReadonlyArray<StoredLetter>>
  readonly layer: Layer.Layer<Consumer>
}

export const makeMemoryConsumer = Effect.gen(function*() {
  const reads = yield* Queue.unbounded<Chunk.Chunk<StreamEntry> | null>()
  const acked = yield* Ref.make<ReadonlyArray<string>>([])
  const letters = yield* Ref.make<ReadonlyArray<StoredLetter>>([])
  // Like the Redis consumer, a letter is stored with the entry's own payload.
  const payloads = new Map<string, string | undefined>()
  const entries = Stream.fromQueue(reads).pipe(
    Stream.takeWhile((c): c is Chunk.Chunk<StreamEntry> => c !== null),
    Stream.flattenChunks
  )
  const consumer = Consumer.of({
    entries,
    ack: (ids) => Ref.update(acked, (all) => [...all, ...ids]),
    deadLetter: (ls) =>
      Ref.update(letters, (all) => [...all, ...ls.map((l) => ({ ...l, payload: payloads.get(l.id) }))]).pipe(
        Effect.zipRight(Ref.update(acked, (all) => [...all, ...ls.map((l) => l.id)]))
      )
  })
  return {
    read: (es) =>
      Effect.suspend(() => {
        for (const e of es) payloads.set(e.id, e.payload)
        return Queue.offer(reads, Chunk.fromIterable(es))
      }).pipe(Effect.asVoid),
    end: Queue.offer(reads, null).pipe(Effect.asVoid),
    acked: Ref.get(acked),
    deadLetters: Ref.get(letters),
    layer: Layer.succeed(Consumer, consumer)
  } satisfies MemoryConsumer
})

let seq = 0
/** A stream entry for a payload object (or raw string), with a fresh id. */
export const entry = (payload: unknown, id = `${1_700_000_000_000 + seq}-${seq++}`): StreamEntry => ({
  id,
  payload: typeof payload === "string" ? payload : JSON.stringify(payload)
})

export const position = (deviceId: string, iso: string, extra: Record<string, unknown> = {}) => ({
  device_id: deviceId,
  timestamp: iso,
  latitude: 54.6872,
  longitude: 25.2797,
  altitude: 112,
  angle: 270,
  speed: 43.5,
  satellites: 11,
  priority: 0,
  event_id: 0,
  attributes: { "16": 123456, "78": { __bigint: "18446744073709551615" }, "385": { __bytes: "AQID" } },
  ...extra
})
