import { randomBytes } from 'node:crypto'

/** Every id wagate hands out carries a prefix naming what it identifies. */
export const ID_PREFIXES = {
  organization: 'org',
  apiKey: 'key',
  session: 'ses',
  message: 'msg',
  media: 'med',
  webhook: 'whk',
  delivery: 'dlv',
  event: 'evt',
  request: 'req',
} as const

export type IdKind = keyof typeof ID_PREFIXES

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz'

/**
 * Kinds written in bulk to append-mostly tables. Their ids start with the time they were
 * made, so a new row's primary-key entry lands at the end of the index. With random ids,
 * every webhook step wrote its attempts and deliveries onto ~20 scattered index pages: the
 * write-ahead log grew 1.6 times as fast and the worker delivered half as many per second
 * (bench/webhooks.ts, 2026-12-05: 3.5k → 7.5k deliveries/s).
 */
const TIME_ORDERED: ReadonlySet<IdKind> = new Set(['event', 'delivery', 'message'])
/** Base-36 digits of epoch milliseconds: 9 cover every date until the year 5188. */
const TIME_DIGITS = 9

/**
 * A new id: prefix, underscore, 20 base-36 characters, e.g. `ses_4k2v9x0q1m7c8d3e5f6g`:
 * ~103 random bits, or for the time-ordered kinds the creation time (9 characters) and ~57
 * random bits. Time-ordered ids also ascend strictly within this process: one made in the
 * same millisecond as the last (or after the clock stepped back) takes the last one's time
 * and random part plus one, so events minted in one transaction after another sort in the
 * order they were committed — the event stream's resume cursor breaks ties on the id.
 */
export function newId(kind: IdKind): string {
  if (!TIME_ORDERED.has(kind)) return `${ID_PREFIXES[kind]}_${randomChars(ID_LENGTH)}`
  const now = Date.now()
  if (now > lastTime) {
    lastTime = now
    lastTail = randomChars(ID_LENGTH - TIME_DIGITS)
  } else {
    lastTail = increment(lastTail)
  }
  return `${ID_PREFIXES[kind]}_${lastTime.toString(36).padStart(TIME_DIGITS, '0')}${lastTail}`
}

let lastTime = 0
let lastTail = ''

function randomChars(count: number): string {
  let chars = ''
  while (chars.length < count) chars += ALPHABET[nextRandomByte() % 36]
  return chars
}

/** The base-36 string one greater, same length (wrapping at the top, which 57 random bits never reach). */
function increment(chars: string): string {
  const digits = [...chars]
  for (let i = digits.length - 1; i >= 0; i--) {
    const next = ALPHABET.indexOf(digits[i] ?? '0') + 1
    if (next < ALPHABET.length) {
      digits[i] = ALPHABET[next] ?? '0'
      return digits.join('')
    }
    digits[i] = '0'
  }
  return digits.join('')
}

const ID_LENGTH = 20
// Ids are made per request (request ids): draw randomness in blocks, not 20 bytes a call.
const POOL_SIZE = 4096
let pool = randomBytes(POOL_SIZE)
let offset = 0

function nextRandomByte(): number {
  if (offset >= POOL_SIZE) {
    pool = randomBytes(POOL_SIZE)
    offset = 0
  }
  return pool[offset++] ?? 0
}

export function hasPrefix(value: string, kind: IdKind): boolean {
  return value.startsWith(`${ID_PREFIXES[kind]}_`)
}

/** Produces ids; services take one so tests can make ids predictable. */
export type IdGenerator = (kind: IdKind) => string
