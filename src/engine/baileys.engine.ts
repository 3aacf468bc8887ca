import { EventEmitter } from 'node:events'
import type { Agent } from 'node:https'
import type { Boom } from '@hapi/boom'
import makeWASocket, {
  type AnyMessageContent,
  Browsers,
  type ConnectionState,
  DisconnectReason,
  downloadMediaMessage,
  makeCacheableSignalKeyStore,
  type proto,
  type WAMessage,
  type WAMessageKey,
  type WASocket,
} from '@whiskeysockets/baileys'
import { HttpsProxyAgent } from 'https-proxy-agent'
import type { Transaction } from 'kysely'
import type { Logger } from 'pino'
import { SocksProxyAgent } from 'socks-proxy-agent'
import type { Dispatcher } from 'undici'
import { sandboxMediaTrust } from '../sandbox/media.ts'
import type { SecretBox } from '../security/secret-box.ts'
import type { Tables } from '../store/schema.ts'
import {
  type AuthStateStore,
  isLinked,
  type KeyWriteSettler,
  loadAuthState,
  readCreds,
  StagedKeyStore,
  type StoredAuthState,
} from './auth-state.ts'
import { forwardMessagingEvents } from './baileys-events.ts'
import { baileysGroups } from './baileys-groups.ts'
import type {
  CloseInfo,
  ConnectOptions,
  DeviceInfo,
  EngineConnection,
  EngineEventMap,
  EngineGroups,
  ProxySettings,
  WhatsAppEngine,
} from './engine.ts'
import { silenceLibsignal } from './libsignal-silencer.ts'
import { withSandboxTrust } from './sandbox-trust.ts'

export interface BaileysEngineDependencies {
  authStore: AuthStateStore
  secretBox: SecretBox
  /** Baileys' own logs go through a child of this, at `baileysLogLevel` */
  logger: Logger
  baileysLogLevel: string
  /** the stored body of a message this session sent (for retries and poll votes) */
  getMessage?: (sessionId: string, key: WAMessageKey) => Promise<proto.IMessage | undefined>
}

const FIRST_QR_MS = 60_000
const NEXT_QR_MS = 20_000
const DEFAULT_KEEP_ALIVE_MS = 30_000

/** An HTTP(S) CONNECT or SOCKS agent for the WebSocket and media traffic of one session. */
export function proxyAgent(proxy: ProxySettings): Agent {
  const hasScheme = /^[a-z0-9]+:\/\//i.test(proxy.server)
  const url = new URL(hasScheme ? proxy.server : `http://${proxy.server}`)
  if (proxy.username) url.username = encodeURIComponent(proxy.username)
  if (proxy.password) url.password = encodeURIComponent(proxy.password)
  // Both extend http.Agent, which is what Baileys hands to ws and to https.request.
  const agent = url.protocol.startsWith('socks') ? new SocksProxyAgent(url) : new HttpsProxyAgent(url)
  return agent as unknown as Agent
}

/** WhatsApp through `@whiskeysockets/baileys`, for real numbers and for the sandbox alike. */
export class BaileysEngine implements WhatsAppEngine {
  private readonly deps: BaileysEngineDependencies
  /** the auth state of each session's latest connection, sealed when the session is wiped */
  private readonly authStates = new Map<string, StoredAuthState>()
  /** each session's keys, shared by its successive connections (see StagedKeyStore) */
  private readonly keyStores = new Map<string, StagedKeyStore>()

  constructor(deps: BaileysEngineDependencies) {
    silenceLibsignal((message) => deps.logger.trace({ libsignal: message }, 'libsignal output suppressed'))
    this.deps = deps
  }

  async connect(options: ConnectOptions): Promise<EngineConnection> {
    const { authStore, secretBox } = this.deps
    const auth = await loadAuthState(options.sessionId, authStore, secretBox, this.keysOf(options.sessionId))
    this.authStates.set(options.sessionId, auth)
    return new BaileysConnection(options, auth, this.keysOf(options.sessionId), this.deps)
  }

  async wipe(sessionId: string): Promise<void> {
    // A fresh store for whatever comes next (a new link); the sealed one drops the old socket's writes.
    const keys = this.keyStores.get(sessionId)
    this.keyStores.delete(sessionId)
    await (this.authStates.get(sessionId)?.seal() ?? keys?.seal())
    this.authStates.delete(sessionId)
    await this.deps.authStore.clear(sessionId)
  }

  async close(): Promise<void> {
    await Promise.all([...this.keyStores.values()].map((keys) => keys.seal()))
  }

