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
 * A new id: prefix, underscore, 20 base-36 characters (~103 bits of randomness), e.g.
 * `ses_4k2v9x0q1m7c8d3e5f6g`. Sortable ids are not needed: lists sort by timestamps.
 */
export function newId(kind: IdKind): string {
  let body = ''
  for (let i = 0; i < ID_LENGTH; i++) body += ALPHABET[nextRandomByte() % 36]
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
