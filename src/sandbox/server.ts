import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import {
  type BinaryNode,
  binaryNodeToString,
  Curve,
  decodeBinaryNode,
  isJidGroup,
  type proto,
} from '@whiskeysockets/baileys'
import { type WebSocket, WebSocketServer } from 'ws'
import { silenceLibsignal } from '../engine/libsignal-silencer.ts'
import { AppStateSync } from './app-state.ts'
import { SandboxCalls } from './calls.ts'
import { ClientConnection } from './connection.ts'
import {
  buildContactMessage,
  type ContactContent,
  type KnownMessage,
  knownFromReceived,
} from './contact-messages.ts'
import { registerCoreIqs } from './core-iqs.ts'
import { SandboxError } from './errors.ts'
import { applyConnectionFault, type SandboxFault } from './faults.ts'
import { GroupChanges } from './group-changes.ts'
import { registerGroupIqs } from './group-iqs.ts'
import { type HistorySettings, initialHistorySync } from './history.ts'
import { IqRouter } from './iq-router.ts'
import { Linker, type QrSchedule, WHATSAPP_QR_SCHEDULE } from './linking.ts'
import { encryptMediaForContact } from './media.ts'
import { MediaServer, registerMediaIqs } from './media-server.ts'
import { MessageRouter, type ReceiptSettings } from './message-router.ts'
import { nowSeconds, SandboxNetwork, type SimGroup, type SimUser } from './network.ts'
import { SandboxCertificateAuthority } from './noise.ts'
import {
  awaitCompanionFinish,
  buildPrimaryHello,
  normalizeTypedCode,
  registerPairingCodeIqs,
} from './pairing-code.ts'
import { loadNetwork, saveNetwork } from './persistence.ts'

export interface SandboxServerOptions {
  /** loopback by default: the sandbox is never meant to face a network */
  host?: string
  /** 0 picks a free port */
  port?: number
  /** seeds generated numbers, names and ids so a run can be repeated */
  seed?: number
  qrSchedule?: Partial<QrSchedule>
  receipts?: Partial<ReceiptSettings>
  /** what the first-link history sync holds; by default it is empty */
  history?: Partial<HistorySettings>
  /** receives one line per stanza in each direction (never key material) */
  /**
   * where to keep the world across restarts (an embedded sandbox uses the data directory);
   * loaded at listen, saved every few seconds and at close
   */
  statePath?: string
  trace?: (line: string) => void
  onError?: (error: unknown) => void
}

export const WEBSOCKET_PATH = '/ws/chat'
const PAIRING_FINISH_TIMEOUT_MS = 10_000
const CODE_REQUEST_GRACE_MS = 1_000
const PREKEY_UPLOAD_WAIT_MS = 10_000
const AUTOSAVE_MS = 5_000

/**
 * A fake WhatsApp server on loopback that the real Baileys client links to, logs in to and
 * exchanges Signal-encrypted messages with. It owns the network of simulated people and
 * every client connection; the control API drives it through the public methods.
 */
export class SandboxServer {
  readonly certificateAuthority = new SandboxCertificateAuthority()
  readonly network: SandboxNetwork
  readonly iqs = new IqRouter()
  readonly linker: Linker
  readonly router: MessageRouter
  /** group changes and their notifications, whether a client or a simulated member makes them */
  readonly groupChanges: GroupChanges
  /** accounts' app state (chat archive, pin, mute, read; address book) and its key shares */
  readonly appState: AppStateSync
  /** calls from simulated people to accounts */
  readonly calls: SandboxCalls
  readonly connections = new Set<ClientConnection>()
  /** the TLS media host clients upload to and download from */
  readonly media = new MediaServer()
  /** when set, WebSocket upgrades are refused with this HTTP status (the upgrade-hang fault) */
  refuseUpgradesWith: number | undefined
  private readonly staticKey = Curve.generateKeyPair()
  private readonly certificateChain: Uint8Array
  private readonly http: Server
  private readonly wss = new WebSocketServer({ noServer: true })
  private address?: AddressInfo
  private readonly sentByPeople = new Map<string, KnownMessage>()
  private autosave?: NodeJS.Timeout
  private saving: Promise<void> = Promise.resolve()
  /** accounts under the `slow` fault: their new connections are slowed too */
  private readonly slowAccounts = new Map<string, number>()
  /** upgrades refused under the `refuse-upgrade` fault, for tests to observe */
  refusedUpgrades = 0
  /** the first-link history sync; mutable so a test or the control API can change it */
  readonly history: HistorySettings

  private readonly options: SandboxServerOptions

