import type { EventEmitter } from 'node:events'
import type { AnyMessageContent, WAMessage, WAMessageKey } from '@whiskeysockets/baileys'
import type { Transaction } from 'kysely'
import type { Tables } from '../store/schema.ts'
import type { KeyWriteSettler } from './auth-state.ts'

/** WhatsApp's own message record (the protocol's WebMessageInfo), as the engine hands it over. */
export type EngineMessage = WAMessage

/** What WhatsApp reported for one of our messages: 2 server ack, 3 delivered, 4 read, 5 played, 0 error. */
export interface StatusReport {
  key: WAMessageKey
  status: 'sent' | 'delivered' | 'read' | 'played' | 'failed'
  /** for group receipts: the member who received or read it */
  participant?: string
}

export interface ContactReport {
  jid: string
  lid?: string
  phone?: string
  name?: string
  pushName?: string
  verifiedName?: string
}

/** A group as WhatsApp describes it, members with both addresses where known. */
export interface GroupReport {
  jid: string
  subject: string
  description?: string
  owner?: string
  createdAt?: number
  announce: boolean
  restrict: boolean
  participants: {
    jid: string
    lid: string | null
    phone: string | null
    role: 'member' | 'admin' | 'superadmin'
  }[]
}

export type ParticipantAction = 'add' | 'remove' | 'promote' | 'demote'

/** Group management on one connection. */
export interface EngineGroups {
  metadata(jid: string): Promise<GroupReport>
  participating(): Promise<GroupReport[]>
  create(subject: string, participants: string[]): Promise<GroupReport>
  setSubject(jid: string, subject: string): Promise<void>
  setDescription(jid: string, description: string): Promise<void>
  updateParticipants(
    jid: string,
    participants: string[],
    action: ParticipantAction,
  ): Promise<{ jid: string; status: string }[]>
  leave(jid: string): Promise<void>
  inviteCode(jid: string): Promise<string>
  revokeInvite(jid: string): Promise<string>
}

export interface HistoryBatch {
  messages: EngineMessage[]
  chats: {
    jid: string
    name?: string
    unreadCount?: number
    lastMessageAt?: number
    archived?: boolean
    pinned?: boolean
  }[]
  contacts: ContactReport[]
  lidMappings: { lid: string; pn: string }[]
  progress: number | null
  syncType: string
}

/** Someone's presence in a chat, as WhatsApp pushed it: online state, or typing there. */
export interface PresenceReport {
  /** the chat: the person's own address, or a group for typing in a group */
  chatJid: string
  /** the person, as WhatsApp addressed them (phone JID or LID) */
  participant: string
  presence: 'available' | 'unavailable' | 'composing' | 'recording' | 'paused'
  /** epoch ms, when WhatsApp says (going offline) */
  lastSeen?: number
}

/** Muted until the user unmutes: WhatsApp's -1, kept as the latest time JavaScript dates reach. */
export const MUTED_FOREVER = 8_640_000_000_000_000

/**
 * What changed about a chat, as the phone synced it (app state) or WhatsApp announced it.
 * Only the fields given changed; the per-message bookkeeping (unread count, last message)
 * is the message ingest's, and never reported here.
 */
export interface ChatReport {
  jid: string
  name?: string
  archived?: boolean
  pinned?: boolean
  /** epoch ms the mute ends (MUTED_FOREVER for ever); null: not muted */
  mutedUntil?: number | null
  /** true: marked read; false: marked unread */
  read?: boolean
}

/** A change to a group's info or settings; only the fields given changed. */
export interface GroupChangeReport {
  jid: string
  subject?: string
  /** null: the description was removed */
  description?: string | null
  announce?: boolean
  restrict?: boolean
  /** who changed it, as the group addresses them, and their other address when given */
  author?: string
  authorAlt?: string
}

export interface GroupParticipantsReport {
  jid: string
  /** modify: members changed number */
  action: ParticipantAction | 'modify'
  /** each member as the group addresses them, with the other address when given */
  participants: { jid: string; alt?: string }[]
  author?: string
  authorAlt?: string
}

/** A call WhatsApp rang the linked device with, at each step. */
export interface CallReport {
  id: string
  status: 'offer' | 'ringing' | 'timeout' | 'reject' | 'accept' | 'terminate' | 'other'
  /** the caller as addressed (phone JID or LID), and their phone JID when given */
  from: string
  callerPn?: string
  chatJid: string
  isVideo: boolean
  isGroup: boolean
  groupJid?: string
  /** the offer came while the session was offline */
  offline: boolean
  /** epoch ms */
  at: number
}

/** Who the linked device is, once logged in. */
export interface DeviceInfo {
  /** device JID, e.g. `15550001234:3@s.whatsapp.net` */
  jid: string
  /** LID device JID, e.g. `1234567890:3@lid` */
  lid?: string
  phone: string
  deviceId: number
  pushName?: string
  platform?: string
}

