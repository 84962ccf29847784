// Buffer's own string methods, which `toString(encoding, start, end)` and `write(value, offset, encoding)` call
// after checking their arguments. On the hot path the callers' arguments are in range by construction, so they
// call these directly. Not in @types/node, hence the one cast here.

interface BufferStrings {
  latin1Slice(start: number, end: number): string
  latin1Write(value: string, offset: number): number
  utf8Write(value: string, offset: number): number
}

const strings = (b: Buffer): BufferStrings => b as unknown as BufferStrings

/** The text of bytes `b[start..end)`, a character per byte (ASCII reads as itself). `start ≤ end ≤ b.length`. */
export const latin1Text = (b: Buffer, start: number, end: number): string => strings(b).latin1Slice(start, end)

/** Writes `value` a byte per character (its UTF-8 when ASCII) at `offset`; returns the bytes written. */
export const latin1Write = (b: Buffer, value: string, offset: number): number => strings(b).latin1Write(value, offset)

/** Writes `value` as UTF-8 at `offset`; returns the bytes written. */
export const utf8Write = (b: Buffer, value: string, offset: number): number => strings(b).utf8Write(value, offset)
