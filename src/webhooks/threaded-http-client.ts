import type { KeyObject } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import {
  NotSentError,
  type WebhookHttpClient,
  type WebhookHttpRequest,
  type WebhookHttpResponse,
} from './http-client.ts'
import type { RequestSigning } from './signing.ts'
import { TargetRefusedError } from './ssrf-guard.ts'

/** How a request is to be signed, as it crosses: the key as its bytes (base64), made a KeyObject once over there. */
export type CrossingSigning = Omit<RequestSigning, 'key'> & { key: string }
/** A request as it crosses to the thread. */
export type CrossingRequest = Omit<WebhookHttpRequest, 'sign'> & { id: number; sign?: CrossingSigning }

/** What the thread is told: requests to make, or to close. */
export type ToHttpThread =
  | { op: 'post'; requests: CrossingRequest[] }
  | { op: 'withdraw'; endpoint?: string; hold?: number }
  | { op: 'resume'; endpoint: string; hold: number }
  | { op: 'close' }

/** A failure as it crosses the thread boundary: enough for the sender to describe it. */
export interface ThreadError {
  name: string
  message: string
  code?: string
  /** the SSRF guard refused the address the socket would have used */
  refused?: boolean
  /** given up before it was sent */
  notSent?: boolean
  /** how long it took, when it was sent */
  durationMs?: number
  /** the hold its failure put on its endpoint's other requests */
  hold?: number
}

/** What the thread answers: outcomes of requests, or that it has closed. */
export type FromHttpThread =
  | {
      op: 'done'
      outcomes: ({ id: number; response: WebhookHttpResponse } | { id: number; error: ThreadError })[]
    }
  | { op: 'closed' }

export interface ThreadedWebhookClientOptions {
  /** WEBHOOK_ALLOW_PRIVATE: the thread's socket lookup lets private addresses through */
  allowPrivateTargets: boolean
  connectTimeoutMs?: number
  connectionsPerEndpoint?: number
  connectionsPerOrigin?: number
  maxInFlight?: number
  slowAfterMs?: number
  maxOutstanding?: number
}

/**
 * The undici keep-alive client (`UndiciWebhookClient`, with the SSRF guard's socket lookup)
 * run on a thread of its own. The HTTP work of a delivery — signing it, writing the
 * request, parsing the response — was about a third of what the delivery worker spent on
 * the event loop; there it also competed with the API. Requests cross in batches: those started in one
 * synchronous stretch go over in one message, and the outcomes of one turn of the thread's
 * loop come back in one. The thread starts at the first request.
 */
export class ThreadedWebhookClient implements WebhookHttpClient {
  private readonly options: ThreadedWebhookClientOptions
  private worker: Worker | undefined
  private nextId = 0
  private readonly pending = new Map<
    number,
    { resolve: (response: WebhookHttpResponse) => void; reject: (error: Error) => void }
  >()
  private outgoing: CrossingRequest[] = []
  /** signing keys' bytes, exported once per key */
  private readonly keyBytes = new WeakMap<KeyObject, string>()
  private closed = false
  /** threads started so far: a hold names the thread it was put on, so a word for a dead one is not taken by the next */
  private threads = 0

  constructor(options: ThreadedWebhookClientOptions) {
    this.options = options
  }

  post(request: WebhookHttpRequest): Promise<WebhookHttpResponse> {
    if (this.closed) return Promise.reject(new NotSentError('the webhook HTTP client is closed'))
    const id = ++this.nextId
    const answer = new Promise<WebhookHttpResponse>((resolve, reject) =>
      this.pending.set(id, { resolve, reject }),
    )
    if (this.outgoing.length === 0) queueMicrotask(() => this.flush())
    const { sign } = request
    this.outgoing.push({ ...request, id, sign: sign && { ...sign, key: this.bytesOf(sign.key) } })
    return answer
  }

  private bytesOf(key: KeyObject): string {
    let bytes = this.keyBytes.get(key)
    if (bytes === undefined) {
      bytes = key.export().toString('base64')
      this.keyBytes.set(key, bytes)
    }
    return bytes
  }

