import { Chunk, Clock, Duration, Effect, Metric, Stream } from "effect"
import { ProcessorConfig } from "../config/Config.js"
import { Consumer, type DeadLetter, type StreamEntry, streamIdTime, type WriteFailure } from "../consumer/Consumer.js"
import { Reason, render } from "../deadletter/Reason.js"
import * as Metrics from "../observability/Metrics.js"
import { Progress } from "../observability/Progress.js"
import { decodeEntry } from "../position/decode.js"
import type { Position } from "../position/Position.js"
import { ScannedPosition } from "../position/scan.js"
import { DeviceState } from "../state/DeviceState.js"
import type { PositionKey } from "../state/LastPosition.js"
import { type CopyRow, readKey, RowEncoder } from "../writer/copyBinary.js"
import { Writer } from "../writer/Writer.js"
import { type Accepted, DomainStage } from "./DomainStage.js"
import { Shutdown } from "./Shutdown.js"

/**
 * A record past the domain stage, waiting for the writer: its entry id and its encoded row (bytes `start` to
 * `end` of `block`), nothing else, in one object. What waits is what survives young-generation collections;
 * positions and payloads are left behind.
 */
class Queued implements CopyRow {
  constructor(readonly id: string, readonly block: Buffer, readonly start: number, readonly end: number) {}
}

/**
 * A record the byte scanner decoded (its position a ScannedPosition): its device id and attributes JSON are
 * ASCII, which the encoder copies without encoding. A stage that passes the record on passes this object; one
 * that makes a new record (a spread, a literal) makes a plain object, encoded as UTF-8 like any other.
 */
class ScannedRecord implements Accepted {
  constructor(readonly id: string, readonly position: Position, readonly attributesJson: string) {}
}

/** A batch holds at most this many bytes of encoded rows (besides BATCH_SIZE records): about 1,000 times a usual row. */
export const BATCH_MAX_BYTES = 4 * 1024 * 1024

/** Decoding a read gives the event loop back after this long. */
const YIELD_AFTER_MS = 20

/**
 * The processor: read → decode (invalid → dead letters) → device state → domain stage → batch → write → ack.
 *
 * The ACK rule: an entry is acknowledged only once its row is committed or was already there, or once it
 * has been copied to the dead-letter stream. A record whose write failed is not acknowledged: it stays in
 * the group's pending list and is delivered again (reclaimed); after MAX_DELIVERIES such failures it is
 * dead-lettered.
 */
