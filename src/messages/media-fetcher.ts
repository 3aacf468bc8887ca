import { Agent, request } from 'undici'
import { AppError, invalidRequest } from '../domain/errors.ts'
import { type SsrfGuard, TargetRefusedError } from '../webhooks/ssrf-guard.ts'

export interface FetchedMedia {
  bytes: Buffer
  /** from the response's Content-Type, when the caller did not say */
  mimetype?: string
}

export interface MediaFetcherOptions {
  /**
   * Keeps caller-supplied URLs off the gateway's own network (MEDIA_ALLOW_PRIVATE=1 builds
   * it with private targets allowed). Without one, every address is allowed (tests only).
   */
  guard?: Pick<SsrfGuard, 'check' | 'lookup'>
  /** the whole download, redirects included */
  timeoutMs?: number
  maxRedirects?: number
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])

/**
 * Media for outbound messages, from base64 or a URL, checked against the type's size
 * limit while it streams in — so a huge file is refused without being held in memory.
 *
 * A URL comes from the API caller, so it is fetched as an untrusted target: the SSRF
 * guard checks it before the request, the agent's socket lookup checks every address
 * actually connected to (a DNS answer that changes between the check and the connection
 * still cannot reach a private address), and redirects are followed by hand, each hop
 * checked again the same way.
 */
export class MediaFetcher {
  private readonly guard?: Pick<SsrfGuard, 'check' | 'lookup'>
  private readonly timeoutMs: number
  private readonly maxRedirects: number
  private readonly agent: Agent

  constructor(options: MediaFetcherOptions = {}) {
    this.guard = options.guard
    this.timeoutMs = options.timeoutMs ?? 20_000
    this.maxRedirects = options.maxRedirects ?? 5
    const lookup = options.guard?.lookup()
    this.agent = new Agent({ keepAliveTimeout: 10_000, connect: lookup ? { lookup } : {} })
  }

  async fetch(
    source: { url?: string; base64?: string },
    maxBytes: number,
    field: string,
  ): Promise<FetchedMedia> {
    const tooLarge = (size: number) =>
      invalidRequest(`${field}: the file is ${size} bytes; the limit is ${maxBytes}`, [
        { path: field, message: `larger than ${maxBytes} bytes` },
      ])
    if (source.base64 !== undefined) {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(source.base64.replace(/\s/g, ''))) {
        throw invalidRequest(`${field}.base64: not base64`, [
          { path: `${field}.base64`, message: 'not base64 (no data: prefix)' },
        ])
      }
      const bytes = Buffer.from(source.base64, 'base64')
      if (bytes.length === 0)
        throw invalidRequest(`${field}.base64: empty`, [{ path: `${field}.base64`, message: 'empty' }])
      if (bytes.length > maxBytes) throw tooLarge(bytes.length)
      return { bytes }
    }
    const urlField = `${field}.url`
    const unreachable = (why: string) =>
      invalidRequest(`${urlField}: the media URL is unreachable (${why})`, [{ path: urlField, message: why }])
    const signal = AbortSignal.timeout(this.timeoutMs)
    let url = new URL(source.url ?? '')
    for (let hop = 0; ; hop++) {
      await this.check(url, urlField, hop > 0)
      let response: Awaited<ReturnType<typeof request>>
      try {
        response = await request(url, {
          method: 'GET',
          headers: { 'user-agent': 'wagate-media/1', accept: '*/*' },
          dispatcher: this.agent,
          signal,
        })
      } catch (error) {
        throw this.failure(error, urlField, unreachable)
      }
      const { statusCode, headers, body } = response
      if (REDIRECTS.has(statusCode)) {
        await discard(body)
        const location = headers.location
        if (typeof location !== 'string' || location === '')
          throw unreachable(`HTTP ${statusCode} without a Location`)
        if (hop >= this.maxRedirects) throw unreachable(`more than ${this.maxRedirects} redirects`)
        try {
          url = new URL(location, url)
        } catch {
          throw unreachable(`HTTP ${statusCode} to an invalid Location`)
        }
        continue
      }
      if (statusCode < 200 || statusCode >= 300) {
        await discard(body)
        throw unreachable(`HTTP ${statusCode}`)
      }
      const declared = Number(headers['content-length'] ?? 0)
      if (declared > maxBytes) {
        await discard(body)
        throw tooLarge(declared)
      }
      const chunks: Buffer[] = []
      let size = 0
      try {
        for await (const chunk of body) {
          const buffer = chunk as Buffer
          size += buffer.length
          // Leaving the loop destroys the body: nothing more is read.
          if (size > maxBytes) throw tooLarge(size)
          chunks.push(buffer)
        }
      } catch (error) {
        throw this.failure(error, urlField, unreachable)
      }
      const contentType = headers['content-type']
      const type = (Array.isArray(contentType) ? contentType[0] : contentType)?.split(';')[0]?.trim()
      return { bytes: Buffer.concat(chunks), ...(type ? { mimetype: type } : {}) }
    }
  }

  /** Closes the pooled connections. */
  close(): Promise<void> {
    return this.agent.close()
  }

  /** Only http(s), and never an off-limits address, for the URL given and every redirect. */
  private async check(url: URL, urlField: string, redirected: boolean): Promise<void> {
    const refused = (why: string) => {
      const message = redirected ? `refused: redirected to ${url.origin}, and ${why}` : `refused: ${why}`
      return invalidRequest(`${urlField}: ${message}`, [{ path: urlField, message }])
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw refused(`only http and https media URLs are fetched, not ${url.protocol}`)
    }
    try {
      await this.guard?.check(url.href)
    } catch (error) {
      if (error instanceof TargetRefusedError) throw refused(error.message.replace(/^refused: /, ''))
      throw error
    }
  }

  /** A failed request or body read, as the caller may read it. */
  private failure(error: unknown, urlField: string, unreachable: (why: string) => AppError): unknown {
    if (error instanceof AppError) return error
    // The guarded socket lookup reports its refusal as the error, or as its cause.
    const refusal =
      error instanceof TargetRefusedError
        ? error
        : (error as { cause?: unknown }).cause instanceof TargetRefusedError
          ? ((error as { cause: TargetRefusedError }).cause as TargetRefusedError)
          : undefined
    if (refusal)
      return invalidRequest(`${urlField}: ${refusal.message}`, [{ path: urlField, message: refusal.message }])
    const { name, code, message } = error as { name?: string; code?: string; message?: string }
    if (name === 'TimeoutError' || name === 'AbortError')
      return unreachable(`timed out after ${this.timeoutMs} ms`)
    return unreachable(message?.slice(0, 200) || code || 'failed')
  }
}

/** Reads away a body not wanted (a redirect's, an error's) so its connection can be reused. */
async function discard(body: { dump(options?: { limit?: number }): Promise<void> }): Promise<void> {
  await body.dump({ limit: 64 * 1024 }).catch(() => undefined)
}