  async hasCredentials(sessionId: string): Promise<boolean> {
    const creds = await readCreds(sessionId, this.deps.authStore, this.deps.secretBox)
    return creds !== undefined && isLinked(creds)
  }

  private keysOf(sessionId: string): StagedKeyStore {
    let keys = this.keyStores.get(sessionId)
    if (!keys) {
      keys = new StagedKeyStore({
        sessionId,
        store: this.deps.authStore,
        box: this.deps.secretBox,
        onWriteError: (err) =>
          this.deps.logger.error({ err, sessionId }, 'storing Signal keys failed; they are tried again'),
      })
      this.keyStores.set(sessionId, keys)
    }
    return keys
  }
}

class BaileysConnection implements EngineConnection {
  readonly events = new EventEmitter<EngineEventMap>()
  private readonly socket: WASocket
  private readonly logger: Logger
  private qrCount = 0
  private closed = false
  private lastFrameAt = Date.now()
  private readonly timers: NodeJS.Timeout[] = []
  private saving: Promise<void> = Promise.resolve()
  private readonly keys: StagedKeyStore
  /** the sandbox's TLS trust for media downloads (Baileys ignores the socket config there) */
  private readonly mediaDispatcher?: Dispatcher
  readonly groups: EngineGroups

  constructor(
    options: ConnectOptions,
    auth: StoredAuthState,
    keys: StagedKeyStore,
    deps: BaileysEngineDependencies,
  ) {
    this.keys = keys
    this.logger = deps.logger.child({ sessionId: options.sessionId })
    // Never chattier than the gateway itself: a silent gateway has silent Baileys logs.
    const parentValue = deps.logger.levels.values[deps.logger.level] ?? Number.POSITIVE_INFINITY
    const baileysValue = deps.logger.levels.values[deps.baileysLogLevel] ?? Number.POSITIVE_INFINITY
    const level =
      deps.logger.level === 'silent' || parentValue > baileysValue ? deps.logger.level : deps.baileysLogLevel
    const baileysLogger = this.logger.child({ component: 'baileys' }, { level })
    const keepAliveIntervalMs = options.keepAliveIntervalMs ?? DEFAULT_KEEP_ALIVE_MS
    const connectTimeoutMs = options.connectTimeoutMs ?? 20_000
    const agent = options.proxy ? proxyAgent(options.proxy) : undefined
    const sandbox = options.sandbox
    const trust = sandbox ? sandboxMediaTrust(sandbox.mediaCaPem) : undefined
    this.mediaDispatcher = trust?.options.dispatcher
    const create = () =>
      makeWASocket({
        auth: { creds: auth.state.creds, keys: makeCacheableSignalKeyStore(keys.keys, baileysLogger) },
        logger: baileysLogger,
        browser: Browsers.ubuntu(options.client?.browserName ?? 'Chrome'),
        ...(options.client?.deviceName
          ? { browser: [options.client.deviceName, options.client.browserName ?? 'Chrome', '22.04.4'] }
          : {}),
        // true would mute the phone's own notifications while the gateway is connected
        markOnlineOnConnect: false,
        syncFullHistory: options.fullHistory ?? false,
        keepAliveIntervalMs,
        connectTimeoutMs,
        defaultQueryTimeoutMs: 30_000,
        ...(sandbox ? { waWebSocketUrl: sandbox.websocketUrl } : {}),
        ...(agent ? { agent, fetchAgent: agent } : {}),
        ...(trust ? { fetchAgent: trust.fetchAgent, options: trust.options } : {}),
        getMessage: async (key) => deps.getMessage?.(options.sessionId, key),
      })
    this.socket = sandbox ? withSandboxTrust(sandbox.noiseRootPublicKey, create) : create()

    this.socket.ev.on('creds.update', () => {
      // Baileys mutates creds in place: the whole object is saved, one save at a time.
      this.saving = this.saving
        .then(() => auth.saveCreds())
        .then(() => {
          this.events.emit('credentials-saved')
        })
        .catch((err) => this.logger.error({ err }, 'saving credentials failed'))
    })
    this.socket.ev.on('connection.update', (update) =>
      this.onConnectionUpdate(update, auth.state.creds.platform),
    )
    forwardMessagingEvents(this.socket, this.events)
    this.groups = baileysGroups(this.socket)
    ;(this.socket.ws as unknown as EventEmitter).on('message', () => {
      this.lastFrameAt = Date.now()
    })

    // Connect watchdog: a refused WebSocket upgrade (e.g. HTTP 403) leaves Baileys hanging
    // without a close event; nothing at all within the connect timeout means give up.
    this.timers.push(
      setTimeout(() => {
        if (this.qrCount === 0 && !this.socket.user)
          this.fail(408, 'connect watchdog: no answer from WhatsApp')
      }, connectTimeoutMs + 5_000),
    )
    // Liveness watchdog, beside Baileys' keep-alive: no frame for three intervals is a dead link.
    const liveness = setInterval(() => {
      if (Date.now() - this.lastFrameAt > keepAliveIntervalMs * 3 + 5_000) {
        this.fail(408, 'liveness watchdog: no frame from WhatsApp')
      }
    }, keepAliveIntervalMs)
    this.timers.push(liveness)
  }

