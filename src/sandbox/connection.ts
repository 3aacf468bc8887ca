import { type BinaryNode, binaryNodeToString, encodeBinaryNode, type KeyPair } from '@whiskeysockets/baileys'
import type { WebSocket } from 'ws'
import type { SimUser } from './network.ts'
import { NoiseServerSession } from './noise.ts'
import type { PendingCodeLink } from './pairing-code.ts'

export const SERVER_JID = 's.whatsapp.net'

/** What a client that is linking (not yet logged in) has told us about itself. */
export interface PendingLink {
  identityPublic: Buffer
  noisePublic: Buffer
  refs: string[]
  refsIssuedAt: number
  /** id of the pair-success iq we sent; its answer (pair-device-sign) ends the link */
  pairSuccessIqId?: string
  /** set once a phone has accepted the link */
  linkedTo?: { user: SimUser; deviceId: number }
}

export interface ConnectionFaults {
  /** the server stops answering and sending anything */
  silent: boolean
  /** every stanza to the client waits this long */
  delayMs: number
}

let connectionCounter = 0

/**
 * One client WebSocket: its Noise session, who it is once logged in or linking, and the
 * faults injected on it. Sending goes through here so faults apply to everything.
 */
export class ClientConnection {
  readonly id = ++connectionCounter
  readonly noise: NoiseServerSession
  readonly faults: ConnectionFaults = { silent: false, delayMs: 0 }
  /** set after a successful login */
  login?: { user: SimUser; deviceId: number }
  link?: PendingLink
  /** a link by pairing code in progress (see pairing-code.ts) */
  codeLink?: PendingCodeLink
  closed = false
  /** true while the stanzas that waited for this device are being replayed after login */
  replayingOffline = false
  private sendChain: Promise<void> = Promise.resolve()

  readonly socket: WebSocket
  private readonly trace?: (line: string) => void

  constructor(
    socket: WebSocket,
    serverStatic: KeyPair,
    certificateChain: Uint8Array,
    trace?: (line: string) => void,
  ) {
    this.socket = socket
    this.trace = trace
    this.noise = new NoiseServerSession(serverStatic, certificateChain)
  }

  get isLoggedIn(): boolean {
    return !this.closed && this.login !== undefined && this.noise.state === 'transport'
  }

  /** Sends a stanza, in order, after any injected delay; dropped while the link is silent. */
  send(node: BinaryNode): void {
    if (this.closed || this.faults.silent) return
    this.trace?.(`S→C #${this.id} ${binaryNodeToString(node).replace(/\s+/g, ' ').slice(0, 240)}`)
    const delay = this.faults.delayMs
    const frame = () => {
      if (this.closed || this.faults.silent) return
      this.socket.send(this.noise.encryptFrame(encodeBinaryNode(node)))
    }
    if (delay <= 0) {
      this.sendChain = this.sendChain.then(frame)
      return
    }
    this.sendChain = this.sendChain.then(() =>
      new Promise<void>((resolve) => setTimeout(resolve, delay)).then(frame),
    )
  }

  sendRaw(bytes: Buffer): void {
    if (!this.closed) this.socket.send(bytes)
  }

  iqResult(request: BinaryNode, content?: BinaryNode[]): void {
    this.send({ tag: 'iq', attrs: { from: SERVER_JID, type: 'result', id: request.attrs.id ?? '' }, content })
  }

  iqError(request: BinaryNode, code: number, text: string): void {
    this.send({
      tag: 'iq',
      attrs: { from: SERVER_JID, type: 'error', id: request.attrs.id ?? '' },
      content: [{ tag: 'error', attrs: { code: String(code), text } }],
    })
  }

  /** Closes the socket after pending stanzas are written. */
  close(): void {
    void this.sendChain.then(() => {
      if (!this.closed) this.socket.close()
    })
  }

  terminate(): void {
    this.closed = true
    this.socket.terminate()
  }
}
