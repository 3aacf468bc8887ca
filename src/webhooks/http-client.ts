import type { LookupFunction } from 'node:net'
import { Agent, type Dispatcher } from 'undici'

export interface WebhookHttpRequest {
  url: string
  headers: Record<string, string>
  body: string
  /**
   * The attempt's timeout: the whole request, from when a connection takes it to the end
   * of what is read of the body (connecting also has the client's `connectTimeoutMs`).
   * Checked on the HTTP client's own timers, so it may fire up to a second late. An
   * AbortSignal.timeout per request (a timer, listeners, a weak reference) made each
   * delivery cost 15–25% more CPU (webhook backlog, 2026-12-05).
   */
  timeoutMs: number
  /**
   * The latest moment it may be sent, on `wallClock()` (comparable between threads); past
   * that it is not sent at all (`NotSentError`). The delivery worker sets it so that the
   * wait and the attempt fit in the lease.
   */
  sendBy?: number
  /**
   * The endpoint it goes to. A request to it that fails (no 2xx) holds the endpoint's
   * other requests until `resume` or `withdraw`: the caller decides whether they go.
   * Requests without one (the API's test sends) go first, beside the `maxInFlight` cap.
   */
  endpoint?: string
}

export interface WebhookHttpResponse {
  status: number
  /** the start of the body, at most `RESPONSE_KEEP_BYTES` */
  body: string
  /** from when a connection took the request to the end of what was read */
  durationMs: number
  /** a failed request to an endpoint: the hold it put on the endpoint's others (see `resume`) */
  hold?: number
}

/** The one thing the sender needs from HTTP; tests may hand in their own. */
export interface WebhookHttpClient {
  post(request: WebhookHttpRequest): Promise<WebhookHttpResponse>
  /**
   * Requests still waiting for a connection — to `endpoint`, or all — are given up unsent
   * (`NotSentError`). With `hold`, the endpoint's hold is lifted too if that is still the
   * latest (as `resume` does); with no endpoint, every hold is.
   */
  withdraw(endpoint?: string, hold?: number): void
  /**
   * Requests to `endpoint`, held since one of its requests failed, may go again — if `hold`
   * (that failure's) is still the latest: a later failure the caller has not seen yet keeps
   * them held.
   */
  resume(endpoint: string, hold: number): void
  close(): Promise<void>
}

/** How much of a response is kept with the attempt. */
export const RESPONSE_KEEP_BYTES = 1024
/** Bodies up to this are drained so the connection goes back to the pool; longer ones end it. */
const RESPONSE_DRAIN_BYTES = 64 * 1024
/** How often requests past their deadline are looked for. */
const SWEEP_INTERVAL_MS = 250
/**
 * A hold no word came for is lifted after this: a failure whose outcome never reached the
 * caller must not stall its endpoint for good (the caller answers within milliseconds).
 */
const HOLD_LIMIT_MS = 30_000

const WAITED_TOO_LONG = 'it waited too long for a connection'

/** Epoch milliseconds, sub-millisecond, the same on every thread (`sendBy`). */
export const wallClock = () => performance.timeOrigin + performance.now()

/** A request in flight: when it must be over, and its handle once undici has started it. */
interface Attempt {
  deadline: number
  controller?: Dispatcher.DispatchController
}

/** A request waiting for a connection to its origin (or for the client's room). */
interface Waiting {
  input: WebhookHttpRequest
  target: { origin: string; path: string }
  resolve: (response: WebhookHttpResponse) => void
  reject: (error: Error) => void
}

/** Queues whose last send is remembered (`lastSent`): far more than have requests waiting at once. */
const LAST_SENT_KEPT = 10_000

/** Parsed webhook URLs kept: far more than there are endpoints in use. */
const TARGET_CACHE_SIZE = 1_000

