import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** the raw bytes received, as text */
  body: string
}

export interface Reply {
  status: number
  body?: string
  headers?: Record<string, string>
  /** answer only after this long */
  delayMs?: number
  /** send the headers at once, then the body a byte at a time, one every this many ms */
  trickleMs?: number
}

/**
 * A real HTTP server on loopback that records every request it gets and answers as told.
 * It can go down and come back on the same port, as a receiver being redeployed would.
 */
export class Receiver {
  readonly requests: ReceivedRequest[] = []
  /** how to answer; 200 by default */
  respond: (request: ReceivedRequest) => Reply | number = () => 200
  /** requests being answered right now, and the most there ever were */
  active = 0
  maxActive = 0
  private server: Server | undefined
  private port = 0

  static async start(): Promise<Receiver> {
    const receiver = new Receiver()
    await receiver.listen()
    return receiver
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${this.port}${path}`
  }

  /** Bodies parsed as JSON, in arrival order. */
  events(): { id: string; type: string; session: { id: string } | null; data: unknown }[] {
    return this.requests.map((request) => JSON.parse(request.body))
  }

  async listen(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const received: ReceivedRequest = {
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }
        this.requests.push(received)
        this.active += 1
        this.maxActive = Math.max(this.maxActive, this.active)
        const answer = this.respond(received)
        const reply = typeof answer === 'number' ? { status: answer } : answer
        setTimeout(() => {
          this.active -= 1
          response.writeHead(reply.status, reply.headers ?? {})
          if (!reply.trickleMs) {
            response.end(reply.body ?? '')
            return
          }
          const bytes = Buffer.from(reply.body ?? '')
          let sent = 0
          const drip = setInterval(() => {
            if (sent >= bytes.length || response.destroyed) {
              clearInterval(drip)
              response.end()
              return
            }
            response.write(bytes.subarray(sent, ++sent))
          }, reply.trickleMs)
        }, reply.delayMs ?? 0)
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.port = (server.address() as AddressInfo).port
    this.server = server
  }

  /** Goes down: refuses connections (and drops kept-alive ones) until `listen` again. */
  async stop(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
