import {
  type BinaryNode,
  getBinaryNodeChild,
  getBinaryNodeChildren,
  isJidGroup,
  jidDecode,
  jidEncode,
  proto,
} from '@whiskeysockets/baileys'
import type { ClientConnection } from './connection.ts'
import { takeBundle } from './core-iqs.ts'
import { SandboxError } from './errors.ts'
import {
  LID_SERVER,
  nowSeconds,
  type ReceivedMessage,
  type SandboxNetwork,
  type SimGroup,
  type SimUser,
  USER_SERVER,
} from './network.ts'
import type { SignalCiphertextType } from './signal-device.ts'

export type ReceiptType = 'delivery' | 'read' | 'played'
export type ChatState = 'composing' | 'recording' | 'paused'

export interface ReceiptSettings {
  /** a contact's phone confirms delivery this long after it decrypts; null: only on request */
  deliveryDelayMs: number | null
  /** and marks it read this long after; null: only on request */
  readDelayMs: number | null
}

/** Something a linked client sent to a simulated person, that the person's phone has not taken yet. */
interface HeldForContact {
  stanza: BinaryNode
  sender: ClientConnection['login']
}

/** A stanza waiting for a linked device that is offline, built when it is delivered. */
type PendingForDevice = (connection: ClientConnection) => Promise<void>

export interface ClientActivity {
  at: number
  kind: 'receipt' | 'chatstate' | 'presence'
  /** receipt type, chat state or presence type */
  value: string
  messageIds?: string[]
  /** the person the activity was addressed to (for chat states and receipts) */
  to?: string
}

const messageKind = (message: proto.IMessage): string =>
  Object.keys(proto.Message.toObject(message as proto.Message)).find((k) => k !== 'messageContextInfo') ??
  'unknown'

const messageText = (message: proto.IMessage): string | undefined =>
  message.conversation ??
  message.extendedTextMessage?.text ??
  message.imageMessage?.caption ??
  message.videoMessage?.caption ??
  message.documentMessage?.caption ??
  undefined

/** The stanza `type` WhatsApp puts on a message, by its content. */
function stanzaType(message: proto.IMessage): string {
  if (message.reactionMessage) return 'reaction'
  if (message.pollCreationMessage || message.pollCreationMessageV3 || message.pollUpdateMessage) return 'poll'
  const media = [
    message.imageMessage,
    message.videoMessage,
    message.audioMessage,
    message.documentMessage,
    message.stickerMessage,
    message.locationMessage,
    message.contactMessage,
  ]
  return media.some(Boolean) ? 'media' : 'text'
}

/**
 * Carries messages between linked clients and simulated people, encrypting and decrypting
 * with real Signal sessions; produces server acks, receipts and presence. Stanzas for a
 * linked device that is offline wait and are replayed (marked `offline`) at its next login;
 * stanzas for a contact whose phone is offline wait until it comes online.
 */
export class MessageRouter {
  readonly activity = new Map<string, ClientActivity[]>()
  private readonly pendingForDevice = new Map<string, PendingForDevice[]>()
  private readonly heldForContact = new Map<string, HeldForContact[]>()
  private readonly timers = new Set<NodeJS.Timeout>()

  readonly receipts: ReceiptSettings
  private readonly network: SandboxNetwork
  private readonly connections: () => Iterable<ClientConnection>
  private readonly onError: (error: unknown) => void

  constructor(
    network: SandboxNetwork,
    connections: () => Iterable<ClientConnection>,
    receipts: ReceiptSettings,
    onError: (error: unknown) => void,
  ) {
    this.network = network
    this.connections = connections
    this.receipts = receipts
    this.onError = onError
  }

  // ---- client → simulated people ------------------------------------------------------

  async onClientMessage(connection: ClientConnection, stanza: BinaryNode): Promise<void> {
    const to = stanza.attrs.to ?? ''
    connection.send({
      tag: 'ack',
      attrs: { class: 'message', id: stanza.attrs.id ?? '', from: to, t: String(nowSeconds()) },
    })
    if (!connection.login) return
    if (isJidGroup(to)) return this.onClientGroupMessage(connection, stanza)
    const recipient = this.network.findUser(to)
    if (recipient && !recipient.online && recipient.kind === 'contact') {
      const held = this.heldForContact.get(recipient.phoneNumber) ?? []
      held.push({ stanza, sender: connection.login })
      this.heldForContact.set(recipient.phoneNumber, held)
      return
    }
    await this.takeDirectMessage(connection.login, stanza)
  }

