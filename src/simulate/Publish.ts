import { Data, Effect } from "effect"
import type { Redis } from "ioredis"

export class PublishError extends Data.TaggedError("PublishError")<{
  readonly stream: string
  readonly cause: unknown
}> {
  override get message(): string {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `XADD to ${this.stream} failed: ${reason}`
  }
}

// One pipeline per batch, awaited before the next: entry ids follow the order of `payloads`.
export const publish = Effect.fn("Publish.publish")(function*(
  redis: Redis,
  stream: string,
  payloads: ReadonlyArray<string>,
  batchSize: number = 1000
) {
  const size = Math.max(1, Math.floor(batchSize))
  for (let start = 0; start < payloads.length; start += size) {
    const pipeline = redis.pipeline()
    for (const payload of payloads.slice(start, start + size)) pipeline.xadd(stream, "*", "payload", payload)
    const results = yield* Effect.tryPromise({
      try: () => pipeline.exec(),
      catch: (cause) => new PublishError({ stream, cause })
    })
    // exec() resolves even when single commands fail; their errors sit in the results.
    const failed = results === null ? new Error("pipeline discarded") : results.find(([error]) => error !== null)?.[0]
    if (failed) return yield* new PublishError({ stream, cause: failed })
  }
  return payloads.length
})
