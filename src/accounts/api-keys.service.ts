import { createHash, randomBytes } from 'node:crypto'
import { AppError, invalidRequest, notFound } from '../domain/errors.ts'
import type { IdGenerator } from '../domain/ids.ts'
import { resolveSessionIds, type SessionResolver } from '../sessions/session-resolver.ts'
import type { ApiKeyRecord, ApiKeyRole, ApiKeyStore, Principal } from './api-key.types.ts'

const KEY_PREFIX = 'wag_'
const VISIBLE_LENGTH = KEY_PREFIX.length + 8
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
/** how long another node may keep trusting a key it verified; this node forgets revoked keys at once */
const CACHE_TTL_MS = 60_000
const CACHE_LIMIT = 10_000
const LAST_USED_FLUSH_MS = 60_000

export const hashApiKey = (key: string): string => createHash('sha256').update(key).digest('hex')

function generateSecret(): string {
  const bytes = randomBytes(40)
  let body = ''
  for (const byte of bytes) body += BASE62[byte % 62]
  return `${KEY_PREFIX}${body}`
}

export interface CreateApiKeyInput {
  name: string
  role: ApiKeyRole
  sessionIds?: string[] | null
  expiresAt?: number | null
}

/**
 * API keys: created once (the secret is shown only then), stored as a SHA-256 hash with a
 * visible prefix, checked on every request without a database write — verified keys are
 * cached, `lastUsedAt` is written in batches, and a revocation on this node takes effect
 * at once.
 */
export class ApiKeysService {
  private readonly store: ApiKeyStore
  private readonly newId: IdGenerator
  private readonly now: () => number
  private readonly sessions?: SessionResolver
  private readonly cache = new Map<string, { record: ApiKeyRecord; cachedAt: number }>()
  private readonly used = new Set<string>()
  private flushTimer?: NodeJS.Timeout
  private readonly revokedListeners: ((keyId: string) => void)[] = []

  constructor(
    store: ApiKeyStore,
    newId: IdGenerator,
    deps: {
      now?: () => number
      /** a key's `sessionIds` may name sessions; each must be one of the organization's */
      sessions?: SessionResolver
    } = {},
  ) {
    this.store = store
    this.newId = newId
    this.now = deps.now ?? Date.now
    this.sessions = deps.sessions
  }

  async create(
    organizationId: string,
    input: CreateApiKeyInput,
  ): Promise<{ record: ApiKeyRecord; key: string }> {
    if (input.expiresAt && input.expiresAt <= this.now()) {
      throw invalidRequest('expiresAt must be in the future', [
        { path: 'body.expiresAt', message: 'in the past' },
      ])
    }
    const key = generateSecret()
    const record: ApiKeyRecord = {
      id: this.newId('apiKey'),
      organizationId,
      name: input.name,
      prefix: key.slice(0, VISIBLE_LENGTH),
      role: input.role,
      sessionIds: input.sessionIds?.length ? await this.sessionIdsOf(organizationId, input.sessionIds) : null,
      expiresAt: input.expiresAt ?? null,
      lastUsedAt: null,
      createdAt: this.now(),
      revokedAt: null,
    }
    await this.store.create({ ...record, hash: hashApiKey(key) })
    return { record, key }
  }

  private async sessionIdsOf(organizationId: string, idsOrNames: readonly string[]): Promise<string[]> {
    if (!this.sessions) return [...new Set(idsOrNames)]
    return resolveSessionIds(this.sessions, organizationId, idsOrNames, 'body.sessionIds')
  }

  list(organizationId: string): Promise<ApiKeyRecord[]> {
    return this.store.listByOrganization(organizationId)
  }

  async revoke(organizationId: string, id: string): Promise<void> {
    const revoked = await this.store.revoke(organizationId, id, this.now())
    if (!revoked) throw notFound('API key')
    this.forget(id)
    for (const listener of this.revokedListeners) listener(id)
  }

  /** `listener` hears of each key revoked here: what the key opened (event streams) ends with it. */
  onRevoked(listener: (keyId: string) => void): void {
    this.revokedListeners.push(listener)
  }

  /** The caller behind `key`, or an `unauthorized` error that does not say which check failed. */
  async authenticate(key: string | undefined): Promise<Principal> {
    if (!key)
      throw new AppError('unauthorized', 'missing API key: send it in X-API-Key or Authorization: Bearer')
    const hash = hashApiKey(key)
    const now = this.now()
    let record = this.cached(hash, now)
    if (!record) {
      record = await this.store.getByHash(hash)
      if (record) this.remember(hash, record, now)
    }
    if (!record || record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt <= now)) {
      throw new AppError('unauthorized', 'invalid, revoked or expired API key')
    }
    this.markUsed(record.id)
    return {
      organizationId: record.organizationId,
      keyId: record.id,
      role: record.role,
      sessionIds: record.sessionIds,
      expiresAt: record.expiresAt,
    }
  }

  /**
   * Throws unless `principal`'s key still works, asked of the store rather than of this
   * process's cache: a stream ticket reopening a stream, or a stream itself, outlives the
   * request that made it, and another gateway process may have revoked the key since — in
   * which case this process stops trusting it at once, not when its cache entry ends.
   */
  async confirm(principal: Principal): Promise<void> {
    const record = await this.store.getById(principal.organizationId, principal.keyId)
    const now = this.now()
    if (!record || record.revokedAt !== null || (record.expiresAt !== null && record.expiresAt <= now)) {
      this.forget(principal.keyId)
      throw new AppError('unauthorized', 'the API key was revoked or has expired')
    }
  }

  /** The key is no longer trusted from the cache: its next use is looked up. */
  private forget(keyId: string): void {
    for (const [hash, entry] of this.cache) if (entry.record.id === keyId) this.cache.delete(hash)
  }

  count(): Promise<number> {
    return this.store.count()
  }

  /** Writes pending `lastUsedAt` updates; called on a timer and at shutdown. */
  async flushUsage(): Promise<void> {
    if (this.used.size === 0) return
    const ids = [...this.used]
    this.used.clear()
    await this.store.touchLastUsed(ids, this.now())
  }

  close(): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    return this.flushUsage()
  }

  private cached(hash: string, now: number): ApiKeyRecord | undefined {
    const entry = this.cache.get(hash)
    if (!entry) return undefined
    if (now - entry.cachedAt > CACHE_TTL_MS) {
      this.cache.delete(hash)
      return undefined
    }
    return entry.record
  }

  private remember(hash: string, record: ApiKeyRecord, now: number): void {
    if (this.cache.size >= CACHE_LIMIT) {
      const oldest = this.cache.keys().next().value
      if (oldest !== undefined) this.cache.delete(oldest)
    }
    this.cache.set(hash, { record, cachedAt: now })
  }

  private markUsed(id: string): void {
    this.used.add(id)
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined
      void this.flushUsage().catch(() => undefined)
    }, LAST_USED_FLUSH_MS)
    this.flushTimer.unref()
  }
}
