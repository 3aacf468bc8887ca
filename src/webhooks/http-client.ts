import type { LookupFunction } from 'node:net'
import { Agent, type Dispatcher } from 'undici'

export interface WebhookHttpRequest {
  url: string
  headers: Record<string, string>
  body: string
  /**
   * The attempt's timeout: the whole request, from the call to the end of what is read of
   * the body (connecting also has the client's `connectTimeoutMs`). Checked on the HTTP
   * client's own timers, so it may fire up to a second late. An AbortSignal.timeout per
   * request (a timer, listeners, a weak reference) made each delivery cost 15–25% more CPU
   * (webhook backlog, 2026-12-05).
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
/** How often requests past their deadline are looked for. */
const SWEEP_INTERVAL_MS = 250

/** A request in flight: when it must be over, and its handle once undici has started it. */
interface Attempt {
  deadline: number
  controller?: Dispatcher.DispatchController
}

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
  /** requests not yet settled, for the deadline sweep */
  private readonly attempts = new Set<Attempt>()
  private sweeper: NodeJS.Timeout | undefined

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
   * The attempt's timeout bounds all of it, from this call on: waiting for one of the
   * origin's connections, the headers (interim 1xx answers do not extend it) and the part
   * of the body that is read. Undici's headers and body timers cover what they can; a sweep
   * every quarter second aborts whatever has outlived its deadline all the same.
   *
   * Undici's handler callbacks rather than `request()`: that wraps every response in a
   * stream read through an async iterator, the largest share of a delivery's HTTP cost
   * (webhook backlog profile, 2026-12-05), for a body that is mostly empty.
   */
  post(input: WebhookHttpRequest): Promise<WebhookHttpResponse> {
    let target: { origin: string; path: string }
    try {
      target = this.targetOf(input.url)
    } catch (error) {
      return Promise.reject(error)
    }
    const attempt: Attempt = { deadline: performance.now() + input.timeoutMs }
    this.track(attempt)
    return new Promise<WebhookHttpResponse>((resolve, reject) => {
      const kept: Buffer[] = []
      let size = 0
      let status = 0
      const response = () => ({
        status,
        body: Buffer.concat(kept).subarray(0, RESPONSE_KEEP_BYTES).toString('utf8'),
      })
      this.agent.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: input.headers,
          body: input.body,
          headersTimeout: input.timeoutMs,
          bodyTimeout: input.timeoutMs,
        },
        {
          onRequestStart(controller) {
            attempt.controller = controller
            // It waited for a connection past its deadline.
            if (performance.now() > attempt.deadline) controller.abort(new AttemptTimeoutError())
          },
          onResponseStart(_controller, statusCode) {
            // An interim answer (102, 103): the real one is still to come, within the deadline.
            if (statusCode >= 200) status = statusCode
          },
          onResponseData(controller, chunk) {
            if (size < RESPONSE_KEEP_BYTES) kept.push(chunk)
            size += chunk.length
            // Aborting ends the connection: a receiver streaming megabytes loses its keep-alive.
            if (size > RESPONSE_DRAIN_BYTES) controller.abort(new ResponseDrained())
            else if (performance.now() > attempt.deadline) controller.abort(new AttemptTimeoutError())
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
    }).finally(() => this.untrack(attempt))
  }

  private track(attempt: Attempt): void {
    this.attempts.add(attempt)
    this.sweeper ??= setInterval(() => {
      const now = performance.now()
      for (const late of this.attempts) {
        if (now > late.deadline) late.controller?.abort(new AttemptTimeoutError())
      }
    }, SWEEP_INTERVAL_MS).unref()
  }

  private untrack(attempt: Attempt): void {
    this.attempts.delete(attempt)
    if (this.attempts.size === 0 && this.sweeper) {
      clearInterval(this.sweeper)
      this.sweeper = undefined
    }
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

/** A request still unanswered, or its body still arriving, at the attempt's deadline. */
export class AttemptTimeoutError extends Error {
  override readonly name = 'TimeoutError'
  constructor() {
    super('the attempt outlasted its timeout')
  }
}