  constructor(options: SandboxServerOptions = {}) {
    this.options = options
    this.history = { chats: 0, messagesPerChat: 0, ...options.history }
    silenceLibsignal()
    this.network = new SandboxNetwork(options.seed ?? 1)
    this.certificateChain = this.certificateAuthority.certificateChainFor(this.staticKey.public)
    this.linker = new Linker(this.network, { ...WHATSAPP_QR_SCHEDULE, ...options.qrSchedule })
    this.router = new MessageRouter(
      this.network,
      () => this.connections,
      { deliveryDelayMs: 50, readDelayMs: null, ...options.receipts },
      (error) => this.reportError(error),
    )
    this.groupChanges = new GroupChanges(this.network, this.router)
    this.appState = new AppStateSync(this.router, (user) => this.connectionsOf(user))
    this.calls = new SandboxCalls(this.network, this.router)
    registerCoreIqs(this.iqs, this.network)
    registerGroupIqs(this.iqs, this.network, this.groupChanges)
    registerMediaIqs(this.iqs, this.media)
    registerPairingCodeIqs(this.iqs, (connection, { advSecret }) => {
      const user = connection.codeLink && this.network.findUser(connection.codeLink.hello.phoneNumber)
      if (user) this.linker.acceptCompanion(connection, user, advSecret)
    })
    this.http = createServer((_request, response) => response.writeHead(404).end())
    this.http.on('upgrade', (request, socket, head) => this.onUpgrade(request, socket, head))
  }

  get rootPublicKey(): Uint8Array {
    return this.certificateAuthority.root.public
  }

  get websocketUrl(): string {
    if (!this.address) throw new Error('the sandbox is not listening')
    return `ws://${formatHost(this.address.address)}:${this.address.port}${WEBSOCKET_PATH}`
  }

