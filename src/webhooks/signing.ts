import { createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'
import type { SignatureScheme } from './webhook.types.ts'

const STANDARD_PREFIX = 'whsec_'
/** Standard Webhooks asks for 24–64 random bytes; we generate 32. */
const MIN_STANDARD_KEY_BYTES = 24
const MAX_STANDARD_KEY_BYTES = 64

/** A new secret in the Standard Webhooks form, `whsec_<base64 of 32 random bytes>`. */
export function generateSecret(): string {
  return `${STANDARD_PREFIX}${randomBytes(32).toString('base64')}`
}

/**
 * Why `secret` cannot sign with `scheme`, or null when it can. Standard Webhooks
 * receivers base64-decode what follows `whsec_`, so that scheme needs the form; the
 * legacy schemes use the secret's UTF-8 bytes as the key, whatever they are.
 */
export function secretProblem(scheme: SignatureScheme, secret: string): string | null {
  if (scheme !== 'standard') return null
  if (!secret.startsWith(STANDARD_PREFIX)) return 'a standard-scheme secret has the form whsec_<base64>'
  const body = secret.slice(STANDARD_PREFIX.length)
  const bytes = Buffer.from(body, 'base64')
  // Round-tripping catches characters outside base64, which Buffer.from silently skips.
  if (bytes.toString('base64').replace(/=+$/, '') !== body.replace(/=+$/, '')) {
    return 'the part after whsec_ is not base64'
  }
  if (bytes.length < MIN_STANDARD_KEY_BYTES || bytes.length > MAX_STANDARD_KEY_BYTES) {
    return `the key after whsec_ must be ${MIN_STANDARD_KEY_BYTES}–${MAX_STANDARD_KEY_BYTES} bytes`
  }
  return null
}

/**
 * The HMAC key of a secret under a scheme (see `secretProblem`). A KeyObject, made once
 * and reused: HMAC with raw key bytes builds one on every call, which costs several times
 * the signing itself.
 */
export function signingKey(scheme: SignatureScheme, secret: string): KeyObject {
  return createSecretKey(
    scheme === 'standard' && secret.startsWith(STANDARD_PREFIX)
      ? Buffer.from(secret.slice(STANDARD_PREFIX.length), 'base64')
      : Buffer.from(secret, 'utf8'),
  )
}

export interface SignatureInput {
  /** the message id: the event id, so receivers can deduplicate */
  id: string
  /** unix seconds of this attempt */
  timestamp: number
  /** the exact body sent */
  body: string
}

/**
 * The signature headers of one request, lowercase names. Each signs the exact bytes of
 * the body as sent; only the standard scheme binds the id and timestamp too (which is what
 * lets its receivers reject replays). `secret`: the plaintext, or its `signingKey`.
 */
export function signatureHeaders(
  scheme: SignatureScheme,
  secret: string | KeyObject,
  input: SignatureInput,
): Record<string, string> {
  const key = typeof secret === 'string' ? signingKey(scheme, secret) : secret
  switch (scheme) {
    case 'standard': {
      // Fed in parts: the same bytes as `${id}.${timestamp}.${body}`, without copying the body.
      const signature = createHmac('sha256', key)
        .update(`${input.id}.${input.timestamp}.`)
        .update(input.body)
        .digest('base64')
      return { 'webhook-signature': `v1,${signature}` }
    }
    case 'hmac-sha512':
      return {
        'x-webhook-hmac': createHmac('sha512', key).update(input.body).digest('hex'),
        'x-webhook-hmac-algorithm': 'sha512',
      }
    case 'sha256':
      return { 'x-webhook-signature': `sha256=${createHmac('sha256', key).update(input.body).digest('hex')}` }
  }
}

/**
 * How a request is to be signed, by the HTTP client just before it goes: on its own thread
 * (ThreadedWebhookClient), off the event loop that records and settles deliveries.
 */
export interface RequestSigning {
  scheme: SignatureScheme
  /** the secret's `signingKey` under `scheme` */
  key: KeyObject
  /** the message id (the event id) and unix seconds of the attempt */
  id: string
  timestamp: number
}

/** `headers` with the signature of `body` under `signing` added. */
export function withSignature(
  headers: Record<string, string>,
  signing: RequestSigning,
  body: string,
): Record<string, string> {
  return {
    ...headers,
    ...signatureHeaders(signing.scheme, signing.key, { id: signing.id, timestamp: signing.timestamp, body }),
  }
}
