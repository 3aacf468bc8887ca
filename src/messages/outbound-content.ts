import { readFile } from 'node:fs/promises'
import type { AnyMessageContent, proto } from '@whiskeysockets/baileys'
import type { MediaKind } from './send-request.ts'

/**
 * What the queue needs to send one message, stored with it (JSON) so a restart loses
 * nothing: the resolved recipient, the content, and media as a file we wrote at accept time.
 */
export type StoredSendRequest = {
  jid: string
  mentions: string[]
  /** WhatsApp id and chat of the quoted message, with its stored body */
  quoted?: { waId: string; chatJid: string; fromMe: boolean; participant?: string; raw: string | null }
} & (
  | { kind: 'text'; text: string; previewUrl: boolean }
  | {
      kind: MediaKind
      path: string
      mimetype: string
      caption?: string
      fileName?: string
      voice?: boolean
    }
  | { kind: 'location'; latitude: number; longitude: number; name?: string; address?: string }
  | { kind: 'contact'; contacts: { displayName: string; vcard: string }[] }
  | { kind: 'poll'; name: string; options: string[]; selectableCount: number }
  | {
      kind: 'reaction'
      emoji: string
      target: { waId: string; chatJid: string; fromMe: boolean; participant?: string }
    }
  | { kind: 'forward'; original: { waId: string; chatJid: string; fromMe: boolean; raw: string } }
)

/** Baileys content for a stored request; media is read from its file now. */
export async function buildContent(
  request: StoredSendRequest,
  decode: (raw: string) => proto.IMessage,
): Promise<AnyMessageContent> {
  const mentions = request.mentions.length ? { mentions: request.mentions } : {}
  switch (request.kind) {
    case 'text':
      // No link preview unless asked: generating one fetches the URL from the gateway.
      return { text: request.text, ...mentions, ...(request.previewUrl ? {} : { linkPreview: null }) }
    case 'image':
      return {
        image: await readFile(request.path),
        mimetype: request.mimetype,
        caption: request.caption,
        ...mentions,
      }
    case 'video':
      return {
        video: await readFile(request.path),
        mimetype: request.mimetype,
        caption: request.caption,
        ...mentions,
      }
    case 'audio':
      return { audio: await readFile(request.path), mimetype: request.mimetype, ptt: Boolean(request.voice) }
    case 'document':
      return {
        document: await readFile(request.path),
        mimetype: request.mimetype,
        fileName: request.fileName ?? 'file',
        caption: request.caption,
        ...mentions,
      }
    case 'sticker':
      return { sticker: await readFile(request.path), mimetype: request.mimetype }
    case 'location':
      return {
        location: {
          degreesLatitude: request.latitude,
          degreesLongitude: request.longitude,
          name: request.name,
          address: request.address,
        },
      }
    case 'contact':
      return {
        contacts: {
          displayName:
            request.contacts.length === 1
              ? request.contacts[0]?.displayName
              : `${request.contacts.length} contacts`,
          contacts: request.contacts.map((c) => ({ displayName: c.displayName, vcard: c.vcard })),
        },
      }
    case 'poll':
      return {
        poll: { name: request.name, values: request.options, selectableCount: request.selectableCount },
      }
    case 'forward':
      return {
        forward: {
          key: {
            remoteJid: request.original.chatJid,
            id: request.original.waId,
            fromMe: request.original.fromMe,
          },
          message: decode(request.original.raw),
        },
      }
    case 'reaction':
      return {
        react: {
          text: request.emoji,
          key: {
            remoteJid: request.target.chatJid,
            id: request.target.waId,
            fromMe: request.target.fromMe,
            ...(request.target.participant ? { participant: request.target.participant } : {}),
          },
        },
      }
  }
}

/** The quoted message as Baileys wants it: key plus body. */
export function quotedMessage(
  quoted: NonNullable<StoredSendRequest['quoted']>,
  decode: (raw: string) => proto.IMessage,
): { key: proto.IMessageKey; message: proto.IMessage } {
  return {
    key: {
      remoteJid: quoted.chatJid,
      id: quoted.waId,
      fromMe: quoted.fromMe,
      ...(quoted.participant ? { participant: quoted.participant } : {}),
    },
    message: quoted.raw ? decode(quoted.raw) : { conversation: '' },
  }
}
