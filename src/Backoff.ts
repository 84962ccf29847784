import { type Duration, Schedule } from "effect"

// The two ways the worker waits for Redis or PostgreSQL, in one place.

/** While running: capped, jittered exponential backoff, for as long as it takes. */
export const whileRunning = (cap: Duration.DurationInput) =>
  Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced(cap)), Schedule.jittered)

/** At start: backoff up to 5 s between tries, for a minute at most, then the worker gives up with the reason. */
export const atStart = Schedule.exponential("200 millis").pipe(
  Schedule.union(Schedule.spaced("5 seconds")),
  Schedule.upTo("1 minute")
)
