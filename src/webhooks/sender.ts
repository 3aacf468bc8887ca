import type { KeyObject } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { SecretBox } from '../security/secret-box.ts'
import { NotSentError, type WebhookHttpClient, wallClock } from './http-client.ts'
import { signingKey } from './signing.ts'
import { type SsrfGuard, TargetRefusedError } from './ssrf-guard.ts'
import type { NotSent, SendResult, SignatureScheme, WebhookTarget } from './webhook.types.ts'
import { requestHeaders } from './webhook-headers.ts'

/** Signing keys kept ready, by scheme and sealed secret: far more than there are endpoints in use. */
const KEY_CACHE_SIZE = 1_000

export interface SendInput {
  target: WebhookTarget
  eventId: string
  body: string
  /** the delivery's endpoint key: `withdraw` takes back what waits to be sent to it */
  endpoint?: string
  /** how long it may wait for a connection before it is given up unsent, counted from this call */
  maxWaitMs?: number
  /**
   * Asked just before the request is handed to the HTTP client, after the address check
   * and the signing: false gives it up unsent (the worker stopped, the circuit opened or
   * the webhook changed meanwhile, and a withdraw has gone by).
   */
  stillWanted?: () => boolean
}

/**
 * One signed POST: the guard checks the target's addresses again, the headers are built,
 * and the request runs under a timeout, signed over the exact body by the HTTP client. Never throws; every
 * outcome, refusals included, becomes a SendResult the caller records as an attempt — but
 * a request given up before it was sent (NotSent), which is no attempt.
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

  async send(input: SendInput): Promise<SendResult | NotSent> {
    const started = performance.now()
    const elapsed = () => Math.round(performance.now() - started)
    try {
      await this.guard.check(input.target.url)
      const { target } = input
      const timestamp = Math.floor(this.now() / 1000)
      const headers = requestHeaders({
        eventId: input.eventId,
        timestamp,
        customHeaders: target.customHeaders,
      })
      // Signed by the HTTP client, on its thread, over these exact bytes.
      const sign =
        target.scheme === 'none' || target.sealedSecret === null
          ? undefined
          : {
              scheme: target.scheme,
              key: this.keyOf(target.scheme, target.sealedSecret),
              id: input.eventId,
              timestamp,
            }
      if (input.stillWanted && !input.stillWanted()) return { notSent: 'no longer wanted' }
      const waitLeft = input.maxWaitMs === undefined ? undefined : input.maxWaitMs - elapsed()
      if (waitLeft !== undefined && waitLeft < 0) return { notSent: 'its lease ran short' }
      const response = await this.client.post({
        url: target.url,
        headers,
        ...(sign ? { sign } : {}),
        body: input.body,
        timeoutMs: this.timeoutMs,
        ...(waitLeft !== undefined ? { sendBy: wallClock() + waitLeft } : {}),
        ...(input.endpoint !== undefined ? { endpoint: input.endpoint } : {}),
      })
      return {
        statusCode: response.status,
        durationMs: response.durationMs,
        error: null,
        response: response.body,
        ...(response.hold === undefined ? {} : { hold: response.hold }),
      }
    } catch (error) {
      if (error instanceof NotSentError) return { notSent: error.message }
      // Timed from when it was sent, when it was: not the wait for a connection.
      const { durationMs: sentFor, hold } = (error ?? {}) as { durationMs?: unknown; hold?: unknown }
      return {
        statusCode: null,
        durationMs: typeof sentFor === 'number' ? sentFor : elapsed(),
        error: this.describe(error),
        response: null,
        ...(typeof hold === 'number' ? { hold } : {}),
      }
    }
  }

  /**
   * What waits to be sent — to `endpoint` (its circuit opened, its webhook changed), or all
   * (stopping) — is given up unsent; with `hold`, that failure's hold is lifted too.
   */
  withdraw(endpoint?: string, hold?: number): void {
    this.client.withdraw(endpoint, hold)
  }

  /** What waits to be sent to `endpoint`, held since the failure that put `hold` on it, may go. */
  resume(endpoint: string, hold: number): void {
    this.client.resume(endpoint, hold)
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
