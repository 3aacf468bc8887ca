import { createHash } from 'node:crypto'
import type { SessionConfig } from '../domain/session-config.ts'
import type { DomainEvent } from '../events/catalogue.ts'
import { matchesType } from '../events/event-filter.ts'
import type { WebhookRecord, WebhookTarget } from './webhook.types.ts'

/** A webhook entry of a session's `config.webhooks` (its HMAC key already sealed). */
export type SessionWebhookConfig = SessionConfig['webhooks'][number]

/** Whether any pattern selects `type`. `message.*` selects `message.received`, not `message`. */
export function eventMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some((pattern) => matchesType(pattern, type))
}

/**
 * A session webhook's endpoint key: stable across config edits that keep its URL, so its
 * circuit and ordering survive them.
 */
export function sessionEndpointKey(sessionId: string, url: string): string {
  return `${sessionId}#${createHash('sha256').update(url).digest('hex').slice(0, 16)}`
}

/** The seed's session webhooks sign with HMAC-SHA512 when given a key, and not at all otherwise. */
export function sessionWebhookTarget(webhook: SessionWebhookConfig): WebhookTarget {
  return {
    url: webhook.url,
    sealedSecret: webhook.hmac?.key ?? null,
    scheme: webhook.hmac ? 'hmac-sha512' : 'none',
    customHeaders: webhook.customHeaders,
    retries: webhook.retries,
  }
}

export function webhookTarget(webhook: WebhookRecord): WebhookTarget {
  return {
    url: webhook.url,
    sealedSecret: webhook.secret,
    scheme: webhook.signatureScheme,
    customHeaders: webhook.customHeaders,
    retries: webhook.retries,
  }
}

/** One endpoint an event is owed to. */
export interface Subscription {
  webhookId: string | null
  endpointKey: string
  /** the snapshot a session webhook's delivery carries; null for organization webhooks */
  target: WebhookTarget | null
  /** where and how to send it now: the snapshot, or the organization webhook as it stands */
  sendTo: WebhookTarget
  ordered: boolean
}

/**
 * Every endpoint `event` goes to: the organization's enabled webhooks whose event and
 * session filters select it, and the webhooks of the session it is about.
 */
export function subscriptionsFor(
  event: DomainEvent,
  organizationWebhooks: readonly WebhookRecord[],
  sessionWebhooks: readonly SessionWebhookConfig[],
): Subscription[] {
  const sessionId = event.session?.id ?? null
  const found: Subscription[] = []
  for (const webhook of organizationWebhooks) {
    if (!webhook.enabled || webhook.organizationId !== event.organizationId) continue
    if (!eventMatches(webhook.events, event.type)) continue
    if (webhook.sessionIds.length > 0 && (sessionId === null || !webhook.sessionIds.includes(sessionId))) {
      continue
    }
    found.push({
      webhookId: webhook.id,
      endpointKey: webhook.id,
      target: null,
      sendTo: webhookTarget(webhook),
      ordered: webhook.ordered,
    })
  }
  if (sessionId !== null) {
    const seen = new Set<string>()
    for (const webhook of sessionWebhooks) {
      const endpointKey = sessionEndpointKey(sessionId, webhook.url)
      if (seen.has(endpointKey) || !eventMatches(webhook.events, event.type)) continue
      seen.add(endpointKey)
      const target = sessionWebhookTarget(webhook)
      found.push({ webhookId: null, endpointKey, target, sendTo: target, ordered: false })
    }
  }
  return found
}