  private onConnectionUpdate(update: Partial<ConnectionState>, platform?: string): void {
    if (update.qr) {
      this.qrCount += 1
      const lifetime = this.qrCount === 1 ? FIRST_QR_MS : NEXT_QR_MS
      this.events.emit('qr', { value: update.qr, expiresAt: Date.now() + lifetime })
    }
    if (update.isNewLogin) this.events.emit('linked')
    if (update.connection === 'open') this.events.emit('open', this.deviceInfo(platform))
    if (update.connection === 'close') {
      const error = update.lastDisconnect?.error as Boom | undefined
      this.emitClose({ code: error?.output?.statusCode, message: error?.message ?? 'connection closed' })
    }
  }

  private deviceInfo(platform?: string): DeviceInfo {
    const user = this.socket.user
    const jid = user?.id ?? ''
    const [phonePart = '', deviceId = '0'] = (jid.split('@')[0] ?? '').split(':')
    return {
      jid,
      lid: user?.lid,
      phone: phonePart,
      deviceId: Number(deviceId),
      pushName: user?.name,
      platform,
    }
  }

  private fail(code: number, message: string): void {
    if (this.closed) return
    this.logger.warn({ code }, message)
    this.emitClose({ code, message })
    this.socket.end(undefined)
  }

  private emitClose(info: CloseInfo): void {
    if (this.closed) return
    this.closed = true
    for (const timer of this.timers) clearTimeout(timer)
    // Let a pending credentials save finish first: a 515 right after pairing needs them.
    void this.saving.then(() => this.events.emit('close', info))
  }

  writeStagedKeys(trx: Transaction<Tables>): Promise<KeyWriteSettler> {
    return this.keys.writeWithin(trx)
  }

  async requestPairingCode(phoneNumber: string): Promise<string> {
    return this.socket.requestPairingCode(phoneNumber)
  }

  async logout(): Promise<void> {
    try {
      await this.socket.logout()
    } finally {
      this.emitClose({ code: DisconnectReason.loggedOut, message: 'logged out' })
    }
  }

  async sendMessage(
    jid: string,
    content: AnyMessageContent,
    options: { messageId: string; quoted?: WAMessage },
  ): Promise<WAMessage> {
    const sent = await this.socket.sendMessage(jid, content, {
      messageId: options.messageId,
      ...(options.quoted ? { quoted: options.quoted } : {}),
    })
    if (!sent) throw new Error('WhatsApp did not accept the message')
    return sent
  }

  async downloadMedia(message: WAMessage): Promise<Buffer> {
    return (await downloadMediaMessage(
      message,
      'buffer',
      { options: this.mediaDispatcher ? { dispatcher: this.mediaDispatcher } : {} },
      { logger: this.logger, reuploadRequest: this.socket.updateMediaMessage },
    )) as Buffer
  }

  markRead(keys: WAMessageKey[]): Promise<void> {
    return this.socket.readMessages(keys)
  }

  sendPresence(presence: 'available' | 'unavailable' | 'composing' | 'recording' | 'paused', jid?: string) {
    return this.socket.sendPresenceUpdate(presence, jid)
  }

  async onWhatsApp(jids: string[]): Promise<{ jid: string; exists: boolean }[]> {
    const found = (await this.socket.onWhatsApp(...jids)) ?? []
    return jids.map((jid) => {
      const match = found.find((f) => f.jid === jid)
      return { jid, exists: Boolean(match?.exists) }
    })
  }

  end(): void {
    if (this.closed) return
    this.socket.end(undefined)
    // Baileys emits its own close for end(); this covers a socket that never opened.
    this.emitClose({ code: DisconnectReason.connectionClosed, message: 'closed by wagate' })
  }
}