export interface UndiciWebhookClientOptions {
  /** the SSRF guard's socket lookup */
  lookup?: LookupFunction
  /** open connections per receiver origin: requests sent to one origin at once */
  connectionsPerOrigin?: number
  /** requests sent at once, over every origin */
  maxInFlight?: number
  keepAliveTimeoutMs?: number
  /** how long opening a connection may take; the attempt's timeout fits */
  connectTimeoutMs?: number
}

/**
 * POSTs over a keep-alive pool (undici). Redirects are returned, not followed: a 3xx is a
 * failed attempt, so a receiver cannot bounce us to an address the guard would refuse.
 *
 * Requests wait here, in the order they were posted per endpoint, until their origin has a
 * free connection and fewer than `maxInFlight` are out: undici never queues one itself.
 * When a connection frees up, the next request is the head of the endpoint queue whose
 * receiver (origin) has the fewest requests out — on a tie, of the queue that sent least
 * recently: a slow receiver with a backlog gets its connections, never the ones other
 * receivers are waiting for, and endpoints sharing a receiver take turns. So a
 * request's timeout starts when it is sent — waiting behind a slow receiver's other
 * requests is not held against an attempt — and a caller may post well ahead of what is
 * sent (the delivery worker does: a connection that frees up takes the next request at
 * once, however busy the caller's thread is), bounding each wait with `sendBy`. Ahead of
 * the caller means ahead of its judgement too: once a request to an endpoint fails, the
 * endpoint's others wait until the caller has seen the failure and resumes or withdraws
 * them, so a receiver that went down gets no more than what was already under way.
 */
export class UndiciWebhookClient implements WebhookHttpClient {
  private readonly agent: Agent
  private readonly connectionsPerOrigin: number
  private readonly maxInFlight: number
  private readonly targets = new Map<string, { origin: string; path: string }>()
  /** requests sent and not yet settled, for the deadline sweep */
  private readonly attempts = new Set<Attempt>()
  /** waiting requests, a queue per endpoint (per origin for those posted without one), each oldest first */
  private readonly queues = new Map<string, Waiting[]>()
  /** requests sent so far, and when (on that count) each queue last sent, the most recent last */
  private sends = 0
  private readonly lastSent = new Map<string, number>()
  /** set while sendWaiting runs: a request settling inside it asks for another round instead */
  private sending = false
  private sendAgain = false
  /** requests sent and not yet settled, per origin */
  private readonly sentTo = new Map<string, number>()
  /** endpoints whose requests wait for `resume` (one of them failed): the latest failure's hold, and when */
  private readonly held = new Map<string, { hold: number; since: number }>()
  private holds = 0
  private sweeper: NodeJS.Timeout | undefined

  constructor(options: UndiciWebhookClientOptions = {}) {
    this.connectionsPerOrigin = options.connectionsPerOrigin ?? 16
    this.maxInFlight = options.maxInFlight ?? 32
    this.agent = new Agent({
      connections: this.connectionsPerOrigin,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connect: {
        timeout: options.connectTimeoutMs ?? 10_000,
        ...(options.lookup ? { lookup: options.lookup } : {}),
      },
    })
  }

  post(input: WebhookHttpRequest): Promise<WebhookHttpResponse> {
    let target: { origin: string; path: string }
    try {
      target = this.targetOf(input.url)
    } catch (error) {
      return Promise.reject(error)
    }
    return new Promise<WebhookHttpResponse>((resolve, reject) => {
      const key = input.endpoint ?? `\u0000${target.origin}`
      const queue = this.queues.get(key) ?? []
      this.queues.set(key, queue)
      queue.push({ input, target, resolve, reject })
      this.sweep()
      this.sendWaiting()
    })
  }

  withdraw(endpoint?: string, hold?: number): void {
    if (endpoint === undefined) this.held.clear()
    else if (hold !== undefined && this.held.get(endpoint)?.hold === hold) this.held.delete(endpoint)
    this.giveUp(
      (request) => endpoint === undefined || request.input.endpoint === endpoint,
      'withdrawn before it was sent',
    )
  }

