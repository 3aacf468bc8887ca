import { Curve, jidEncode, type KeyPair, type proto } from '@whiskeysockets/baileys'
import type { AccountAppState } from './app-state.ts'
import { SandboxError } from './errors.ts'
import { SeededRandom } from './random.ts'
import { type PreKeyBundle, SignalDevice, type SignalDeviceSnapshot } from './signal-device.ts'

export const USER_SERVER = 's.whatsapp.net'
export const LID_SERVER = 'lid'
export const GROUP_SERVER = 'g.us'

/** A client (Baileys) linked to an account as a companion device. */
export interface LinkedDevice {
  deviceId: number
  identityPublic: Buffer
  noisePublic: Buffer
  /** uploaded by the client after login; absent until then */
  bundle?: PreKeyBundle
  platform: string
  linkedAt: number
  /** the first-link history sync has been sent to it */
  historySent?: boolean
  /** the account's app state sync key has been shared with it */
  appStateKeyShared?: boolean
}

/** A message as a simulated person's phone decrypted it. */
export interface ReceivedMessage {
  id: string
  /** the sender's device address */
  from: string
  /** `phoneNumber` of the receiving person, or the group's JID */
  to: string
  /** the chat it belongs to (the group's JID for group messages) */
  chat: string
  timestamp: number
  /** the first content key of the decoded `proto.Message`, e.g. `conversation`, `imageMessage` */
  kind: string
  text?: string
  message: proto.IMessage
}

export type ParticipantRole = 'member' | 'admin' | 'superadmin'

/** A simulated WhatsApp user: a phone number with a primary phone and maybe linked devices. */
export class SimUser {
  readonly devices = new Map<number, LinkedDevice>()
  readonly received: ReceivedMessage[] = []
  readonly phone: SignalDevice
  /** whether the person's phone is reachable: receipts only flow while it is */
  online = true
  /**
   * How this person's 1:1 messages are addressed. Today's WhatsApp sends `from=<lid>@lid`
   * with `sender_pn`; older chats still arrive as `from=<phone>` with `sender_lid`.
   */
  addressing: 'lid' | 'pn' = 'lid'
  lastDeviceId = 0
  /** an account's app state (archived, pinned, muted chats; address book), made when first changed */
  appState?: AccountAppState

  readonly phoneNumber: string
  readonly lid: string
  pushName: string
  kind: 'account' | 'contact'
  /** the ADV account key: signs linked devices' identities and is the phone's Signal identity */
  readonly accountKey: KeyPair

  constructor(
    phoneNumber: string,
    lid: string,
    pushName: string,
    kind: 'account' | 'contact',
    restored?: { accountKey: KeyPair; phone: SignalDeviceSnapshot },
  ) {
    this.phoneNumber = phoneNumber
    this.lid = lid
    this.pushName = pushName
    this.kind = kind
    this.accountKey = restored?.accountKey ?? Curve.generateKeyPair()
    this.phone = new SignalDevice(jidEncode(phoneNumber, USER_SERVER), this.accountKey, restored?.phone)
  }

  get jid(): string {
    return jidEncode(this.phoneNumber, USER_SERVER)
  }

  get lidJid(): string {
    return jidEncode(this.lid, LID_SERVER)
  }

  allocateDeviceId(): number {
    this.lastDeviceId += 1
    return this.lastDeviceId
  }

  /** device ids that can receive messages: the phone (0) and every linked device with keys */
  reachableDeviceIds(): number[] {
    const linked = [...this.devices.values()].filter((d) => d.bundle).map((d) => d.deviceId)
    return [0, ...linked]
  }
}

export class SimGroup {
  readonly participants = new Map<string, ParticipantRole>()
  /** the name a member goes by in this group, where it differs from their push name */
  readonly memberNames = new Map<string, string>()
  readonly received: ReceivedMessage[] = []
  description = ''
  descriptionId = ''
  subjectTime: number
  /** today's groups address members by LID; `pn` reproduces older groups */
  addressing: 'lid' | 'pn' = 'lid'
  announce = false
  restrict = false

  readonly id: string
  subject: string
  readonly creator: string
  readonly createdAt: number
  inviteCode: string

  constructor(id: string, subject: string, creator: string, createdAt: number, inviteCode: string) {
    this.id = id
    this.subject = subject
    this.subjectTime = createdAt
    this.creator = creator
    this.createdAt = createdAt
    this.inviteCode = inviteCode
  }

  get jid(): string {
    return jidEncode(this.id, GROUP_SERVER)
  }
}

const FIRST_NAMES = ['Alice', 'Bruno', 'Chen', 'Dara', 'Emeka', 'Fatima', 'Gus', 'Hana', 'Ivan', 'Jade']

