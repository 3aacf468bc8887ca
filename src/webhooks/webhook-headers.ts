import type { CustomHeader } from './webhook.types.ts'

export const WEBHOOK_USER_AGENT = 'wagate-webhooks/1'

/**
 * Header names a user may not set: ours (a receiver must be able to trust them) and the
 * ones HTTP itself owns. Anything `webhook-*` or `x-webhook-*` is kept for us, so a header
 * we add later can never be shadowed by a configured one.
 */
const RESERVED = new Set([
  'content-type',
  'user-agent',
  'content-length',
  'host',
  'connection',
  'transfer-encoding',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  // The HTTP client refuses to send it: every delivery would fail.
  'expect',
])

export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase()
  return RESERVED.has(lower) || lower.startsWith('webhook-') || lower.startsWith('x-webhook-')
}

export interface RequestHeaderInput {
  eventId: string
  /** unix seconds of this attempt */
  timestamp: number
  customHeaders: readonly CustomHeader[]
}

/**
 * Every header of one webhook request but its signature, which the HTTP client adds
 * (`withSignature`). Custom headers go first and ours after, so even a reserved name that
 * slipped past validation (session webhooks are validated elsewhere) cannot override what
 * we send — the signature's names are reserved too.
 */
export function requestHeaders(input: RequestHeaderInput): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const header of input.customHeaders) {
    if (!isReservedHeader(header.name)) headers[header.name.toLowerCase()] = header.value
  }
  headers['content-type'] = 'application/json'
  headers['user-agent'] = WEBHOOK_USER_AGENT
  // Sent with every scheme: the id lets any receiver deduplicate retries.
  headers['webhook-id'] = input.eventId
  headers['webhook-timestamp'] = String(input.timestamp)
  return headers
}
