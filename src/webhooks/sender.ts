import type { KeyObject } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { SecretBox } from '../security/secret-box.ts'
import type { WebhookHttpClient } from './http-client.ts'
import { signingKey } from './signing.ts'
import { type SsrfGuard, TargetRefusedError } from './ssrf-guard.ts'
import type { SendResult, SignatureScheme, WebhookTarget } from './webhook.types.ts'
import { requestHeaders } from './webhook-headers.ts'

/** Signing keys kept ready, by scheme and sealed secret: far more than there are endpoints in use. */
const KEY_CACHE_SIZE = 1_000

export interface SendInput {
  target: WebhookTarget
  eventId: string
  body: string
}

/**
 * One signed POST: the guard checks the target's addresses again, the headers are built
 * and signed over the exact body, and the request runs under a timeout. Never throws; every
 * outcome, refusals included, becomes a SendResult the caller records as an attempt.
 */
export class WebhookSender {
  private readonly client: WebhookHttpClient
  private readonly guard: SsrfGuard
  private readonly secretBox: SecretBox
  private readonly timeoutMs: number
  private readonly now: () => number
  private readonly keys = new Map<string, KeyObject>()

  constructor(deps: {
    client: WebhookHttpClient
    guard: SsrfGuard
    secretBox: SecretBox
    timeoutMs?: number
    now?: () => number
  }) {
    this.client = deps.client
    this.guard = deps.guard
    this.secretBox = deps.secretBox
    this.timeoutMs = deps.timeoutMs ?? 10_000
    this.now = deps.now ?? Date.now
  }

  get requestTimeoutMs(): number {
    return this.timeoutMs
  }

  async send(input: SendInput): Promise<SendResult> {
    const started = performance.now()
    const elapsed = () => Math.round(performance.now() - started)
    try {
      await this.guard.check(input.target.url)
      const { target } = input
      const headers = requestHeaders({
        eventId: input.eventId,
        timestamp: Math.floor(this.now() / 1000),
        body: input.body,
        scheme: target.scheme,
        key:
          target.scheme === 'none' || target.sealedSecret === null
            ? null
            : this.keyOf(target.scheme, target.sealedSecret),
        customHeaders: target.customHeaders,
      })
      const response = await this.client.post({
        url: target.url,
        headers,
        body: input.body,
        timeoutMs: this.timeoutMs,
      })
      return { statusCode: response.status, durationMs: elapsed(), error: null, response: response.body }
    } catch (error) {
      return { statusCode: null, durationMs: elapsed(), error: this.describe(error), response: null }
    }
  }

  /**
   * The signing key of a sealed secret, decrypted once rather than at every attempt. Keyed
   * by the ciphertext, which changes whenever the secret does (sealing draws a fresh IV),
   * so an edited secret is never signed with its old key. The oldest entry goes first.
   */
  private keyOf(scheme: SignatureScheme, sealed: string): KeyObject {
    const id = `${scheme}:${sealed}`
    let key = this.keys.get(id)
    if (key === undefined) {
      key = signingKey(scheme, this.secretBox.decrypt(sealed))
      if (this.keys.size >= KEY_CACHE_SIZE) this.keys.delete(this.keys.keys().next().value as string)
      this.keys.set(id, key)
    }
    return key
  }

  /** A failure as the webhook's owner may read it: no stack, no internals beyond the network error. */
  private describe(error: unknown): string {
    if (error instanceof TargetRefusedError) return error.message
    const { name, code, message, cause } = error as {
      name?: string
      code?: string
      message?: string
      cause?: unknown
    }
    if (
      name === 'TimeoutError' ||
      code === 'UND_ERR_HEADERS_TIMEOUT' ||
      code === 'UND_ERR_BODY_TIMEOUT' ||
      code === 'UND_ERR_CONNECT_TIMEOUT'
    ) {
      return `timed out after ${this.timeoutMs} ms`
    }
    // The guarded socket lookup reports its refusal as the cause of a connect failure.
    if (cause instanceof TargetRefusedError) return cause.message
    if (code && message) return `${code}: ${message}`
    return message ? message.slice(0, 200) : 'request failed'
  }
}