  /** A contact's phone reads a 1:1 stanza the client sent: decrypt, keep, confirm. */
  private async takeDirectMessage(
    sender: NonNullable<ClientConnection['login']>,
    stanza: BinaryNode,
  ): Promise<void> {
    const from = jidEncode(sender.user.phoneNumber, USER_SERVER, sender.deviceId)
    const id = stanza.attrs.id ?? ''
    const to = stanza.attrs.to ?? ''
    for (const { deviceJid, enc } of this.encryptedParts(stanza)) {
      const target = this.network.findUser(deviceJid)
      // Only phones (device 0) are simulated; copies for other linked devices are not kept.
      if (!target || (jidDecode(deviceJid)?.device ?? 0) !== 0) continue
      const message = await target.phone.decrypt(
        from,
        enc.attrs.type as SignalCiphertextType,
        enc.content as Uint8Array,
      )
      if (target === sender.user) continue // the sender's own phone gets a deviceSentMessage copy
      if (!hasUserContent(message)) continue
      target.received.push(this.received(id, from, target.phoneNumber, sender.user.jid, message))
      if (this.network.findUser(to) === target) this.scheduleAutomaticReceipts(target, sender.user, [id], to)
    }
  }

  private async onClientGroupMessage(connection: ClientConnection, stanza: BinaryNode): Promise<void> {
    const sender = connection.login
    if (!sender) return
    const group = this.network.findGroup(stanza.attrs.to ?? '')
    if (!group) return
    const from = jidEncode(sender.user.phoneNumber, USER_SERVER, sender.deviceId)
    // The sender key is named after the address the client signs group messages as: its
    // LID device in LID-addressed groups, its phone device otherwise.
    const author =
      stanza.attrs.addressing_mode === 'pn' ? from : jidEncode(sender.user.lid, LID_SERVER, sender.deviceId)
    const id = stanza.attrs.id ?? ''
    // Sender-key distribution arrives per member device, Signal-encrypted, before the skmsg.
    for (const { deviceJid, enc } of this.encryptedParts(stanza)) {
      const member = this.network.findUser(deviceJid)
      if (!member || (jidDecode(deviceJid)?.device ?? 0) !== 0) continue
      const message = await member.phone.decrypt(
        from,
        enc.attrs.type as SignalCiphertextType,
        enc.content as Uint8Array,
      )
      const distribution = message.senderKeyDistributionMessage?.axolotlSenderKeyDistributionMessage
      if (distribution) await member.phone.acceptSenderKey(group.jid, author, distribution)
    }
    const groupCipher = getBinaryNodeChildren(stanza, 'enc').find((e) => e.attrs.type === 'skmsg')
    if (!groupCipher) return
    let decoded: proto.Message | undefined
    const readers: SimUser[] = []
    for (const phoneNumber of group.participants.keys()) {
      const member = this.network.findUser(phoneNumber)
      if (!member || member === sender.user) continue
      const message = await member.phone.decryptGroup(group.jid, author, groupCipher.content as Uint8Array)
      decoded ??= message
      member.received.push(this.received(id, from, member.phoneNumber, group.jid, message))
      readers.push(member)
    }
    if (decoded && hasUserContent(decoded)) {
      group.received.push(this.received(id, from, group.jid, group.jid, decoded))
    }
    for (const reader of readers) this.scheduleAutomaticReceipts(reader, sender.user, [id], group.jid, group)
  }

  private encryptedParts(stanza: BinaryNode): { deviceJid: string; enc: BinaryNode }[] {
    const parts: { deviceJid: string; enc: BinaryNode }[] = []
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(stanza, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc')
      if (enc && to.attrs.jid) parts.push({ deviceJid: to.attrs.jid, enc })
    }
    // A stanza addressed to a single device carries its enc directly.
    for (const enc of getBinaryNodeChildren(stanza, 'enc')) {
      if (enc.attrs.type !== 'skmsg' && stanza.attrs.to) parts.push({ deviceJid: stanza.attrs.to, enc })
    }
    return parts
  }

  private received(
    id: string,
    from: string,
    to: string,
    chat: string,
    message: proto.IMessage,
  ): ReceivedMessage {
    return {
      id,
      from,
      to,
      chat,
      timestamp: nowSeconds(),
      kind: messageKind(message),
      text: messageText(message),
      message,
    }
  }

