/**
 * A bounded map that forgets its least recently used key. Plain and synchronous: a JavaScript Map keeps
 * insertion order, so "touching" a key is delete + set and the oldest key is the first one.
 */
export class Lru<K, V> {
  private readonly map = new Map<K, V>()

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("Lru capacity must be a positive integer")
  }

  get size(): number {
    return this.map.size
  }

  /** The value, marking the key as most recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }

  /** The value, leaving the order alone. */
  peek(key: K): V | undefined {
    return this.map.get(key)
  }

  has(key: K): boolean {
    return this.map.has(key)
  }

  /** Stores the value as most recently used; returns how many keys were evicted to stay within capacity. */
  set(key: K, value: V): number {
    this.map.delete(key)
    this.map.set(key, value)
    let evicted = 0
    while (this.map.size > this.capacity) {
      this.map.delete(this.map.keys().next().value as K)
      evicted++
    }
    return evicted
  }

  keys(): IterableIterator<K> {
    return this.map.keys()
  }
}