  resume(endpoint: string, hold: number): void {
    if (this.held.get(endpoint)?.hold !== hold) return
    this.held.delete(endpoint)
    this.sendWaiting()
  }

  close(): Promise<void> {
    this.giveUp(() => true, 'the webhook HTTP client is closed')
    return this.agent.close()
  }

  /** Sends waiting requests, the oldest first, while there is room for them. */
  private sendWaiting(): void {
    if (this.sending) {
      this.sendAgain = true
      return
    }
    this.sending = true
    try {
      do {
        this.sendAgain = false
        for (let next = this.nextToSend(); next; next = this.nextToSend()) this.send(next)
      } while (this.sendAgain)
    } finally {
      this.sending = false
    }
  }

  /**
   * The next request whose origin has a free connection: one posted without an endpoint
   * first, whatever else is out; else, while fewer than `maxInFlight` are, the head of the
   * queue — of an endpoint not held — whose origin has the fewest requests out, the one
   * served least recently on a tie.
   */
  private nextToSend(): Waiting | undefined {
    const now = wallClock()
    const room = this.attempts.size < this.maxInFlight
    let best: string | undefined
    let bestOut = 0
    let bestSent = 0
    for (const [key, queue] of this.queues) {
      const endpoint = queue[0]?.input.endpoint
      if (endpoint !== undefined && (!room || this.held.has(endpoint))) continue
      this.giveUpExpired(queue, now)
      const head = queue[0]
      if (!head) {
        this.queues.delete(key)
        continue
      }
      const out = this.sentTo.get(head.target.origin) ?? 0
      if (out >= this.connectionsPerOrigin) continue
      if (head.input.endpoint === undefined) return this.take(key, queue)
      const sent = this.lastSent.get(key) ?? -1
      if (best === undefined || out < bestOut || (out === bestOut && sent < bestSent)) {
        best = key
        bestOut = out
        bestSent = sent
      }
    }
    const queue = best === undefined ? undefined : this.queues.get(best)
    return best === undefined || !queue ? undefined : this.take(best, queue)
  }

  /** The head of `queue`, noted as its latest send. */
  private take(key: string, queue: Waiting[]): Waiting | undefined {
    this.lastSent.delete(key)
    this.lastSent.set(key, this.sends++)
    if (this.lastSent.size > LAST_SENT_KEPT) this.lastSent.delete(this.lastSent.keys().next().value as string)
    const next = queue.shift()
    if (queue.length === 0) this.queues.delete(key)
    return next
  }

  /** Requests at the head of `queue` past their `sendBy` are given up (the sweep looks at every one). */
  private giveUpExpired(queue: Waiting[], now: number): void {
    while (queue[0] && isLate(queue[0], now)) {
      queue.shift()?.reject(new NotSentError(WAITED_TOO_LONG))
    }
  }

  /** Rejects, unsent, the waiting requests that `which` picks. */
  private giveUp(which: (request: Waiting) => boolean, reason: string): void {
    for (const [key, queue] of this.queues) {
      const given = queue.filter(which)
      if (given.length === 0) continue
      const kept = queue.filter((request) => !which(request))
      if (kept.length === 0) this.queues.delete(key)
      else this.queues.set(key, kept)
      for (const request of given) request.reject(new NotSentError(reason))
    }
  }