  /** The client's receipts and chat states, recorded for the people they were addressed to. */
  onClientReceipt(connection: ClientConnection, stanza: BinaryNode): void {
    const { id = '', to = '', type, participant } = stanza.attrs
    connection.send({
      tag: 'ack',
      attrs: {
        class: 'receipt',
        id,
        from: to,
        ...(type ? { type } : {}),
        ...(participant ? { participant } : {}),
      },
    })
    const ids = [
      id,
      ...getBinaryNodeChildren(getBinaryNodeChild(stanza, 'list'), 'item').map((i) => i.attrs.id ?? ''),
    ]
    const person = this.network.findUser(participant ?? to)
    if (person) this.record(person, { kind: 'receipt', value: type ?? 'delivery', messageIds: ids })
  }

  onClientChatState(connection: ClientConnection, stanza: BinaryNode): void {
    const state = Array.isArray(stanza.content) ? (stanza.content[0] as BinaryNode | undefined) : undefined
    const person = this.network.findUser(stanza.attrs.to ?? '')
    if (!person || !state || !connection.login) return
    const value = state.tag === 'composing' && state.attrs.media === 'audio' ? 'recording' : state.tag
    this.record(person, { kind: 'chatstate', value, to: person.phoneNumber })
  }

  onClientPresence(connection: ClientConnection, stanza: BinaryNode): void {
    const { type, to } = stanza.attrs
    if (!connection.login) return
    if (type === 'subscribe' && to) {
      const person = this.network.findUser(to)
      if (person) connection.send(presenceStanza(person, person.online ? 'available' : 'unavailable'))
      return
    }
    this.record(connection.login.user, { kind: 'presence', value: type ?? 'available' })
  }

  private record(person: SimUser, activity: Omit<ClientActivity, 'at'>): void {
    const list = this.activity.get(person.phoneNumber) ?? []
    list.push({ at: Date.now(), ...activity })
    this.activity.set(person.phoneNumber, list)
  }

  // ---- simulated people → clients -----------------------------------------------------

  /** A simulated person sends `message` to an account (1:1) or to a group. Returns the message id. */
  async send(
    sender: SimUser,
    to: SimUser | SimGroup,
    message: proto.IMessage,
    id = this.network.messageId(),
  ) {
    if ('participants' in to) {
      if (!to.participants.has(sender.phoneNumber)) {
        throw new SandboxError('invalid_request', `${sender.phoneNumber} is not a member of ${to.jid}`)
      }
      for (const phoneNumber of to.participants.keys()) {
        const member = this.network.findUser(phoneNumber)
        if (member && member !== sender) await this.sendGroupCopy(sender, member, to, message, id)
      }
      return id
    }
    const addressing: Record<string, string> =
      sender.addressing === 'lid'
        ? { from: sender.lidJid, sender_pn: sender.jid }
        : { from: sender.jid, sender_lid: sender.lidJid }
    const attrs = {
      ...addressing,
      id,
      type: stanzaType(message),
      t: String(nowSeconds()),
      notify: sender.pushName,
    }
    for (const deviceId of to.devices.keys()) {
      this.deliverToDevice(to, deviceId, async (connection) => {
        const target = jidEncode(to.phoneNumber, USER_SERVER, deviceId)
        const enc = await this.encryptFor(sender, target, message)
        connection.send({ tag: 'message', attrs: { ...attrs, ...offlineMark(connection) }, content: [enc] })
      })
    }
    return id
  }

  /** A group message as one member's devices get it: the sender key (once) and the skmsg. */
  private async sendGroupCopy(
    sender: SimUser,
    member: SimUser,
    group: SimGroup,
    message: proto.IMessage,
    id: string,
  ) {
    const author: { participant: string } & Record<string, string> =
      group.addressing === 'lid'
        ? { participant: sender.lidJid, participant_pn: sender.jid, addressing_mode: 'lid' }
        : { participant: sender.jid, participant_lid: sender.lidJid, addressing_mode: 'pn' }
    const { ciphertext, senderKeyDistributionMessage } = await sender.phone.encryptForGroup(
      group.jid,
      author.participant,
      message,
    )
    const attrs = {
      from: group.jid,
      ...author,
      id,
      type: stanzaType(message),
      t: String(nowSeconds()),
      notify: group.memberNames.get(sender.phoneNumber) ?? sender.pushName,
    }
    for (const deviceId of member.devices.keys()) {
      this.deliverToDevice(member, deviceId, async (connection) => {
        const target = jidEncode(member.phoneNumber, USER_SERVER, deviceId)
        const distribution = await this.encryptFor(sender, target, {
          senderKeyDistributionMessage: {
            groupId: group.jid,
            axolotlSenderKeyDistributionMessage: senderKeyDistributionMessage,
          },
        })
        connection.send({
          tag: 'message',
          attrs: { ...attrs, ...offlineMark(connection) },
          content: [distribution, { tag: 'enc', attrs: { v: '2', type: 'skmsg' }, content: ciphertext }],
        })
      })
    }
  }

