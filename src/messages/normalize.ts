import { getContentType, normalizeMessageContent, proto, type WAMessage } from '@whiskeysockets/baileys'
import { bareJid, chatKind, LID_SERVER, parseJid } from '../domain/jid.ts'
import type { MediaDescriptor, MessageType, NormalizedMessage } from './message.types.ts'

const toNumber = (value: number | { toNumber(): number } | null | undefined): number | undefined =>
  value === null || value === undefined ? undefined : typeof value === 'number' ? value : value.toNumber()

const isLid = (jid: string | null | undefined): boolean =>
  Boolean(jid && parseJid(jid)?.server === LID_SERVER)

/** The phone JID and the LID of one address pair, whichever way round WhatsApp sent them. */
function pair(primary: string | null | undefined, alternate: string | null | undefined) {
  const a = primary ? bareJid(primary) : null
  const b = alternate ? bareJid(alternate) : null
  if (isLid(a)) return { phone: b && !isLid(b) ? b : null, lid: a }
  return { phone: a, lid: b && isLid(b) ? b : null }
}

/**
 * Maps a Baileys message to the normalized shape; undefined for what is not a message a
 * user would see (protocol chatter, sender-key distribution, history notifications).
 */
export function normalizeMessage(message: WAMessage, meJid: string | null): NormalizedMessage | undefined {
  const key = message.key
  const remote = key.remoteJid
  if (!remote || !key.id) return undefined
  const content = normalizeMessageContent(message.message)
  if (!content) return undefined
  const contentType = getContentType(content)
  if (!contentType) return undefined

  const group = chatKind(remote) === 'group'
  const chat = group ? { phone: bareJid(remote), lid: null } : pair(remote, key.remoteJidAlt)
  const author = group
    ? pair(key.participant, key.participantAlt)
    : key.fromMe
      ? { phone: meJid ? bareJid(meJid) : null, lid: null }
      : chat
  const base = {
    waId: key.id,
    chatJid: chat.phone ?? chat.lid ?? bareJid(remote),
    chatLid: group ? null : chat.lid,
    fromMe: Boolean(key.fromMe),
    senderJid: author.phone,
    senderLid: author.lid,
    pushName: key.fromMe ? null : (message.pushName ?? null),
    timestamp: (toNumber(message.messageTimestamp) ?? Math.floor(Date.now() / 1000)) * 1000,
    text: null,
    media: null,
    quotedId: null,
    mentions: [] as string[],
    targetId: null,
    details: null,
  } satisfies Omit<NormalizedMessage, 'type'> & { text: null }

  const context = contextOf(content)
  const withContext = {
    ...base,
    quotedId: context?.stanzaId ?? null,
    mentions: (context?.mentionedJid ?? []).map(bareJid),
  }
  const build = (type: MessageType, extra: Partial<NormalizedMessage> = {}): NormalizedMessage => ({
    ...withContext,
    type,
    ...extra,
  })

  switch (contentType) {
    case 'conversation':
      return build('text', { text: content.conversation ?? '' })
    case 'extendedTextMessage':
      return build('text', { text: content.extendedTextMessage?.text ?? '' })
    case 'imageMessage':
    case 'videoMessage':
    case 'audioMessage':
    case 'documentMessage':
    case 'stickerMessage':
      return mediaMessage(content, contentType, build)
    case 'locationMessage':
    case 'liveLocationMessage': {
      const location = content.locationMessage ?? content.liveLocationMessage
      return build('location', {
        details: {
          latitude: location?.degreesLatitude ?? 0,
          longitude: location?.degreesLongitude ?? 0,
          name: content.locationMessage?.name ?? null,
          address: content.locationMessage?.address ?? null,
        },
      })
    }
    case 'contactMessage':
      return build('contact', {
        details: {
          contacts: [
            {
              displayName: content.contactMessage?.displayName ?? '',
              vcard: content.contactMessage?.vcard ?? '',
            },
          ],
        },
      })
    case 'contactsArrayMessage':
      return build('contact', {
        details: {
          contacts: (content.contactsArrayMessage?.contacts ?? []).map((c) => ({
            displayName: c.displayName ?? '',
            vcard: c.vcard ?? '',
          })),
        },
      })
    case 'reactionMessage':
      return build('reaction', {
        targetId: content.reactionMessage?.key?.id ?? null,
        details: { emoji: content.reactionMessage?.text ?? '' },
      })
    case 'pollCreationMessage':
    case 'pollCreationMessageV2':
    case 'pollCreationMessageV3': {
      const poll =
        content.pollCreationMessage ?? content.pollCreationMessageV2 ?? content.pollCreationMessageV3
      return build('poll', {
        text: poll?.name ?? '',
        details: {
          name: poll?.name ?? '',
          options: (poll?.options ?? []).map((o) => o.optionName ?? ''),
          selectableCount: poll?.selectableOptionsCount ?? 0,
        },
      })
    }
    case 'pollUpdateMessage':
      return build('poll_vote', { targetId: content.pollUpdateMessage?.pollCreationMessageKey?.id ?? null })
    case 'protocolMessage': {
      const protocol = content.protocolMessage
      const target = protocol?.key?.id ?? null
      if (protocol?.type === proto.Message.ProtocolMessage.Type.REVOKE)
        return build('delete', { targetId: target })
      if (protocol?.type === proto.Message.ProtocolMessage.Type.MESSAGE_EDIT) {
        const edited = protocol.editedMessage
        const text =
          edited?.conversation ?? edited?.extendedTextMessage?.text ?? edited?.imageMessage?.caption ?? null
        return build('edit', { targetId: target, text })
      }
      return undefined
    }
    case 'senderKeyDistributionMessage':
    case 'messageContextInfo':
      return undefined
    default:
      return build('unknown', { details: { contentType } })
  }
}

function mediaMessage(
  content: proto.IMessage,
  contentType: 'imageMessage' | 'videoMessage' | 'audioMessage' | 'documentMessage' | 'stickerMessage',
  build: (type: MessageType, extra?: Partial<NormalizedMessage>) => NormalizedMessage,
): NormalizedMessage {
  const media = content[contentType] as
    | (proto.Message.IImageMessage &
        proto.Message.IVideoMessage &
        proto.Message.IAudioMessage &
        proto.Message.IDocumentMessage)
    | null
    | undefined
  const type = contentType.replace('Message', '') as MediaDescriptor['type']
  const descriptor: MediaDescriptor = {
    type,
    mimetype: media?.mimetype ?? 'application/octet-stream',
    ...(media?.fileName ? { fileName: media.fileName } : {}),
    ...(media?.fileLength !== undefined && media?.fileLength !== null
      ? { size: toNumber(media.fileLength) }
      : {}),
    ...(media?.seconds ? { seconds: media.seconds } : {}),
    ...(type === 'audio' ? { ptt: Boolean(media?.ptt) } : {}),
  }
  return build(type, { text: media?.caption ?? null, media: descriptor })
}

function contextOf(content: proto.IMessage): proto.IContextInfo | null | undefined {
  for (const value of Object.values(content)) {
    if (value && typeof value === 'object' && 'contextInfo' in value) {
      return (value as { contextInfo?: proto.IContextInfo | null }).contextInfo
    }
  }
  return undefined
}
