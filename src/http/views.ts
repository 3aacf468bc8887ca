import type { ApiKeyRecord } from '../accounts/api-key.types.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import { publicConfig } from '../sessions/session-secrets.ts'

const iso = (ms: number): string => new Date(ms).toISOString()
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms))

/**
 * A session as the API shows it: times as ISO strings, the config as `publicConfig` shows
 * it (`headerValues: false` for a viewer key).
 */
export function sessionView(session: SessionRecord, options: { headerValues?: boolean } = {}) {
  return {
    id: session.id,
    name: session.name,
    status: session.status,
    statusHistory: session.statusHistory,
    lastError: session.lastError,
    phone: session.phone,
    pushName: session.pushName,
    jid: session.jid,
    lid: session.lid,
    config: publicConfig(session.config, options) as unknown as Record<string, unknown>,
    metadata: session.config.metadata,
    sandbox: session.sandbox,
    createdAt: iso(session.createdAt),
    updatedAt: iso(session.updatedAt),
    connectedAt: isoOrNull(session.connectedAt),
    lastActiveAt: isoOrNull(session.lastActiveAt),
    reconnectCount: session.reconnectCount,
  }
}

export function apiKeyView(key: ApiKeyRecord) {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    role: key.role,
    sessionIds: key.sessionIds,
    expiresAt: isoOrNull(key.expiresAt),
    lastUsedAt: isoOrNull(key.lastUsedAt),
    createdAt: iso(key.createdAt),
  }
}

export { iso }
