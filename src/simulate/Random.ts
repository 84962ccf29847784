// Seeded randomness for the simulator: the same seed gives the same fleet and the same records.

export type Rng = () => number

export const mulberry32 = (seed: number): Rng => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const TWO_POW_53 = 2n ** 53n

/** An integer in [min, max], both included. */
export const randomInt = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1))

export const randomUint32 = (rng: Rng): number => Math.floor(rng() * 4294967296)

/** A uint64 in decimal, always above 2^53 (beyond what a double holds exactly). */
export const randomUint64AboveDoubles = (rng: Rng): string => {
  const value = (BigInt(randomInt(rng, 2 ** 21, 2 ** 32 - 1)) << 32n) | BigInt(randomUint32(rng))
  return (value < TWO_POW_53 ? value + TWO_POW_53 : value).toString()
}
