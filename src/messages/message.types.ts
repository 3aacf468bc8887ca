export const MESSAGE_TYPES = [
  'text',
  'image',
  'video',
  'audio',
  'document',
  'sticker',
  'location',
  'contact',
  'reaction',
  'poll',
  'poll_vote',
  'edit',
  'delete',
  'unknown',
] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

export const MEDIA_TYPES = ['image', 'video', 'audio', 'document', 'sticker'] as const
export type MediaType = (typeof MEDIA_TYPES)[number]

/** Outbound: pending → sent → delivered → read (→ played for voice notes); failed with a reason. */
export const MESSAGE_STATUSES = ['pending', 'sent', 'delivered', 'read', 'played', 'failed'] as const
export type MessageStatus = (typeof MESSAGE_STATUSES)[number]

export interface MediaDescriptor {
  type: MediaType
  mimetype: string
  fileName?: string
  size?: number
  seconds?: number
  /** a voice note rather than an audio file */
  ptt?: boolean
  /** set once the file is downloaded: GET …/media/{mediaId} */
  mediaId?: string
}

/**
 * One shape for every message, whichever of WhatsApp's many content types it came as.
 * Chats are named by phone JID when WhatsApp tells us the number, else by LID; both are kept.
 */
export interface NormalizedMessage {
  waId: string
  chatJid: string
  /** the chat's LID, for 1:1 chats that WhatsApp addressed by LID */
  chatLid: string | null
  fromMe: boolean
  /** the author's phone JID (group messages: the member), when known */
  senderJid: string | null
  senderLid: string | null
  pushName: string | null
  /** epoch milliseconds */
  timestamp: number
  type: MessageType
  /** the text, or the caption of media */
  text: string | null
  media: MediaDescriptor | null
  quotedId: string | null
  mentions: string[]
  /** the message a reaction, edit, delete or poll vote is about */
  targetId: string | null
  /** type-specific content: location, contacts, poll, reaction emoji, edited text */
  details: Record<string, unknown> | null
}
