import type { ApiKeyRecord } from '../accounts/api-key.types.ts'
import type { SessionRecord } from '../sessions/session.types.ts'
import { publicConfig } from '../sessions/session-secrets.ts'

const iso = (ms: number): string => new Date(ms).toISOString()
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms))

/** A session as the API shows it: times as ISO strings, secrets reduced to "set or not". */
/**
 * A session as the API shows it. `headerValues: false` (a viewer key) leaves the values of
 * its webhooks' custom headers out, names kept: they often hold a receiver's token, and
 * only keys that may change the config need them.
 */
export function sessionView(session: SessionRecord, options: { headerValues?: boolean } = {}) {
  const config = publicConfig(session.config)
  if (options.headerValues === false) {
    config.webhooks = config.webhooks.map((webhook) => ({
      ...webhook,
      customHeaders: webhook.customHeaders.map(({ name }) => ({ name })) as typeof webhook.customHeaders,
    }))
  }
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
    config: config as unknown as Record<string, unknown>,
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
