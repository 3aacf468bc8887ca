/**
 * A small seeded PRNG (mulberry32) for the sandbox's generated phone numbers, LIDs, names
 * and message ids, so a run with the same seed creates the same world. Key material is
 * never drawn from it: Signal and Noise keys always come from the crypto RNG.
 */
export class SeededRandom {
  /** the generator position; saved with the sandbox so a restored world continues the sequence */
  state: number

  constructor(seed: number) {
    this.state = seed >>> 0
  }

  /** a float in [0, 1) */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }

  digits(count: number): string {
    let out = ''
    for (let i = 0; i < count; i++) out += Math.floor(this.next() * 10)
    return out
  }

  hex(bytes: number): string {
    let out = ''
    for (let i = 0; i < bytes; i++)
      out += Math.floor(this.next() * 256)
        .toString(16)
        .padStart(2, '0')
    return out.toUpperCase()
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)]
    if (item === undefined) throw new Error('pick from an empty list')
    return item
  }
}
