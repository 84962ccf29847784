import { Data } from "effect"

/**
 * Why an entry was dead-lettered: data, not wording. The dead-letter stream stores `reason` (the label, a
 * short machine-readable word) and `error` (the rendering, one line for a person); the
 * `processor_dead_letters_total{reason}` series counts labels. Rewording `render` moves no count.
 */
export type Reason = Data.TaggedEnum<{
  /** The payload breaks the wire contract. `message` names the field, e.g. `latitude: Expected …`. */
  Invalid: { readonly message: string }
  /** The payload field is larger than MAX_PAYLOAD_BYTES (bytes, as stored in Redis); it was not parsed. */
  TooLarge: { readonly bytes: number; readonly limit: number }
  /** The database refused this record's data (SQLSTATE class 22 or 23, a CHECK, …). */
  Rejected: { readonly message: string }
  /** A different position is already stored for the same (device_id, ts). */
  Conflict: { readonly deviceId: string; readonly timestamp: string }
  /** Failed to be written MAX_DELIVERIES times for a non-transient reason. */
  Poison: { readonly failures: number; readonly limit: number; readonly lastError: string }
  /** Deleted or trimmed from the stream while it was pending: only its id is left. */
  Trimmed: {}
}>

export const Reason = Data.taggedEnum<Reason>()

export type Label = "invalid" | "too_large" | "rejected" | "conflict" | "max_deliveries" | "trimmed"

export const LABELS: ReadonlyArray<Label> = ["invalid", "too_large", "rejected", "conflict", "max_deliveries", "trimmed"]

/** The metric label and the dead-letter stream's `reason` field. */
export const label: (reason: Reason) => Label = Reason.$match({
  Invalid: (): Label => "invalid",
  TooLarge: (): Label => "too_large",
  Rejected: (): Label => "rejected",
  Conflict: (): Label => "conflict",
  Poison: (): Label => "max_deliveries",
  Trimmed: (): Label => "trimmed"
})

/** Quoted values in a reason are cut to this many characters: a reason is one short line, whatever came in. */
export const QUOTE_LIMIT = 120

/** At most QUOTE_LIMIT characters of `text`, marked when cut. Never throws, whatever the text. */
export const quote = (text: string): string => {
  const head = text.length > QUOTE_LIMIT ? text.slice(0, QUOTE_LIMIT) + "…" : text
  return JSON.stringify(head)
}

/** The longest `error` field: one line, whatever the reason holds. */
export const ERROR_LIMIT = 500

const cut = (text: string): string => (text.length > ERROR_LIMIT ? text.slice(0, ERROR_LIMIT - 1) + "…" : text)

/** The dead-letter stream's `error` field: one line for the operator, at most ERROR_LIMIT characters. */
export const render = (reason: Reason): string => cut(renderFull(reason))

const renderFull: (reason: Reason) => string = Reason.$match({
  Invalid: ({ message }) => message,
  TooLarge: ({ bytes, limit }) => `payload: ${bytes} bytes, more than MAX_PAYLOAD_BYTES=${limit}; not parsed`,
  Rejected: ({ message }) => `rejected by the database: ${message}`,
  Conflict: ({ deviceId, timestamp }) =>
    `conflict: a different position is stored for device ${quote(deviceId)} at ${timestamp}`,
  Poison: ({ failures, limit, lastError }) =>
    `failed ${failures} times without being written (MAX_DELIVERIES=${limit}); last error: ${lastError}`,
  Trimmed: () => "the entry was deleted or trimmed from the stream while pending: payload lost"
})
