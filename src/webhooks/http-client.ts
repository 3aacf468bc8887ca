import type { LookupFunction } from 'node:net'
import { Agent, request } from 'undici'

export interface WebhookHttpRequest {
  url: string
  headers: Record<string, string>
  body: string
  /**
   * The attempt's timeout, for the response headers and for the part of the body that is
   * read (connecting has the client's `connectTimeoutMs`). Timed by the HTTP client's own
   * timers, which tick every half second, so a timeout fires up to a second late. An
   * AbortSignal.timeout per request (a timer, listeners, a weak reference) made each
   * delivery cost 15–25% more CPU (webhook backlog, 2026-12-05).
   */
  timeoutMs: number
}

export interface WebhookHttpResponse {
  status: number
  /** the start of the body, at most `RESPONSE_KEEP_BYTES` */
  body: string
}

/** The one thing the sender needs from HTTP; tests may hand in their own. */
export interface WebhookHttpClient {
  post(request: WebhookHttpRequest): Promise<WebhookHttpResponse>
  close(): Promise<void>
}

/** How much of a response is kept with the attempt. */
export const RESPONSE_KEEP_BYTES = 1024
/** Bodies up to this are drained so the connection goes back to the pool; longer ones end it. */
const RESPONSE_DRAIN_BYTES = 64 * 1024

export interface UndiciWebhookClientOptions {
  /** the SSRF guard's socket lookup */
  lookup?: LookupFunction
  /** open connections per receiver origin */
  connectionsPerOrigin?: number
  keepAliveTimeoutMs?: number
  /** how long opening a connection may take; the attempt's timeout fits */
  connectTimeoutMs?: number
}

/**
 * POSTs over a keep-alive pool (undici). Redirects are returned, not followed: a 3xx is a
 * failed attempt, so a receiver cannot bounce us to an address the guard would refuse.
 */
export class UndiciWebhookClient implements WebhookHttpClient {
  private readonly agent: Agent

  constructor(options: UndiciWebhookClientOptions = {}) {
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 16,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connect: {
        timeout: options.connectTimeoutMs ?? 10_000,
        ...(options.lookup ? { lookup: options.lookup } : {}),
      },
    })
  }

  /**
   * The headers get the whole timeout, and so may a body that goes silent;
   * a body that trickles is cut off at the deadline. (A request waiting for one of the
   * origin's connections is not timed: the requests ahead of it are.)
   */
  async post(input: WebhookHttpRequest): Promise<WebhookHttpResponse> {
    const response = await request(input.url, {
      method: 'POST',
      headers: input.headers,
      body: input.body,
      headersTimeout: input.timeoutMs,
      bodyTimeout: input.timeoutMs,
      dispatcher: this.agent,
    })
    const deadline = performance.now() + input.timeoutMs
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer
      if (size < RESPONSE_KEEP_BYTES) chunks.push(buffer)
      size += buffer.length
      // Leaving the loop destroys the body: a receiver streaming megabytes loses its keep-alive.
      if (size > RESPONSE_DRAIN_BYTES) break
      if (performance.now() > deadline) {
        response.body.destroy()
        throw new BodyTimeoutError()
      }
    }
    return {
      status: response.statusCode,
      body: Buffer.concat(chunks).subarray(0, RESPONSE_KEEP_BYTES).toString('utf8'),
    }
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

/** A response body still arriving at the attempt's deadline. */
export class BodyTimeoutError extends Error {
  override readonly name = 'TimeoutError'
  constructor() {
    super('the response body outlasted the timeout')
  }
}
