import { invalidRequest } from '../domain/errors.ts'

export interface FetchedMedia {
  bytes: Buffer
  /** from the response's Content-Type, when the caller did not say */
  mimetype?: string
}

/** Refuses a URL before it is fetched (the webhooks' SSRF guard plugs in here). */
export type UrlCheck = (url: URL) => Promise<void>

/**
 * Media for outbound messages, from base64 or a URL, checked against the type's size
 * limit while it streams in — so a huge file is refused without being held in memory.
 */
export class MediaFetcher {
  private readonly checkUrl: UrlCheck
  private readonly timeoutMs: number

  constructor(options: { checkUrl?: UrlCheck; timeoutMs?: number } = {}) {
    this.checkUrl = options.checkUrl ?? (async () => {})
    this.timeoutMs = options.timeoutMs ?? 20_000
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
    const url = new URL(source.url ?? '')
    const unreachable = (why: string) =>
      invalidRequest(`${field}.url: the media URL is unreachable (${why})`, [
        { path: `${field}.url`, message: why },
      ])
    await this.checkUrl(url)
    let response: Response
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error' })
    } catch (error) {
      throw unreachable(
        error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : 'failed',
      )
    }
    if (!response.ok || !response.body) throw unreachable(`HTTP ${response.status}`)
    const declared = Number(response.headers.get('content-length') ?? 0)
    if (declared > maxBytes) throw tooLarge(declared)
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of response.body) {
      size += chunk.length
      if (size > maxBytes) throw tooLarge(size)
      chunks.push(Buffer.from(chunk))
    }
    const type = response.headers.get('content-type')?.split(';')[0]?.trim()
    return { bytes: Buffer.concat(chunks), ...(type ? { mimetype: type } : {}) }
  }
}