  withdraw(endpoint?: string, hold?: number): void {
    // Posted in this same stretch, it must be there to be withdrawn.
    this.flush()
    const ofThisThread = hold === undefined ? undefined : this.threadHold(hold)
    this.worker?.postMessage({
      op: 'withdraw',
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(ofThisThread === undefined ? {} : { hold: ofThisThread }),
    } satisfies ToHttpThread)
  }

  resume(endpoint: string, hold: number): void {
    const ofThisThread = this.threadHold(hold)
    if (ofThisThread === undefined) return
    this.worker?.postMessage({ op: 'resume', endpoint, hold: ofThisThread } satisfies ToHttpThread)
  }

  /** The thread's own number of a hold it reported, if that thread is the one running now. */
  private threadHold(hold: number): number | undefined {
    return Math.floor(hold / HOLDS_PER_THREAD) === this.threads ? hold % HOLDS_PER_THREAD : undefined
  }

  async close(): Promise<void> {
    if (this.closed) return
    // What was posted in this same stretch goes first: the thread answers it, then closes.
    this.flush()
    this.closed = true
    const worker = this.worker
    if (!worker) return
    // Held by the process until it is gone, or the process could end while waiting.
    worker.ref()
    const closed = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    worker.postMessage({ op: 'close' } satisfies ToHttpThread)
    await closed
  }

  private flush(): void {
    const requests = this.outgoing
    this.outgoing = []
    if (requests.length === 0) return
    this.thread().postMessage({ op: 'post', requests } satisfies ToHttpThread)
  }

  private thread(): Worker {
    if (this.worker) return this.worker
    this.threads++
    const thread = this.threads
    const worker = new Worker(new URL('./http-client.worker.ts', import.meta.url), {
      workerData: this.options,
    })
    worker.on('message', (message: FromHttpThread) => {
      if (message.op !== 'done') return
      for (const outcome of message.outcomes) {
        const waiter = this.pending.get(outcome.id)
        if (!waiter) continue
        this.pending.delete(outcome.id)
        if ('response' in outcome) waiter.resolve(withThreadHold(outcome.response, thread))
        else waiter.reject(toError(withThreadHold(outcome.error, thread)))
      }
      if (this.pending.size === 0 && !this.closed) worker.unref()
    })
    worker.on('error', (error) => this.failAll(error.message))
    worker.on('exit', () => {
      this.worker = undefined
      this.failAll('the webhook HTTP thread stopped')
    })
    // After the listeners, which would otherwise hold the thread's port (and the process) again.
    if (this.pending.size === 0) worker.unref()
    this.worker = worker
    return worker
  }

  /** The thread is gone: what it was doing fails, and its deliveries are tried again. */
  private failAll(reason: string): void {
    // Sent or not, no one can tell: each comes back as not sent and is handed back (at least
    // once), rather than counted as a failed attempt against its endpoint.
    for (const waiter of this.pending.values()) waiter.reject(new NotSentError(reason))
    this.pending.clear()
  }
}

/** Holds are numbered per thread; across, the number also names the thread (see `threadHold`). */
const HOLDS_PER_THREAD = 2 ** 32

function withThreadHold<T extends { hold?: number }>(crossed: T, thread: number): T {
  return crossed.hold === undefined ? crossed : { ...crossed, hold: thread * HOLDS_PER_THREAD + crossed.hold }
}

function toError(crossed: ThreadError): Error {
  if (crossed.notSent) return new NotSentError(crossed.message)
  const timing = {
    ...(crossed.durationMs !== undefined ? { durationMs: crossed.durationMs } : {}),
    ...(crossed.hold !== undefined ? { hold: crossed.hold } : {}),
  }
  if (crossed.refused) return Object.assign(new TargetRefusedError(crossed.message), timing)
  return Object.assign(new Error(crossed.message), {
    name: crossed.name,
    ...(crossed.code ? { code: crossed.code } : {}),
    ...timing,
  })
}
