import { Data, Effect } from "effect"
import type { Redis as IORedis } from "ioredis"
import { messageOf } from "../ErrorMessage.js"

export class PublishError extends Data.TaggedError("PublishError")<{
  readonly stream: string
  /** Entries Redis confirmed before the failure (earlier batches and the failed batch's successful XADDs). */
  readonly published: number
  readonly cause: unknown
}> {
  override get message(): string {
    return `XADD to ${this.stream} failed: ${messageOf(this.cause)}`
  }
}

/**
 * XADDs each payload as an entry with one field `payload`, one pipeline per `batchSize` awaited before the next, so
 * entry ids follow the order of `payloads`. Succeeds with the number published; fails with PublishError.
 */
export const publish = Effect.fn("Publish.publish")(function*(
  redis: IORedis,
  stream: string,
  payloads: ReadonlyArray<string>,
  batchSize: number = 1000
) {
  const size = Math.max(1, Math.floor(batchSize))
  let published = 0
  for (let start = 0; start < payloads.length; start += size) {
    const pipeline = redis.pipeline()
    for (const payload of payloads.slice(start, start + size)) pipeline.xadd(stream, "*", "payload", payload)
    const results = yield* Effect.tryPromise({
      try: () => pipeline.exec(),
      catch: (cause) => new PublishError({ stream, published, cause })
    })
    // exec() resolves even when single commands fail; their errors sit in the results.
    if (results === null) return yield* new PublishError({ stream, published, cause: new Error("pipeline discarded") })
    const failed = results.find(([error]) => error !== null)?.[0]
    published += results.filter(([error]) => error === null).length
    if (failed) return yield* new PublishError({ stream, published, cause: failed })
  }
  return published
})
