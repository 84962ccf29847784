// Finishes scanned for linearly from the expected slot before the index is built: about a batch's worth.
const SCAN_LIMIT = 8192
// A finished prefix at least this long, and at least half the slots, is cut off; past this many slots held,
// so are finished slots once they are three quarters of them.
const COMPACT_AFTER = 1024

/**
 * The set of stream entry ids a consumer has handed out and not yet finished (acknowledged, dead-lettered or
 * its failure recorded), in the order they were handed out: what RedisConsumer keeps alive with XCLAIM and
 * never hands out again while it is here.
 *
 * Made for the pipeline's order: ids are finished in nearly the order they were added (a batch is a run of
 * consecutive reads' entries; two writers finish their batches out of order). Adding is an array push; finishing
 * the id in the slot after the previous finish (or the oldest) is one comparison, so the common path hashes no
 * string. Any other id is looked for by a scan of at most 2 × SCAN_LIMIT slots from there, then through an
 * id → slot index built (and extended) only on such a miss and dropped when the slots are compacted. Every
 * operation is correct in any order; only its cost depends on it.
 *
 * An id is added only while it is not here (the consumer's guarantee: claims and own reads are filtered with
 * `has`, and a new read never returns an id delivered before); a second add would hold two slots.
 */
export class InFlight {
  // Slots in handed-out order; a finished slot holds undefined. Live slots lie in [head, ids.length).
  #ids: Array<string | undefined> = []
  #head = 0
  // The slot after the last finish: where the next one is expected.
  #next = 0
  #size = 0
  // id → slot for the slots below #indexed (possibly stale: checked against #ids).
  #index: Map<string, number> | undefined = undefined
  #indexed = 0

  /** Ids here. */
  get size(): number {
    return this.#size
  }

  add(id: string): void {
    this.#ids.push(id)
    this.#size++
  }

  /**
   * Whether `id` is here. Through the id → slot index (extended over the slots added since), not a scan: the
   * claim and own-pending filters ask it of up to READ_COUNT ids, mostly absent, while thousands are here.
   */
  has(id: string): boolean {
    if (this.#size === 0) return false
    const next = this.#next
    if (next < this.#ids.length && this.#ids[next] === id) return true
    return this.#lookup(id) >= 0
  }

  /** Takes the id out; false when it was not here. */
  delete(id: string): boolean {
    const slot = this.#find(id)
    if (slot < 0) return false
    const ids = this.#ids
    ids[slot] = undefined
    this.#next = slot + 1
    if (--this.#size === 0) {
      this.#reset()
      return true
    }
    if (slot === this.#head) {
      let head = slot + 1
      while (ids[head] === undefined) head++
      this.#head = head
    }
    const held = ids.length - this.#head
    if (held >= COMPACT_AFTER && this.#size * 4 <= held) {
      // An old id still here (a slow write) keeps the head back while others come and go: the finished slots
      // are dropped once they are three quarters of those held, so memory follows the ids here, not the traffic.
      this.#compactSparse()
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= ids.length) this.#compact()
    return true
  }

  /** Slots held, finished ones included (at most about 4 × `size` once past COMPACT_AFTER): memory, for tests. */
  get slots(): number {
    return this.#ids.length - this.#head
  }

  /** The ids here, oldest first (a copy). */
  toArray(): Array<string> {
    const out: Array<string> = []
    const ids = this.#ids
    for (let i = this.#head; i < ids.length; i++) {
      const id = ids[i]
      if (id !== undefined) out.push(id)
    }
    return out
  }

  clear(): void {
    this.#reset()
  }

  #reset(): void {
    this.#ids = []
    this.#head = 0
    this.#next = 0
    this.#size = 0
    this.#index = undefined
    this.#indexed = 0
  }

  #compact(): void {
    const head = this.#head
    this.#ids = this.#ids.slice(head)
    this.#next = Math.max(0, this.#next - head)
    this.#head = 0
    this.#index = undefined
    this.#indexed = 0
  }

  #compactSparse(): void {
    const ids = this.#ids
    const next = this.#next
    const live: Array<string | undefined> = []
    let newNext = -1
    for (let i = this.#head; i < ids.length; i++) {
      if (i === next) newNext = live.length
      const id = ids[i]
      if (id !== undefined) live.push(id)
    }
    this.#ids = live
    this.#next = newNext < 0 ? live.length : newNext
    this.#head = 0
    this.#index = undefined
    this.#indexed = 0
  }

  // The slot holding `id`, or -1.
  #find(id: string): number {
    if (this.#size === 0) return -1
    const ids = this.#ids
    const n = ids.length
    const next = this.#next
    if (next < n && ids[next] === id) return next
    const head = this.#head
    if (ids[head] === id) return head
    // Forward from the expected slot (a sparse run: entries in between went another way), then from the oldest.
    const forwardEnd = Math.min(n, next + SCAN_LIMIT)
    for (let i = Math.max(next, head); i < forwardEnd; i++) if (ids[i] === id) return i
    const backEnd = Math.min(next, head + SCAN_LIMIT)
    for (let i = head; i < backEnd; i++) if (ids[i] === id) return i
    if (forwardEnd === n && backEnd >= next) return -1
    return this.#lookup(id)
  }

  #lookup(id: string): number {
    const ids = this.#ids
    const index = (this.#index ??= new Map())
    const known = index.get(id)
    if (known !== undefined && ids[known] === id) return known
    for (let i = Math.max(this.#indexed, this.#head); i < ids.length; i++) {
      const v = ids[i]
      if (v !== undefined) index.set(v, i)
    }
    this.#indexed = ids.length
    const slot = index.get(id)
    return slot !== undefined && ids[slot] === id ? slot : -1
  }
}
