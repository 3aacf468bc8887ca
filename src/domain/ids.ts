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
 * random bits. Nothing sorts by id alone: lists sort by timestamps, ids only break ties.
 */
export function newId(kind: IdKind): string {
  let body = TIME_ORDERED.has(kind) ? Date.now().toString(36).padStart(TIME_DIGITS, '0') : ''
  while (body.length < ID_LENGTH) body += ALPHABET[nextRandomByte() % 36]
  return `${ID_PREFIXES[kind]}_${body}`
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
