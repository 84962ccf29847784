import { Cause, Data, Exit } from "effect"
import type { Teardown } from "@effect/platform/Runtime"

/**
 * The worker's exit codes (the higher ones from BSD sysexits.h, as supervisors and operators know them):
 *   0   stopped on request (SIGTERM/SIGINT) with every read entry written and acknowledged or dead-lettered,
 *       or stopped before it started reading
 *   1   any other failure: a defect, a server unreachable for the whole start deadline, draining longer
 *       than SHUTDOWN_TIMEOUT_MS, the HTTP port taken; a restart may help
 *   69  EX_UNAVAILABLE: the database named in POSTGRES_URL does not exist (SQLSTATE 3D000)
 *   77  EX_NOPERM: PostgreSQL or Redis refused the credentials (28000, 28P01; WRONGPASS, NOAUTH)
 *   78  EX_CONFIG: invalid configuration
 * 69, 77 and 78 are not cured by restarting: the deployment needs fixing.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  unavailable: 69,
  noPermission: 77,
  config: 78
} as const

/** A reason to stop at start, with its exit code; `message` is the one line logged. */
export class StartFailed extends Data.TaggedError("StartFailed")<{
  readonly message: string
  readonly exitCode: number
}> {}

const codeOf = (error: unknown): number | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  if ((error as { _tag?: unknown })._tag === "ConfigInvalid") return ExitCode.config
  const code = (error as { exitCode?: unknown }).exitCode
  return typeof code === "number" ? code : undefined
}

/**
 * The exit code for the main fiber's exit: the code a failure or defect carries (`exitCode`, or 78 for ConfigInvalid),
 * 0 for success or an interruption alone (a stop on request that drained in time), 1 for anything else.
 */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return ExitCode.ok
  // Defects too: after an interruption only defects survive in the cause (DrainTimeout is one).
  for (const error of [...Cause.failures(exit.cause), ...Cause.defects(exit.cause)]) {
    const code = codeOf(error)
    if (code !== undefined) return code
  }
  return Cause.isInterruptedOnly(exit.cause) ? ExitCode.ok : ExitCode.failure
}

/** runMain's teardown: the process exits with `exitCodeOf(exit)`. */
export const teardown: Teardown = (exit, onExit) => onExit(exitCodeOf(exit))