/**
 * The sandbox's world: who exists, their devices and groups. Pure state — the server and
 * the message router act on it. Users are found by phone number or LID, with or
 * without a JID suffix.
 */
export class SandboxNetwork {
  readonly random: SeededRandom
  readonly usersByPhone = new Map<string, SimUser>()
  readonly usersByLid = new Map<string, SimUser>()
  readonly groups = new Map<string, SimGroup>()

  readonly seed: number

  constructor(seed: number) {
    this.seed = seed
    this.random = new SeededRandom(seed)
  }

  createUser(input: {
    phoneNumber?: string
    pushName?: string
    kind: 'account' | 'contact'
    lid?: string
  }): SimUser {
    const phoneNumber = input.phoneNumber ?? this.freshPhoneNumber()
    if (this.usersByPhone.has(phoneNumber)) {
      throw new SandboxError('conflict', `a user with phone number ${phoneNumber} already exists`)
    }
    const lid = input.lid ?? this.freshLid()
    const pushName = input.pushName ?? `${this.random.pick(FIRST_NAMES)} ${phoneNumber.slice(-4)}`
    const user = new SimUser(phoneNumber, lid, pushName, input.kind)
    this.usersByPhone.set(phoneNumber, user)
    this.usersByLid.set(lid, user)
    return user
  }

  /** Finds a user by phone number, LID, or either JID form; creates a contact when asked to. */
  findUser(address: string): SimUser | undefined {
    const [userPart = '', server] = address.split('@')
    const bare = userPart.split(':')[0] ?? ''
    if (server === LID_SERVER) return this.usersByLid.get(bare)
    return this.usersByPhone.get(bare.replace(/^\+/, '')) ?? (server ? undefined : this.usersByLid.get(bare))
  }

  getUser(address: string): SimUser {
    const user = this.findUser(address)
    if (!user) throw new SandboxError('not_found', `no simulated user ${address}`)
    return user
  }

  findOrCreateUser(phoneNumber: string, kind: 'account' | 'contact', pushName?: string): SimUser {
    return this.findUser(phoneNumber) ?? this.createUser({ phoneNumber, kind, pushName })
  }

  users(kind?: 'account' | 'contact'): SimUser[] {
    const all = [...this.usersByPhone.values()]
    return kind ? all.filter((u) => u.kind === kind) : all
  }

  createGroup(input: { subject: string; creator: SimUser; participants: SimUser[] }): SimGroup {
    const id = `120363${this.random.digits(12)}`
    const group = new SimGroup(
      id,
      input.subject,
      input.creator.phoneNumber,
      nowSeconds(),
      this.random.hex(11),
    )
    group.participants.set(input.creator.phoneNumber, 'superadmin')
    for (const member of input.participants) {
      if (!group.participants.has(member.phoneNumber)) group.participants.set(member.phoneNumber, 'member')
    }
    this.groups.set(id, group)
    return group
  }

  findGroup(address: string): SimGroup | undefined {
    return this.groups.get(address.split('@')[0] ?? '')
  }

  getGroup(address: string): SimGroup {
    const group = this.findGroup(address)
    if (!group) throw new SandboxError('not_found', `no simulated group ${address}`)
    return group
  }

  deleteGroup(group: SimGroup): void {
    this.groups.delete(group.id)
  }

  allGroups(): SimGroup[] {
    return [...this.groups.values()]
  }

  groupsOf(user: SimUser): SimGroup[] {
    return this.allGroups().filter((g) => g.participants.has(user.phoneNumber))
  }

  /** Takes over another network's people and groups (a restored sandbox keeps its own components). */
  replaceWith(other: SandboxNetwork): void {
    this.clear()
    for (const [key, user] of other.usersByPhone) this.usersByPhone.set(key, user)
    for (const [key, user] of other.usersByLid) this.usersByLid.set(key, user)
    for (const [key, group] of other.groups) this.groups.set(key, group)
    this.random.state = other.random.state
  }

  clear(): void {
    this.usersByPhone.clear()
    this.usersByLid.clear()
    this.groups.clear()
  }

  messageId(): string {
    return `3EB0${this.random.hex(9)}`
  }

  private freshPhoneNumber(): string {
    // +1 555 …: 555 is not a geographic area code, so no real subscriber is ever addressed
    let phoneNumber: string
    do phoneNumber = `1555${this.random.digits(7)}`
    while (this.usersByPhone.has(phoneNumber))
    return phoneNumber
  }

  private freshLid(): string {
    let lid: string
    do lid = `${1 + Math.floor(this.random.next() * 9)}${this.random.digits(14)}`
    while (this.usersByLid.has(lid))
    return lid
  }
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)