  private async encryptFor(sender: SimUser, targetJid: string, message: proto.IMessage): Promise<BinaryNode> {
    if (!(await sender.phone.hasSessionWith(targetJid))) {
      const bundle = takeBundle(this.network, targetJid)
      if (!bundle) throw new SandboxError('not_linked', `${targetJid} has no keys on the server`)
      await sender.phone.ensureSession(targetJid, bundle)
    }
    const { type, ciphertext } = await sender.phone.encrypt(targetJid, message)
    return { tag: 'enc', attrs: { v: '2', type }, content: ciphertext }
  }

  /** Runs `deliver` on the device's live connection now, or queues it for its next login. */
  private deliverToDevice(user: SimUser, deviceId: number, deliver: PendingForDevice): void {
    const connection = this.liveConnection(user, deviceId)
    if (connection) {
      deliver(connection).catch((error) => {
        // A device unlinked meanwhile has no keys left: WhatsApp drops the message too.
        if (!(error instanceof SandboxError && error.code === 'not_linked')) this.onError(error)
      })
      return
    }
    const key = `${user.phoneNumber}:${deviceId}`
    const queue = this.pendingForDevice.get(key) ?? []
    queue.push(deliver)
    this.pendingForDevice.set(key, queue)
  }

  /** After a login: replay what waited for this device, then the end-of-offline marker. */
  async flushOffline(connection: ClientConnection): Promise<void> {
    const login = connection.login
    if (!login) return
    const key = `${login.user.phoneNumber}:${login.deviceId}`
    const queue = this.pendingForDevice.get(key) ?? []
    this.pendingForDevice.delete(key)
    connection.replayingOffline = true
    for (const deliver of queue) await deliver(connection)
    connection.replayingOffline = false
    connection.send({
      tag: 'ib',
      attrs: { from: USER_SERVER },
      content: [{ tag: 'offline', attrs: { count: String(queue.length) } }],
    })
  }

  /**
   * The account's own phone sends `message` to one of its linked devices (history, key
   * shares). Returns the message id, which the device's `peer_msg` receipt names.
   */
  async sendFromOwnPhone(connection: ClientConnection, message: proto.IMessage): Promise<string | undefined> {
    const login = connection.login
    if (!login) return undefined
    const target = jidEncode(login.user.phoneNumber, USER_SERVER, login.deviceId)
    const enc = await this.encryptFor(login.user, target, message)
    const id = this.network.messageId()
    connection.send({
      tag: 'message',
      // WhatsApp drops "peer" messages that do not come from the account's own number.
      attrs: {
        from: login.user.jid,
        id,
        type: 'text',
        category: 'peer',
        t: String(nowSeconds()),
      },
      content: [enc],
    })
    return id
  }

  pendingCount(user: SimUser, deviceId: number): number {
    return this.pendingForDevice.get(`${user.phoneNumber}:${deviceId}`)?.length ?? 0
  }

  liveConnection(user: SimUser, deviceId: number): ClientConnection | undefined {
    for (const connection of this.connections()) {
      if (
        connection.isLoggedIn &&
        connection.login?.user === user &&
        connection.login.deviceId === deviceId
      ) {
        return connection
      }
    }
    return undefined
  }

  private toAccountDevices(account: SimUser, node: BinaryNode): void {
    for (const deviceId of account.devices.keys()) {
      this.deliverToDevice(account, deviceId, async (connection) => connection.send(node))
    }
  }

  // ---- receipts and presence ----------------------------------------------------------