  async listen(): Promise<this> {
    if (this.options.statePath) {
      const saved = await loadNetwork(this.options.statePath)
      if (saved) this.network.replaceWith(saved)
      this.autosave = setInterval(() => void this.save(), AUTOSAVE_MS)
      this.autosave.unref()
    }
    const { host = '127.0.0.1', port = 0 } = this.options
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject)
      this.http.listen(port, host, () => resolve())
    })
    this.address = this.http.address() as AddressInfo
    await this.media.start()
    return this
  }

  async close(): Promise<void> {
    clearInterval(this.autosave)
    await this.save()
    this.router.stop()
    this.calls.stop()
    for (const connection of this.connections) connection.terminate()
    this.connections.clear()
    this.wss.close()
    this.http.closeAllConnections()
    await new Promise<void>((resolve) => this.http.close(() => resolve()))
    await this.media.close()
  }

  /**
   * The phone of `phoneNumber` (created as an account if new) scans `qr`. The link
   * completes asynchronously: the client answers, gets 515 and logs in again.
   */
  scan(qr: string, phoneNumber?: string): { phoneNumber: string; deviceId: number } {
    const user = phoneNumber
      ? this.network.findOrCreateUser(phoneNumber, 'account')
      : this.network.createUser({ kind: 'account' })
    const { deviceId } = this.linker.scan(qr, user, this.connections)
    return { phoneNumber: user.phoneNumber, deviceId }
  }

  /**
   * The phone of `phoneNumber` (created as an account if new) types `code` under "Link
   * with phone number". Resolves once the client accepted it; a code that does not match
   * the one the client shows fails with `wrong_code`, and the user may type again.
   */
  async enterPairingCode(
    phoneNumber: string,
    code: string,
  ): Promise<{ phoneNumber: string; deviceId: number }> {
    const typed = normalizeTypedCode(code)
    const digits = phoneNumber.replace(/[^\d]/g, '')
    const waiting = () =>
      [...this.connections].find(
        (c) => !c.closed && c.codeLink?.hello.phoneNumber === digits && !c.link?.linkedTo,
      )
    // requestPairingCode resolves once the client has written its hello; allow it to land.
    let connection = waiting()
    for (let waited = 0; !connection && waited < CODE_REQUEST_GRACE_MS; waited += 25) {
      await new Promise((resolve) => setTimeout(resolve, 25))
      connection = waiting()
    }
    const pending = connection?.codeLink
    if (!connection || !pending) {
      throw new SandboxError('not_found', `no client is waiting for a pairing code for ${digits}`)
    }
    const user = this.network.findOrCreateUser(digits, 'account')
    const { notification, primary } = await buildPrimaryHello(pending, typed, user.accountKey)
    pending.primary = primary
    const finished = awaitCompanionFinish(pending, PAIRING_FINISH_TIMEOUT_MS)
    connection.send(notification)
    await finished
    const deviceId = connection.link?.linkedTo?.deviceId
    return { phoneNumber: digits, deviceId: deviceId ?? 0 }
  }

  /**
   * Simulated person `from` (created as a contact if new) sends `content` to account or
   * group `to`. Replies, reactions, edits, deletes and votes point at any message the
   * sandbox has seen in that chat.
   */
  async sendAs(input: {
    from: string
    to: string
    content: ContactContent
    replyTo?: string
    pushName?: string
  }): Promise<{ id: string; timestamp: number }> {
    // The chat first: a send to nobody must not leave a new contact behind.
    const chat = this.resolveChat(input.to)
    const sender = this.network.findOrCreateUser(input.from.replace(/[^\d]/g, ''), 'contact', input.pushName)
    const lookup = (id: string) => this.findKnownMessage(id)
    const replyTo = input.replyTo ? lookup(input.replyTo) : undefined
    if (input.replyTo && !replyTo)
      throw new SandboxError('not_found', `no message ${input.replyTo} to reply to`)
    const { content } = input
    const message =
      'media' in content
        ? await encryptMediaForContact(this.media, {
            ...content.media,
            bytes: Buffer.from(content.media.data, 'base64'),
          })
        : buildContactMessage(sender, chat, content, { replyTo, lookup })
    return this.sendMessage(sender, chat, message)
  }

  /** Sends a ready-made message (e.g. media built by media.ts) from `sender` to `chat`. */
  async sendMessage(sender: SimUser, chat: SimUser | SimGroup, message: proto.IMessage) {
    const id = await this.router.send(sender, chat, message)
    this.sentByPeople.set(id, { id, authorJid: sender.jid, fromAccount: false, message })
    return { id, timestamp: nowSeconds() }
  }

  /** An account (by phone number or JID) or a group (by JID) that people can message. */
  resolveChat(address: string): SimUser | SimGroup {
    if (isJidGroup(address)) return this.network.getGroup(address)
    const user = this.network.getUser(address.includes('@') ? address : address.replace(/[^\d]/g, ''))
    if (user.devices.size === 0) {
      throw new SandboxError('not_linked', `${user.phoneNumber} has no linked device to receive messages`)
    }
    return user
  }

  findKnownMessage(id: string): KnownMessage | undefined {
    const sent = this.sentByPeople.get(id)
    if (sent) return sent
    for (const holder of [...this.network.users(), ...this.network.allGroups()]) {
      const received = holder.received.find((m) => m.id === id)
      if (!received) continue
      const author = this.network.findUser(received.from)
      return { ...knownFromReceived(received, author?.jid ?? ''), fromAccount: author?.kind === 'account' }
    }
    return undefined
  }

  /** Injects a fault (see faults.ts); returns how many live connections it hit. */
  injectFault(fault: SandboxFault): { affectedConnections: number } {
    if (fault.kind === 'refuse-upgrade') {
      this.refuseUpgradesWith = fault.status ?? undefined
      return { affectedConnections: 0 }
    }
    const user = this.network.getUser(fault.phoneNumber.replace(/[^\d]/g, ''))
    const connections = this.connectionsOf(user)
    if (fault.kind === 'slow') {
      if (fault.delayMs > 0) this.slowAccounts.set(user.phoneNumber, fault.delayMs)
      else this.slowAccounts.delete(user.phoneNumber)
      for (const connection of connections) connection.faults.delayMs = fault.delayMs
      return { affectedConnections: connections.length }
    }
    return { affectedConnections: applyConnectionFault(fault, user, connections) }
  }

  /** People `from` the sandbox creates as members if new; the creator is a superadmin. */
  createGroup(input: {
    subject: string
    creator: string
    participants: string[]
    /** the name a member uses in this group, by phone number */
    names?: Record<string, string>
  }): SimGroup {
    const digits = (address: string) => address.replace(/[^\d]/g, '')
    const person = (address: string) => this.network.findOrCreateUser(digits(address), 'contact')
    const group = this.network.createGroup({
      subject: input.subject,
      creator: person(input.creator),
      participants: input.participants.map(person),
    })
    for (const [phoneNumber, name] of Object.entries(input.names ?? {})) {
      if (!group.participants.has(digits(phoneNumber))) {
        throw new SandboxError('invalid_request', `${phoneNumber} has a group name but is not a member`)
      }
      group.memberNames.set(digits(phoneNumber), name)
    }
    return group
  }

  /** Forgets every person, group and connection; settings and keys of the server stay. */
  reset(): void {
    for (const connection of this.connections) connection.terminate()
    this.connections.clear()
    this.router.stop()
    this.calls.stop()
    this.network.clear()
    this.sentByPeople.clear()
    this.appState.reset()
    this.slowAccounts.clear()
    this.refuseUpgradesWith = undefined
  }

  /** Saves the world to `statePath` (when set); failures are reported, never thrown. */
  async save(): Promise<void> {
    const path = this.options.statePath
    if (!path) return
    this.saving = this.saving
      .then(() => saveNetwork(path, this.network))
      .catch((error) => this.reportError(error))
    await this.saving
  }

  /** Live, logged-in connections of an account. */
  connectionsOf(user: SimUser): ClientConnection[] {
    return [...this.connections].filter((c) => c.isLoggedIn && c.login?.user === user)
  }

  private onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (request.url ?? '').split('?')[0]
    if (this.refuseUpgradesWith !== undefined || path !== WEBSOCKET_PATH) {
      if (this.refuseUpgradesWith !== undefined) this.refusedUpgrades += 1
      const status = this.refuseUpgradesWith ?? 404
      socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
      return
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.onConnection(ws))
  }

  private onConnection(ws: WebSocket): void {
    const connection = new ClientConnection(ws, this.staticKey, this.certificateChain, this.options.trace)
    this.connections.add(connection)
    ws.on('close', () => {
      connection.closed = true
      this.connections.delete(connection)
    })
    ws.on('error', () => connection.terminate())
    // Frames are handled strictly in order: Signal decryption must follow the ratchet.
    let chain = Promise.resolve()
    ws.on('message', (data: Buffer) => {
      chain = chain
        .then(() => this.onData(connection, data))
        .catch((error) => {
          this.reportError(error)
          connection.terminate()
        })
    })
  }

  private async onData(connection: ClientConnection, data: Buffer): Promise<void> {
    if (connection.faults.silent || connection.closed) return
    for (const frame of connection.noise.feed(data)) {
      if (connection.noise.state === 'await-hello') {
        connection.sendRaw(connection.noise.answerClientHello(frame))
      } else if (connection.noise.state === 'await-finish') {
        this.onClientFinish(connection, connection.noise.acceptClientFinish(frame))
      } else {
        const node = await decodeBinaryNode(connection.noise.decrypt(frame))
        this.options.trace?.(
          `C→S #${connection.id} ${binaryNodeToString(node).replace(/\s+/g, ' ').slice(0, 240)}`,
        )
        await this.onStanza(connection, node)
      }
    }
  }

  private onClientFinish(connection: ClientConnection, payload: proto.ClientPayload): void {
    const registration = payload.devicePairingData
    if (registration?.eIdent && connection.noise.clientStaticPublic) {
      this.linker.offerRefs(connection, Buffer.from(registration.eIdent), connection.noise.clientStaticPublic)
      return
    }
    const user = this.linker.login(connection, String(payload.username ?? ''), payload.device ?? 0)
    if (user) connection.faults.delayMs = this.slowAccounts.get(user.phoneNumber) ?? 0
    if (user) void this.afterLogin(connection).catch((error) => this.reportError(error))
  }

  /**
   * What a phone and the server push right after a login: offline replay, then first-link
   * history, then (once per device) the account's app state sync key.
   */
  private async afterLogin(connection: ClientConnection): Promise<void> {
    await this.router.flushOffline(connection)
    const login = connection.login
    const device = login?.user.devices.get(login.deviceId)
    if (!login || !device) return
    if (device.historySent && device.appStateKeyShared) return
    // The phone can only encrypt for the new device once it has uploaded its prekeys.
    for (let waited = 0; !device.bundle && waited < PREKEY_UPLOAD_WAIT_MS; waited += 25) {
      if (connection.closed) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    if (!device.bundle || connection.closed) return
    if (!device.historySent) {
      device.historySent = true
      await this.router.sendFromOwnPhone(connection, initialHistorySync(this.network, this.history))
    }
    if (!device.appStateKeyShared) await this.appState.shareKey(connection)
  }

  private async onStanza(connection: ClientConnection, node: BinaryNode): Promise<void> {
    switch (node.tag) {
      case 'iq':
        if (node.attrs.type === 'result' || node.attrs.type === 'error') {
          this.linker.onPairSuccessAnswer(connection, node)
          return
        }
        return this.iqs.handle({
          connection,
          iq: node,
          child: Array.isArray(node.content) ? (node.content[0] as BinaryNode | undefined) : undefined,
          user: connection.login?.user,
          deviceId: connection.login?.deviceId,
        })
      case 'message':
        return this.router.onClientMessage(connection, node)
      case 'receipt':
        return this.router.onClientReceipt(connection, node)
      case 'chatstate':
        return this.router.onClientChatState(connection, node)
      case 'presence':
        return this.router.onClientPresence(connection, node)
      default:
        // acks, ib (offline batch, unified session) and the like need no answer
        return
    }
  }

  private reportError(error: unknown): void {
    if (this.options.onError) this.options.onError(error)
    else console.error(`sandbox: ${error instanceof Error ? error.message : String(error)}`)
  }
}

const formatHost = (address: string): string => (address.includes(':') ? `[${address}]` : address)
