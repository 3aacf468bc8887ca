import { createHash, randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { BinaryNode } from '@whiskeysockets/baileys'
import { generate } from 'selfsigned'
import { IqFailure, type IqRouter } from './iq-router.ts'

export interface MediaServerOptions {
  /** loopback by default: the certificate only names 127.0.0.1 and localhost */
  host?: string
  /** 0 picks a free port */
  port?: number
  /** uploads above this are refused with 413; also advertised in media_conn */
  maxUploadBytes?: number
}

/** Where a stored blob can be fetched: `url` is absolute, `directPath` is what messages carry. */
export interface StoredMedia {
  url: string
  directPath: string
}

/** Seconds a client may reuse a media_conn answer before asking again. */
const MEDIA_CONN_TTL_S = 300
const DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024

/**
 * WhatsApp files each kind under its own CDN prefix; Baileys never parses it, but keeping
 * the real shapes makes a direct path tell at a glance what it holds.
 */
const PATH_PREFIX: Record<string, string> = {
  image: '/v/t62.7118-24',
  video: '/v/t62.7161-24',
  audio: '/v/t62.7114-24',
  document: '/v/t62.7119-24',
  sticker: '/v/t62.15575-24',
}
const GENERIC_PREFIX = '/v/t62.7119-24'

/**
 * The sandbox's media CDN: an HTTPS server on loopback with a certificate made at start,
 * which Baileys uploads encrypted media to (`POST /mms/{type}/{token}?auth=…&token=…`) and
 * downloads it from (`GET {directPath}`). Blobs live in memory and are never decrypted
 * here; the media keys travel only inside the end-to-end encrypted messages.
 */
export class MediaServer {
  /** the media_conn `auth` a client must echo on uploads; fresh per run */
  readonly auth = randomBytes(18).toString('base64url')
  readonly maxUploadBytes: number
  private readonly blobs = new Map<string, Buffer>()
  private readonly options: MediaServerOptions
  private server?: Server
  private address?: AddressInfo
  private certificatePem?: string

  constructor(options: MediaServerOptions = {}) {
    this.options = options
    this.maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES
  }

  /** The self-signed certificate, which a client must trust (per socket) to reach the server. */
  get caPem(): string {
    if (!this.certificatePem) throw new Error('the media server is not started')
    return this.certificatePem
  }

  /** `127.0.0.1:PORT`, as media_conn advertises it and upload URLs use it. */
  get hostname(): string {
    if (!this.address) throw new Error('the media server is not started')
    return `${this.address.address}:${this.address.port}`
  }

  async start(): Promise<this> {
    const { host = '127.0.0.1', port = 0 } = this.options
    const notBeforeDate = new Date(Date.now() - 60_000) // tolerate a little clock skew
    const pems = await generate([{ name: 'commonName', value: 'wagate sandbox media' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 7, ip: '127.0.0.1' },
            { type: 2, value: 'localhost' },
          ],
        },
      ],
    })
    this.certificatePem = pems.cert
    const server = createServer({ key: pems.private, cert: pems.cert }, (request, response) => {
      this.onRequest(request, response).catch(() => {
        if (!response.headersSent) response.writeHead(500)
        response.end()
      })
    })
    // Loopback peers answer fast; a stalled request is a bug to surface, not to wait out.
    server.requestTimeout = 30_000
    server.headersTimeout = 10_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    this.server = server
    this.address = server.address() as AddressInfo
    return this
  }

  async close(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    this.blobs.clear()
  }

  /** Keeps an already encrypted blob (as a simulated person's phone would upload it). */
  store(mediaType: string, encrypted: Uint8Array): StoredMedia {
    const path = `${PATH_PREFIX[mediaType] ?? GENERIC_PREFIX}/${randomBytes(16).toString('hex')}.enc`
    this.blobs.set(path, Buffer.from(encrypted))
    // The query mimics the CDN's signed parameters; lookups ignore it.
    const directPath = `${path}?ccb=11-4&oh=01_${randomBytes(12).toString('base64url')}&oe=${expiryHex()}&_nc_sid=5e03e0`
    return { url: `https://${this.hostname}${directPath}`, directPath }
  }

  /** The encrypted bytes behind a direct path or URL, if anything was stored there. */
  blob(directPathOrUrl: string): Buffer | undefined {
    const path = new URL(directPathOrUrl, 'https://sandbox.invalid').pathname
    return this.blobs.get(path)
  }

  /** The `<media_conn>` answer: one host (this server) and the upload auth. */
  mediaConnNode(): BinaryNode {
    return {
      tag: 'media_conn',
      attrs: {
        auth: this.auth,
        ttl: String(MEDIA_CONN_TTL_S),
        // auth_ttl and max_buckets are unread by Baileys; sent for parity with WhatsApp
        auth_ttl: '21600',
        max_buckets: '12',
      },
      content: [
        {
          tag: 'host',
          attrs: { hostname: this.hostname, maxContentLengthBytes: String(this.maxUploadBytes) },
        },
      ],
    }
  }

  private async onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', `https://${this.hostname}`)
    if (request.method === 'POST') return this.onUpload(request, response, url)
    if (request.method === 'GET' || request.method === 'HEAD') return this.onDownload(request, response, url)
    response.writeHead(405, { allow: 'GET, HEAD, POST' }).end()
  }

  private async onUpload(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    // Baileys posts to /mms/{type}/{token}; the token doubles as the body's hash.
    const [, root, mediaType, token] = url.pathname.split('/')
    if (root !== 'mms' || !mediaType || !token) return json(response, 404, { error: 'unknown upload path' })
    if (url.searchParams.get('auth') !== this.auth) return json(response, 401, { error: 'bad auth' })
    const declared = Number(request.headers['content-length'] ?? 0)
    if (declared > this.maxUploadBytes) return json(response, 413, { error: 'too large' })
    const body = await readBody(request, this.maxUploadBytes)
    if (!body) return json(response, 413, { error: 'too large' })
    // A token that does not match the bytes means a corrupted or truncated upload.
    const hash = createHash('sha256').update(body).digest('base64url')
    if (token !== hash || url.searchParams.get('token') !== hash) {
      return json(response, 400, { error: 'token does not match the uploaded bytes' })
    }
    const stored = this.store(mediaType, body)
    json(response, 200, { url: stored.url, direct_path: stored.directPath })
  }

  private onDownload(request: IncomingMessage, response: ServerResponse, url: URL): void {
    const blob = this.blobs.get(url.pathname)
    if (!blob) {
      response.writeHead(404).end()
      return
    }
    const range = parseRange(request.headers.range, blob.length)
    if (range === 'unsatisfiable') {
      response.writeHead(416, { 'content-range': `bytes */${blob.length}` }).end()
      return
    }
    const slice = range ? blob.subarray(range.start, range.end + 1) : blob
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-length': slice.length,
      'accept-ranges': 'bytes',
    }
    if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${blob.length}`
    response.writeHead(range ? 206 : 200, headers)
    response.end(request.method === 'HEAD' ? undefined : slice)
  }
}

/**
 * Answers the client's `<iq xmlns="w:m" type="set"><media_conn/></iq>`, which Baileys
 * sends before its first upload to learn the upload hosts and auth.
 */
export function registerMediaIqs(router: IqRouter, media: MediaServer): void {
  router.register('w:m', 'set', 'media_conn', ({ user }) => {
    if (!user) throw new IqFailure(401, 'not-authorized')
    return [media.mediaConnNode()]
  })
}

function json(response: ServerResponse, status: number, body: object): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

/** Reads the whole body, or resolves undefined (and stops reading) once it passes `limit`. */
async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) return undefined
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

/** A single `bytes=a-b` range, which is all Baileys asks for (when given startByte/endByte). */
function parseRange(
  header: string | undefined,
  length: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = header?.match(/^bytes=(\d*)-(\d*)$/)
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  const [, from = '', to = ''] = match
  const start = from === '' ? Math.max(0, length - Number(to)) : Number(from)
  const end = from === '' || to === '' ? length - 1 : Math.min(Number(to), length - 1)
  return start > end || start >= length ? 'unsatisfiable' : { start, end }
}

/** The CDN's `oe` parameter: the link's expiry as hex seconds, a week ahead. */
const expiryHex = (): string =>
  Math.floor(Date.now() / 1000 + 7 * 24 * 3600)
    .toString(16)
    .toUpperCase()