  /** `from` tells the account that it received / read / played the account's messages. */
  sendReceipt(
    from: SimUser,
    account: SimUser,
    messageIds: string[],
    type: ReceiptType,
    options: { chatJid?: string; group?: SimGroup } = {},
  ): void {
    const [first, ...rest] = messageIds
    if (!first) return
    const { group } = options
    // A receipt names the chat as the client addressed it, or Baileys files it elsewhere.
    const chat = group?.jid ?? options.chatJid ?? (from.addressing === 'lid' ? from.lidJid : from.jid)
    const attrs: Record<string, string> = { from: chat, id: first, t: String(nowSeconds()) }
    if (group) attrs.participant = group.addressing === 'lid' ? from.lidJid : from.jid
    if (type !== 'delivery') attrs.type = type
    const content: BinaryNode[] | undefined = rest.length
      ? [{ tag: 'list', attrs: {}, content: rest.map((id) => ({ tag: 'item', attrs: { id } })) }]
      : undefined
    this.toAccountDevices(account, { tag: 'receipt', attrs, content })
  }

  private scheduleAutomaticReceipts(
    reader: SimUser,
    author: SimUser,
    ids: string[],
    chatJid: string,
    group?: SimGroup,
  ): void {
    const { deliveryDelayMs, readDelayMs } = this.receipts
    const options = { chatJid, group }
    if (deliveryDelayMs !== null) {
      this.later(deliveryDelayMs, () => this.sendReceipt(reader, author, ids, 'delivery', options))
    }
    if (readDelayMs !== null)
      this.later(readDelayMs, () => this.sendReceipt(reader, author, ids, 'read', options))
  }

  /** A contact's phone comes online: it takes what was held for it, and receipts flow. */
  async setOnline(person: SimUser, online: boolean): Promise<void> {
    person.online = online
    for (const account of this.network.users('account')) {
      if (account !== person)
        this.toAccountDevices(account, presenceStanza(person, online ? 'available' : 'unavailable'))
    }
    if (!online) return
    const held = this.heldForContact.get(person.phoneNumber) ?? []
    this.heldForContact.delete(person.phoneNumber)
    for (const { stanza, sender } of held) if (sender) await this.takeDirectMessage(sender, stanza)
  }

  heldCount(person: SimUser): number {
    return this.heldForContact.get(person.phoneNumber)?.length ?? 0
  }

  /** `from` is typing / recording / paused in its chat with `account` (or in `group`). */
  sendChatState(from: SimUser, account: SimUser, state: ChatState, group?: SimGroup): void {
    const child: BinaryNode =
      state === 'recording' ? { tag: 'composing', attrs: { media: 'audio' } } : { tag: state, attrs: {} }
    const attrs: Record<string, string> = group
      ? { from: group.jid, participant: group.addressing === 'lid' ? from.lidJid : from.jid }
      : { from: from.addressing === 'lid' ? from.lidJid : from.jid }
    this.toAccountDevices(account, { tag: 'chatstate', attrs, content: [child] })
  }

  sendPresence(from: SimUser, account: SimUser, type: 'available' | 'unavailable'): void {
    this.toAccountDevices(account, presenceStanza(from, type))
  }

  /** Stanzas a test hands the account's devices directly (notifications, raw receipts). */
  sendRaw(account: SimUser, node: BinaryNode): void {
    this.toAccountDevices(account, node)
  }

  private later(delayMs: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      run()
    }, delayMs)
    this.timers.add(timer)
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.pendingForDevice.clear()
    this.heldForContact.clear()
    this.activity.clear()
  }
}

function presenceStanza(person: SimUser, type: 'available' | 'unavailable'): BinaryNode {
  const attrs: Record<string, string> = { from: person.jid, type }
  if (type === 'unavailable') attrs.last = String(nowSeconds())
  return { tag: 'presence', attrs }
}

/** Messages replayed at login carry `offline`, which Baileys reports as upsert type 'append'. */
function offlineMark(connection: ClientConnection): Record<string, string> {
  return connection.replayingOffline ? { offline: '1' } : {}
}

/** Protocol-only payloads (sender keys, peer sync) are not messages a person would see. */
function hasUserContent(message: proto.IMessage): boolean {
  const keys = Object.keys(proto.Message.toObject(message as proto.Message)).filter(
    (k) => k !== 'messageContextInfo' && k !== 'senderKeyDistributionMessage',
  )
  if (keys.length === 0) return false
  return !(
    keys.length === 1 &&
    keys[0] === 'protocolMessage' &&
    !message.protocolMessage?.editedMessage &&
    message.protocolMessage?.type !== proto.Message.ProtocolMessage.Type.REVOKE
  )
}
