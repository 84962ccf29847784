/**
 * What a failure says: an Error's `message` (without its name or stack), or anything else as `String` makes it.
 * Callers that print it to a terminal or quote it in a dead letter cut it themselves.
 */
export const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))
