import type { EventEmitter } from 'node:events'

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
}
