import { randomBytes } from 'node:crypto'
import { aesEncryptGCM, hmacSign, jidNormalizedUser, proto, sha256 } from '@whiskeysockets/baileys'
import { SandboxError } from './errors.ts'
import type { MediaKind } from './media.ts'
import type { ReceivedMessage, SimGroup, SimUser } from './network.ts'

/** What a simulated person can send, one content kind at a time (media is built in media.ts). */
export type ContactContent =
  | { text: string }
  | { location: { latitude: number; longitude: number; name?: string; address?: string } }
  | { contact: { displayName: string; vcard: string } }
  | { reaction: { messageId: string; emoji: string } }
  | { poll: { name: string; options: string[]; selectableCount?: number } }
  | { pollVote: { pollId: string; options: string[] } }
  | { edit: { messageId: string; text: string } }
  | { delete: { messageId: string } }
  | { media: ContactMediaInput }

/** Media a simulated person sends, as the control API takes it (base64). */
export interface ContactMediaInput {
  kind: MediaKind
  data: string
  mimetype: string
  caption?: string
  fileName?: string
  ptt?: boolean
  seconds?: number
}

/** A message as known to the sandbox: sent by a simulated person, or received by one. */
export interface KnownMessage {
  id: string
  /** the author's bare phone JID */
  authorJid: string
  /** true when the linked account wrote it */
  fromAccount: boolean
  message: proto.IMessage
}

/**
 * Builds the `proto.Message` a simulated person sends, in the shapes WhatsApp's apps
 * produce: replies quote the original, reactions/edits/deletes point at a message key
 * as seen from the sender, and poll votes are encrypted with the poll's message secret.
 */
export function buildContactMessage(
  sender: SimUser,
  chat: SimUser | SimGroup,
  content: Exclude<ContactContent, { media: ContactMediaInput }>,
  options: { replyTo?: KnownMessage; lookup: (id: string) => KnownMessage | undefined },
): proto.IMessage {
  const target = (id: string): KnownMessage => {
    const known = options.lookup(id)
    if (!known) throw new SandboxError('not_found', `no message ${id} in this chat`)
    return known
  }
  const keyOf = (known: KnownMessage): proto.IMessageKey => ({
    // the chat as the sender sees it: the account (1:1) or the group
    remoteJid: chat.jid,
    // from the sender's side: its own message is fromMe
    fromMe: !known.fromAccount && known.authorJid === sender.jid,
    id: known.id,
    ...('participants' in chat ? { participant: known.authorJid } : {}),
  })

  if ('text' in content) {
    if (!options.replyTo) return { conversation: content.text }
    const quoted = options.replyTo
    return {
      extendedTextMessage: {
        text: content.text,
        contextInfo: { stanzaId: quoted.id, participant: quoted.authorJid, quotedMessage: quoted.message },
      },
    }
  }
  if ('location' in content) {
    const { latitude, longitude, name, address } = content.location
    return { locationMessage: { degreesLatitude: latitude, degreesLongitude: longitude, name, address } }
  }
  if ('contact' in content) return { contactMessage: content.contact }
  if ('reaction' in content) {
    const known = target(content.reaction.messageId)
    return {
      reactionMessage: { key: keyOf(known), text: content.reaction.emoji, senderTimestampMs: Date.now() },
    }
  }
  if ('poll' in content) {
    const { name, options: choices, selectableCount = 1 } = content.poll
    return {
      messageContextInfo: { messageSecret: randomBytes(32) },
      pollCreationMessageV3: {
        name,
        options: choices.map((optionName) => ({ optionName })),
        selectableOptionsCount: selectableCount,
      },
    }
  }
  if ('pollVote' in content) {
    const poll = target(content.pollVote.pollId)
    return { pollUpdateMessage: encryptPollVote(poll, sender, keyOf(poll), content.pollVote.options) }
  }
  if ('edit' in content) {
    const known = target(content.edit.messageId)
    if (known.authorJid !== sender.jid)
      throw new SandboxError('invalid_request', 'only the author can edit a message')
    return {
      protocolMessage: {
        type: proto.Message.ProtocolMessage.Type.MESSAGE_EDIT,
        key: keyOf(known),
        editedMessage: { conversation: content.edit.text },
        timestampMs: Date.now(),
      },
    }
  }
  const known = target(content.delete.messageId)
  if (known.authorJid !== sender.jid)
    throw new SandboxError('invalid_request', 'only the author can delete a message')
  return { protocolMessage: { type: proto.Message.ProtocolMessage.Type.REVOKE, key: keyOf(known) } }
}

/**
 * A vote as WhatsApp encrypts it: AES-GCM under a key derived from the poll's message
 * secret, bound to the poll id, the poll creator and the voter. Creator and voter are
 * the bare phone JIDs — the same strings a receiver passes to `decryptPollVote`.
 */
function encryptPollVote(
  poll: KnownMessage,
  voter: SimUser,
  pollKey: proto.IMessageKey,
  chosen: string[],
): proto.Message.IPollUpdateMessage {
  const secret = poll.message.messageContextInfo?.messageSecret
  const creation =
    poll.message.pollCreationMessage ??
    poll.message.pollCreationMessageV2 ??
    poll.message.pollCreationMessageV3
  if (!secret || !creation) throw new SandboxError('invalid_request', `message ${poll.id} is not a poll`)
  const known = new Set((creation.options ?? []).map((o) => o.optionName))
  const unknown = chosen.filter((o) => !known.has(o))
  if (unknown.length)
    throw new SandboxError('invalid_request', `not options of this poll: ${unknown.join(', ')}`)
  const creatorJid = jidNormalizedUser(poll.authorJid)
  const voterJid = voter.jid
  const vote = proto.Message.PollVoteMessage.encode({
    selectedOptions: chosen.map((o) => sha256(Buffer.from(o))),
  }).finish()
  const signal = Buffer.concat([
    Buffer.from(poll.id),
    Buffer.from(creatorJid),
    Buffer.from(voterJid),
    Buffer.from('Poll Vote'),
    Buffer.from([1]),
  ])
  const key = hmacSign(signal, hmacSign(secret, new Uint8Array(32), 'sha256'), 'sha256')
  const encIv = randomBytes(12)
  const encPayload = aesEncryptGCM(vote, key, encIv, Buffer.from(`${poll.id}\u0000${voterJid}`))
  return { pollCreationMessageKey: pollKey, vote: { encPayload, encIv }, senderTimestampMs: Date.now() }
}

/** The messages a chat has seen, for replies, reactions, edits and votes to point at. */
export function knownFromReceived(received: ReceivedMessage, accountJid: string): KnownMessage {
  return {
    id: received.id,
    authorJid: jidNormalizedUser(received.from),
    fromAccount: jidNormalizedUser(received.from) === accountJid,
    message: received.message,
  }
}