  /**
   * The attempt's timeout bounds all of it, from here on: the headers (interim 1xx answers
   * do not extend it) and the part of the body that is read. Undici's headers and body
   * timers cover what they can; a sweep every quarter second aborts whatever has outlived
   * its deadline all the same.
   *
   * Undici's handler callbacks rather than `request()`: that wraps every response in a
   * stream read through an async iterator, the largest share of a delivery's HTTP cost
   * (webhook backlog profile, 2026-12-05), for a body that is mostly empty.
   */
  private send({ input, target, resolve, reject }: Waiting): void {
    const started = performance.now()
    const attempt: Attempt = { deadline: started + input.timeoutMs }
    this.track(attempt, target.origin)
    const kept: Buffer[] = []
    let size = 0
    let status = 0
    let settled = false
    /**
     * Settles once, whichever way; the connection it leaves free takes the next request. A
     * failure (no 2xx answer, or none in full) holds its endpoint's other requests.
     */
    const settle = (failed: boolean, outcome: (durationMs: number, hold: number | undefined) => void) => {
      if (settled) return
      settled = true
      this.untrack(attempt, target.origin)
      let hold: number | undefined
      if (failed && input.endpoint !== undefined) {
        hold = ++this.holds
        this.held.set(input.endpoint, { hold, since: performance.now() })
      }
      try {
        outcome(Math.round(performance.now() - started), hold)
      } finally {
        this.sendWaiting()
      }
    }
    const respond = () =>
      settle(!(status >= 200 && status < 300), (durationMs, hold) =>
        resolve({
          status,
          body: Buffer.concat(kept).subarray(0, RESPONSE_KEEP_BYTES).toString('utf8'),
          durationMs,
          ...(hold === undefined ? {} : { hold }),
        }),
      )
    const fail = (error: Error) =>
      settle(true, (durationMs, hold) => reject(new AttemptFailedError(error, durationMs, hold)))
    try {
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
            respond()
          },
          onResponseError(_controller, error) {
            if (error instanceof ResponseDrained) respond()
            else fail(error)
          },
        },
      )
    } catch (error) {
      // Undici refuses some requests (a malformed header) by throwing rather than calling back.
      fail(error instanceof Error ? error : new Error(String(error)))
    }
  }

  private track(attempt: Attempt, origin: string): void {
    this.attempts.add(attempt)
    this.sentTo.set(origin, (this.sentTo.get(origin) ?? 0) + 1)
    this.sweep()
  }

  private untrack(attempt: Attempt, origin: string): void {
    this.attempts.delete(attempt)
    const sent = (this.sentTo.get(origin) ?? 1) - 1
    if (sent > 0) this.sentTo.set(origin, sent)
    else this.sentTo.delete(origin)
  }

  /**
   * While requests are out or waiting, every quarter second: those past their deadline are
   * aborted, and those that waited longer than they may are given up even while nothing finishes.
   */
  private sweep(): void {
    this.sweeper ??= setInterval(() => {
      const now = performance.now()
      for (const late of this.attempts) {
        if (now > late.deadline) late.controller?.abort(new AttemptTimeoutError())
      }
      const wall = wallClock()
      this.giveUp((request) => isLate(request, wall), WAITED_TOO_LONG)
      let lifted = false
      for (const [endpoint, { since }] of this.held) {
        if (now - since < HOLD_LIMIT_MS) continue
        this.held.delete(endpoint)
        lifted = true
      }
      if (lifted) this.sendWaiting()
      if (this.attempts.size === 0 && this.queues.size === 0 && this.held.size === 0) {
        clearInterval(this.sweeper)
        this.sweeper = undefined
      }
    }, SWEEP_INTERVAL_MS).unref()
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

const isLate = (request: Waiting, now: number) =>
  request.input.sendBy !== undefined && now > request.input.sendBy

/**
 * A sent request that failed: the failure as undici (or the deadline) gave it — name, code,
 * message and cause, which is what callers read — with how long it took and the hold it put
 * on its endpoint. A new object: undici may hand one error to several requests.
 */
export class AttemptFailedError extends Error {
  readonly code?: string
  readonly durationMs: number
  readonly hold?: number

  constructor(failure: Error, durationMs: number, hold: number | undefined) {
    // The guarded lookup's refusal may be the failure itself or its cause: it stays the cause.
    super(failure.message, { cause: failure.cause ?? failure })
    this.name = failure.name
    const { code } = failure as { code?: unknown }
    if (typeof code === 'string') this.code = code
    this.durationMs = durationMs
    if (hold !== undefined) this.hold = hold
  }
}

/** A request given up before it was sent: no attempt was made, and the receiver saw nothing. */
export class NotSentError extends Error {
  override readonly name = 'NotSentError'
}
