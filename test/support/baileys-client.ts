import type { Boom } from '@hapi/boom'
import makeWASocket, {
  type AuthenticationCreds,
  type BaileysEventMap,
  Browsers,
  BufferJSON,
  downloadMediaMessage,
  initAuthCreds,
  makeCacheableSignalKeyStore,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore,
  type UserFacingSocketConfig,
  type WAMessage,
  type WASocket,
} from '@whiskeysockets/baileys'
import pino from 'pino'
import { withSandboxTrust } from '../../src/engine/sandbox-trust.ts'
import { sandboxMediaTrust } from '../../src/sandbox/media.ts'
import type { SandboxServer } from '../../src/sandbox/server.ts'

/** Credentials and Signal keys of one test client, kept across its sockets like a real store. */
export class MemoryAuth {
  creds: AuthenticationCreds = initAuthCreds()
  private readonly table = new Map<string, string>()

  readonly keys: SignalKeyStore = {
    get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
      const found: { [id: string]: SignalDataTypeMap[T] } = {}
      for (const id of ids) {
        const raw = this.table.get(`${type}:${id}`)
        if (raw === undefined) continue
        let value = JSON.parse(raw, BufferJSON.reviver)
        if (type === 'app-state-sync-key') value = proto.Message.AppStateSyncKeyData.fromObject(value)
        found[id] = value
      }
      return found
    },
    set: async (data: SignalDataSet) => {
      for (const [type, byId] of Object.entries(data)) {
        for (const [id, value] of Object.entries(byId ?? {})) {
          if (value === null || value === undefined) this.table.delete(`${type}:${id}`)
          else this.table.set(`${type}:${id}`, JSON.stringify(value, BufferJSON.replacer))
        }
      }
    },
  }

  /** Round-trips the creds through JSON, as a restart from a store would. */
  reload(): void {
    this.creds = JSON.parse(JSON.stringify(this.creds, BufferJSON.replacer), BufferJSON.reviver)
  }
}

export const closeCode = (update: Partial<BaileysEventMap['connection.update']>): number | undefined =>
  (update.lastDisconnect?.error as Boom | undefined)?.output?.statusCode

const logger = pino({ level: process.env.BAILEYS_LOG ?? 'silent' })

type Listener<K extends keyof BaileysEventMap> = (data: BaileysEventMap[K]) => void

/**
 * A plain Baileys client — no gateway code — pointed at a sandbox, with helpers to wait
 * for events. Each `connect()` opens a fresh socket on the same credentials.
 */
export class TestClient {
  readonly auth = new MemoryAuth()
  socket!: WASocket
  readonly sent = new Map<string, proto.IMessage>()
  private sandbox: SandboxServer
  private readonly config: Partial<UserFacingSocketConfig>
  /** made once: an undici Agent cannot be reused after close, and connect() runs many times */
  private trust?: ReturnType<typeof sandboxMediaTrust>

  constructor(sandbox: SandboxServer, config: Partial<UserFacingSocketConfig> = {}) {
    this.sandbox = sandbox
    this.config = config
  }

  /** Points later connects at another sandbox (e.g. the same world restarted on a new port). */
  moveTo(sandbox: SandboxServer): void {
    this.sandbox = sandbox
    this.trust = undefined
  }

  /** Opens a socket. Resolves once it exists; use the wait helpers for what follows. */
  connect(): WASocket {
    this.trust ??= sandboxMediaTrust(this.sandbox.media.caPem)
    const trust = this.trust
    this.socket = withSandboxTrust(this.sandbox.rootPublicKey, () =>
      makeWASocket({
        auth: { creds: this.auth.creds, keys: makeCacheableSignalKeyStore(this.auth.keys, logger) },
        waWebSocketUrl: this.sandbox.websocketUrl,
        logger,
        browser: Browsers.ubuntu('Chrome'),
        markOnlineOnConnect: false,
        defaultQueryTimeoutMs: 10_000,
        getMessage: async (key) => (key.id ? this.sent.get(key.id) : undefined),
        // uploads go through node:https, history and app-state blobs through fetch
        fetchAgent: trust.fetchAgent,
        options: trust.options,
        ...this.config,
      }),
    )
    this.socket.ev.on('creds.update', (update) => Object.assign(this.auth.creds, update))
    return this.socket
  }

  /** Resolves with the first event of `name` that passes `match`; rejects after `timeoutMs`. */
  waitFor<K extends keyof BaileysEventMap>(
    name: K,
    match: (data: BaileysEventMap[K]) => boolean = () => true,
    timeoutMs = 15_000,
  ): Promise<BaileysEventMap[K]> {
    const socket = this.socket
    return new Promise((resolve, reject) => {
      const listener: Listener<K> = (data) => {
        if (!match(data)) return
        clearTimeout(timer)
        socket.ev.off(name, listener)
        resolve(data)
      }
      const timer = setTimeout(() => {
        socket.ev.off(name, listener)
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${name}`))
      }, timeoutMs)
      socket.ev.on(name, listener)
    })
  }

  waitForOpen(timeoutMs?: number): Promise<unknown> {
    return this.waitFor('connection.update', (u) => u.connection === 'open', timeoutMs)
  }

  /** Resolves with the close code of the next close. */
  async waitForClose(timeoutMs?: number): Promise<number | undefined> {
    return closeCode(await this.waitFor('connection.update', (u) => u.connection === 'close', timeoutMs))
  }

  /** Connects and resolves with the first QR string. */
  async connectForQr(): Promise<string> {
    this.connect()
    const update = await this.waitFor('connection.update', (u) => Boolean(u.qr))
    return update.qr as string
  }

  /**
   * QR-links this client to `phoneNumber`: connect, let the phone scan, take the 515
   * restart and log in again with the new credentials, as every real integration does.
   */
  async linkByQr(phoneNumber: string): Promise<void> {
    const qr = await this.connectForQr()
    const closed = this.waitForClose()
    this.sandbox.scan(qr, phoneNumber)
    const code = await closed
    if (code !== 515) throw new Error(`expected restart-required (515) after the scan, got ${code}`)
    this.connect()
    await this.waitForOpen()
  }

  async sendAndRemember(
    jid: string,
    content: Parameters<WASocket['sendMessage']>[1],
    options?: Parameters<WASocket['sendMessage']>[2],
  ) {
    const message = await this.socket.sendMessage(jid, content, options)
    if (message?.key.id && message.message) this.sent.set(message.key.id, message.message)
    return message
  }

  /** Baileys ignores the socket config for media downloads, so the trust is passed here. */
  download(message: WAMessage): Promise<Buffer> {
    return downloadMediaMessage(
      message,
      'buffer',
      { options: this.trust?.options },
      {
        logger,
        reuploadRequest: this.socket.updateMediaMessage,
      },
    ) as Promise<Buffer>
  }

  async end(): Promise<void> {
    const socket = this.socket
    if (!socket) return
    socket.ev.removeAllListeners('connection.update')
    socket.end(undefined)
  }
}