/** Why a connection closed, in WhatsApp's terms (see BAILEYS-NOTES.md for the codes). */
export interface CloseInfo {
  /** the close code Baileys reports: 401 logged out, 408 timed out, 428 closed, 440 replaced, 515 restart… */
  code: number | undefined
  message: string
}

/** Events of one engine connection, from first byte to close. */
export interface EngineEventMap {
  /** a fresh QR to show; `expiresAt` is when the client rotates to the next one */
  qr: [{ value: string; expiresAt: number }]
  /** a phone accepted the link; WhatsApp restarts the stream (515) right after */
  linked: []
  open: [DeviceInfo]
  /** the connection is gone; the owner decides whether to reconnect */
  close: [CloseInfo]
  /** the session's stored credentials changed (persisted before this is emitted) */
  'credentials-saved': []
  /** new messages: `notify` live, `append` received while offline (replayed at login) */
  messages: [{ kind: 'notify' | 'append'; messages: EngineMessage[] }]
  /** a batch of history sync (first link, or on demand) */
  history: [HistoryBatch]
  'message-status': [StatusReport[]]
  /** WhatsApp's server took a message we sent (its id): until then, a dropped connection may have lost it */
  'message-acked': [string]
  contacts: [ContactReport[]]
  'lid-mapping': [{ lid: string; pn: string }[]]
  /** groups created or joined (their full metadata is fetched) */
  groups: [{ jids: string[] }]
  /** a group's info or settings changed */
  'group-update': [GroupChangeReport[]]
  /** members were added, removed, promoted, demoted or changed number */
  'group-participants': [GroupParticipantsReport]
  /** chats archived, pinned, muted, marked read or renamed */
  chats: [ChatReport[]]
  /** online, offline, typing, recording; one report per person */
  presence: [PresenceReport]
  call: [CallReport[]]
}

export interface ProxySettings {
  server: string
  username?: string
  password?: string
}

/** Where a sandbox session connects, and what it must trust there. */
export interface SandboxTarget {
  websocketUrl: string
  noiseRootPublicKey: Uint8Array
  mediaCaPem: string
}

export interface ConnectOptions {
  sessionId: string
  proxy?: ProxySettings
  client?: { deviceName?: string; browserName?: string }
  /** how far back the first-link history goes: WhatsApp's default (~3 months) or a full year */
  fullHistory?: boolean
  sandbox?: SandboxTarget
  /** no frame from the server for this long means the link is dead */
  keepAliveIntervalMs?: number
  connectTimeoutMs?: number
}

/** One socket's life. A new connection is made for every (re)connect. */
export interface EngineConnection {
  readonly events: EventEmitter<EngineEventMap>
  /** asks WhatsApp for an 8-character pairing code for `phoneNumber` (digits with country code) */
  requestPairingCode(phoneNumber: string): Promise<string>
  /** unlinks the device at WhatsApp; the connection closes afterwards */
  logout(): Promise<void>
  /** closes the socket without unlinking; emits `close` */
  end(): void
  /** sends with the id we chose (so a retry after a crash cannot send twice); resolves when WhatsApp has it */
  sendMessage(
    jid: string,
    content: AnyMessageContent,
    options: { messageId: string; quoted?: EngineMessage },
  ): Promise<EngineMessage>
  /** downloads and decrypts a message's media */
  downloadMedia(message: EngineMessage): Promise<Buffer>
  markRead(keys: WAMessageKey[]): Promise<void>
  sendPresence(
    presence: 'available' | 'unavailable' | 'composing' | 'recording' | 'paused',
    jid?: string,
  ): Promise<void>
  /** which of these phone JIDs are on WhatsApp */
  onWhatsApp(jids: string[]): Promise<{ jid: string; exists: boolean }[]>
  readonly groups: EngineGroups
  /**
   * Writes the Signal key changes staged since the last write (see auth-state.ts) inside
   * the caller's transaction; the returned function is told whether it committed.
   */
  writeStagedKeys(trx: Transaction<Tables>): Promise<KeyWriteSettler>
}

/**
 * The gateway's one way to talk WhatsApp. The Baileys implementation serves both real
 * WhatsApp and the sandbox; tests run it against the sandbox rather than faking it.
 */
export interface WhatsAppEngine {
  connect(options: ConnectOptions): Promise<EngineConnection>
  /** forgets a session's credentials and keys */
  wipe(sessionId: string): Promise<void>
  /** whether a session has credentials from a completed link */
  hasCredentials(sessionId: string): Promise<boolean>
  /** stores every key change still staged and stops later ones (at shutdown, after the sessions stopped) */
  close(): Promise<void>
}
