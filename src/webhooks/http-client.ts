import type { LookupFunction } from 'node:net'
import { Agent } from 'undici'

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
/** Parsed webhook URLs kept: far more than there are endpoints in use. */
const TARGET_CACHE_SIZE = 1_000

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
  private readonly targets = new Map<string, { origin: string; path: string }>()

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
   * The headers get the whole timeout, and so may a body that goes silent; a body that
   * trickles is cut off at the deadline. (A request waiting for one of the origin's
   * connections is not timed: the requests ahead of it are.)
   *
   * Undici's handler callbacks rather than `request()`: that wraps every response in a
   * stream read through an async iterator, the largest share of a delivery's HTTP cost
   * (webhook backlog profile, 2026-12-05), for a body that is mostly empty.
   */
  post(input: WebhookHttpRequest): Promise<WebhookHttpResponse> {
    const { origin, path } = this.targetOf(input.url)
    return new Promise((resolve, reject) => {
      const kept: Buffer[] = []
      let size = 0
      let status = 0
      let deadline = Number.POSITIVE_INFINITY
      const response = () => ({
        status,
        body: Buffer.concat(kept).subarray(0, RESPONSE_KEEP_BYTES).toString('utf8'),
      })
      this.agent.dispatch(
        {
          origin,
          path,
          method: 'POST',
          headers: input.headers,
          body: input.body,
          headersTimeout: input.timeoutMs,
          bodyTimeout: input.timeoutMs,
        },
        {
          // Its presence marks this a handler of undici's current (controller) interface.
          onRequestStart() {},
          onResponseStart(_controller, statusCode) {
            status = statusCode
            deadline = performance.now() + input.timeoutMs
          },
          onResponseData(controller, chunk) {
            if (size < RESPONSE_KEEP_BYTES) kept.push(chunk)
            size += chunk.length
            // Aborting ends the connection: a receiver streaming megabytes loses its keep-alive.
            if (size > RESPONSE_DRAIN_BYTES) controller.abort(new ResponseDrained())
            else if (performance.now() > deadline) controller.abort(new BodyTimeoutError())
          },
          onResponseEnd() {
            resolve(response())
          },
          onResponseError(_controller, error) {
            if (error instanceof ResponseDrained) resolve(response())
            else reject(error)
          },
        },
      )
    })
  }

  /** A webhook URL's origin and path, parsed once: the same few URLs are posted to over and over. */
  private targetOf(url: string): { origin: string; path: string } {
    let target = this.targets.get(url)
    if (target === undefined) {
      const parsed = new URL(url)
      target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` }
      if (this.targets.size >= TARGET_CACHE_SIZE)
        this.targets.delete(this.targets.keys().next().value as string)
      this.targets.set(url, target)
    }
    return target
  }

  close(): Promise<void> {
    return this.agent.close()
  }
}

/** Enough of a response was read: the rest is not waited for. */
class ResponseDrained extends Error {}

/** A response body still arriving at the attempt's deadline. */
export class BodyTimeoutError extends Error {
  override readonly name = 'TimeoutError'
  constructor() {
    super('the response body outlasted the timeout')
  }
}