export const run = Effect.gen(function*() {
  const config = yield* ProcessorConfig
  const consumer = yield* Consumer
  const state = yield* DeviceState
  const writer = yield* Writer
  const stage = yield* DomainStage
  // Used only by `accept`, which runs on one fiber at a time.
  const encoder = new RowEncoder()
  const limits = { maxPayloadBytes: config.maxPayloadBytes, maxFutureSkewMs: Duration.toMillis(config.maxFutureSkew) }

  const deadLetter = (letters: ReadonlyArray<DeadLetter>) =>
    consumer.deadLetter(letters).pipe(
      // Not acknowledged either: the entries come back through a reclaim and are dead-lettered then.
      Effect.catchAll((error) => Effect.logWarning(`dead-lettering ${letters.length} entries failed: ${error.message}`))
    )

  // Runs once per read, on the chunk as a whole: no Effect per record.
  const accept = (chunk: Chunk.Chunk<StreamEntry>) =>
    Effect.gen(function*() {
      const entries = Chunk.toReadonlyArray(chunk)
      if (entries.length === 0) return Chunk.empty<Queued>()
      yield* Metric.incrementBy(Metrics.consumed, entries.length)
      const accepted: Array<Accepted> = []
      const invalid: Array<DeadLetter> = []
      let slice = performance.now()
      for (let i = 0; i < entries.length; i++) {
        // A read of entries built to be slow (thousands of bad attributes each) must not hold the event loop
        // for seconds: /healthz and /readyz answer from it. Checked every 64 entries; a normal read never yields.
        if ((i & 63) === 63 && performance.now() - slice > YIELD_AFTER_MS) {
          yield* Effect.yieldNow()
          slice = performance.now()
        }
        const entry = entries[i]!
        const decoded = decodeEntry(entry, limits)
        if (decoded._tag === "Right") {
          const { attributesJson, position } = decoded.right
          accepted.push(
            position instanceof ScannedPosition
              ? new ScannedRecord(entry.id, position, attributesJson)
              : { id: entry.id, position, attributesJson }
          )
        } else invalid.push({ id: entry.id, reason: decoded.left })
      }
      if (invalid.length > 0) {
        yield* Effect.logWarning(`${invalid.length} invalid entries dead-lettered; first: ${invalid[0]!.id}: ${render(invalid[0]!.reason)}`)
        yield* deadLetter(invalid)
      }
      if (accepted.length === 0) return Chunk.empty<Queued>()
      // State first, as the design says; a domain stage then sees each record with its device's state.
      yield* state.update(accepted)
      const staged = yield* stage.process(accepted)
      const queued = new Array<Queued>(staged.length)
      for (let i = 0; i < staged.length; i++) {
        const record = staged[i]!
        const start = encoder.append(record.position, record.attributesJson, record instanceof ScannedRecord)
        queued[i] = new Queued(record.id, encoder.lastBlock, start, encoder.lastEnd)
      }
      return Chunk.unsafeFromArray(queued)
    })

  const writeAndAck = (batch: Chunk.Chunk<Queued>) =>
    Effect.gen(function*() {
      const records = Chunk.toReadonlyArray(batch)
      const started = yield* Clock.currentTimeMillis
      const outcomes = yield* writer.write(records)
      const committed = yield* Clock.currentTimeMillis
      const ackIds: Array<string> = []
      const rejected: Array<DeadLetter> = []
      // Records not stored as sent: a device whose newest position is one of them takes its stored row.
      const notStored: Array<PositionKey> = []
      const stuck: Array<WriteFailure> = []
      let future = 0
      const conflicted: Array<DeadLetter> = []
      let inserted = 0
      let failed = 0
      for (let i = 0; i < records.length; i++) {
        const outcome = outcomes[i]!
        const record = records[i]!
        switch (outcome._tag) {
          case "Inserted":
            inserted++
            ackIds.push(record.id)
            {
              // An id in the future (explicit, or every `*` id after one) would make lag negative: counted, clamped.
              const lagMs = committed - streamIdTime(record.id)
              if (lagMs < 0) future++
              Metrics.lag.unsafeUpdate(Math.max(0, lagMs) / 1000, [])
            }
            break
          case "Duplicate":
            ackIds.push(record.id)
            break
          case "Conflict": {
            const key = readKey(record)
            notStored.push(key)
            conflicted.push({ id: record.id, reason: Reason.Conflict({ deviceId: key.deviceId, timestamp: new Date(key.ms).toISOString() }) })
            break
          }
          case "Failed":
            failed++
            if (outcome.permanent) {
              rejected.push({ id: record.id, reason: Reason.Rejected({ message: outcome.reason }) })
              notStored.push(readKey(record))
            } else stuck.push({ id: record.id, error: outcome.reason })
        }
      }
      yield* consumer.ack(ackIds).pipe(
        // The rows are committed; entries not acknowledged now are delivered again and found duplicate.
        Effect.catchAll((error) => Effect.logWarning(`acknowledging ${ackIds.length} entries failed: ${error.message}`))
      )
      if (stuck.length > 0) {
        yield* consumer.recordFailures(stuck).pipe(
          // Not counted this time: the entries still come back, and are counted when they fail again.
          Effect.catchAll((error) => Effect.logWarning(`recording ${stuck.length} failed writes failed: ${error.message}`))
        )
      }
      if (future > 0) yield* Metric.incrementBy(Metrics.futureEntryIds, future)
      if (rejected.length > 0) {
        yield* Effect.logWarning(`${rejected.length} records rejected by the database dead-lettered; first: ${rejected[0]!.id}: ${render(rejected[0]!.reason)}`)
      }
      if (conflicted.length > 0) {
        // Not duplicates: the stream carried a second, different position for a stored (device_id, ts).
        yield* Effect.logWarning(`${conflicted.length} records in conflict with a stored position dead-lettered; first: ${conflicted[0]!.id}: ${render(conflicted[0]!.reason)}`)
        yield* Metric.incrementBy(Metrics.conflict, conflicted.length)
      }
      // One dead-letter script for both kinds.
      if (rejected.length + conflicted.length > 0) yield* deadLetter([...rejected, ...conflicted])
      if (notStored.length > 0) yield* state.reconcile(notStored)
      const duplicates = ackIds.length - inserted
      yield* Metric.incrementBy(Metrics.inserted, inserted)
      yield* Metric.incrementBy(Metrics.duplicate, duplicates)
      if (failed > 0) yield* Metric.incrementBy(Metrics.failed, failed)
      yield* Metric.update(Metrics.batchSize, records.length)
      yield* Metric.update(Metrics.writeDuration, (committed - started) / 1000)
      yield* Effect.logDebug(`batch: ${records.length} consumed, ${inserted} inserted, ${duplicates} duplicates, ${conflicted.length} conflicts, ${failed} failed`)
      yield* Effect.annotateCurrentSpan({ records: records.length, inserted, duplicates, conflicts: conflicted.length, failed })
    }).pipe(
      Effect.withSpan("Pipeline.batch"),
      // A batch that has started is finished, acknowledgements included, even when shutdown begins.
      Effect.uninterruptible
    )

  const progress = yield* Progress
  const shutdown = yield* Shutdown

  const accepted = consumer.entries.pipe(
    // A stop ends the reading only, after the read in progress (whose entries are already ours): what was
    // read flows on through every stage, so the stream ends once it is all written and acknowledged.
    Stream.haltWhen(shutdown.requested),
    Stream.onStart(Effect.logInfo("processor ready")),
    // Reads are marked by the consumer's read loop itself (empty ones included); here, what waits for the writer.
    Stream.mapChunksEffect((chunk) => accept(chunk).pipe(Effect.tap((q) => progress.markQueued(q.length))))
  )
  const writeBatch = (batch: Chunk.Chunk<Queued>) => Effect.zipLeft(writeAndAck(batch), progress.markWritten(batch.length))

  if (Duration.toMillis(config.batchMaxWait) > 0) {
    yield* accepted.pipe(
      Stream.groupedWithin(config.batchSize, config.batchMaxWait),
      Stream.mapEffect(writeBatch, { concurrency: config.writeConcurrency, unordered: true }),
      Stream.runDrain
    )
    return
  }

  // Adaptive by default: a free writer takes whatever has accumulated, up to BATCH_SIZE, so batches are small
  // (low latency) when traffic is light and large (cheap per row) under load. Plain array and two latches
  // rather than Stream.aggregate + mapEffect: those fork and race fibers for every batch, which cost more CPU
  // than a small batch's write at light load (measured with the bench's latency figure: notes/bench-final.md).
  // Bounded by count and by bytes: records with large attributes make fewer records a batch, not more memory.
  const waiting: Array<Queued> = []
  let waitingBytes = 0
  let ended = false
  // Open while records wait (or the reading has ended); writers wait on it.
  const work = yield* Effect.makeLatch(false)
  // Open while fewer than a full batch per writer wait; the reading waits on it (backpressure). A writer that
  // finishes then finds a full batch even when the other has just taken one.
  const room = yield* Effect.makeLatch(true)
  const highWater = config.batchSize * config.writeConcurrency
  const highWaterBytes = BATCH_MAX_BYTES * config.writeConcurrency
  const full = () => waiting.length >= highWater || waitingBytes >= highWaterBytes

  const feed = accepted.pipe(
    Stream.runForEachChunk((chunk) =>
      Effect.suspend(() => {
        // An array-backed chunk (accept makes them): indexed, not through Chunk's iterator.
        const rows = Chunk.toReadonlyArray(chunk)
        for (let i = 0; i < rows.length; i++) {
          const queued = rows[i]!
          waiting.push(queued)
          waitingBytes += queued.end - queued.start
        }
        if (waiting.length > 0) work.unsafeOpen()
        if (!full()) return Effect.void
        room.unsafeClose()
        return room.await
      })
    ),
    Effect.ensuring(Effect.sync(() => {
      ended = true
      work.unsafeOpen()
    }))
  )

  const writerLoop: Effect.Effect<void> = Effect.suspend(() => {
    if (waiting.length === 0) {
      if (ended) return Effect.void
      work.unsafeClose()
      return Effect.zipRight(work.await, writerLoop)
    }
    let n = 0
    let bytes = 0
    while (n < waiting.length && n < config.batchSize && bytes < BATCH_MAX_BYTES) {
      const row = waiting[n++]!
      bytes += row.end - row.start
    }
    const batch = waiting.splice(0, n)
    waitingBytes -= bytes
    if (!full()) room.unsafeOpen()
    return Effect.zipRight(writeBatch(Chunk.unsafeFromArray(batch)), writerLoop)
  })

  yield* Effect.all([feed, ...Array.from({ length: config.writeConcurrency }, () => writerLoop)], {
    concurrency: "unbounded",
    discard: true
  })
}).pipe(Effect.annotateLogs({ service: "pipeline" }))
