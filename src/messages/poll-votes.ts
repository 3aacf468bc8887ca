import { decryptPollVote, normalizeMessageContent, proto, sha256 } from '@whiskeysockets/baileys'
import { bareJid } from '../domain/jid.ts'
import type { EngineMessage } from '../engine/engine.ts'
import type { MessageRecord } from '../store/messages.repository.ts'

const present = (values: (string | null | undefined)[]): string[] => [
  ...new Set(values.filter((v): v is string => Boolean(v)).map(bareJid)),
]

/**
 * The option names a poll vote chose, or undefined when it cannot be read. WhatsApp
 * encrypts every vote under a key derived from the poll's message secret and bound to the
 * poll's id, its creator and the voter — so the poll's stored body (the same one Baileys'
 * getMessage hands out) is what opens it. Whether creator and voter are named by phone JID
 * or by LID depends on how the chat is addressed, so each pairing is tried; AES-GCM
 * rejects the wrong ones.
 */
export function decryptVote(
  vote: EngineMessage,
  poll: MessageRecord,
  voter: { jid: string | null; lid: string | null },
  me: { jid: string | null; lid: string | null },
): string[] | undefined {
  const update = normalizeMessageContent(vote.message)?.pollUpdateMessage
  if (!update?.vote?.encPayload || !update.vote.encIv || !poll.raw) return undefined
  const pollMessage = proto.Message.decode(Buffer.from(poll.raw, 'base64'))
  const secret = pollMessage.messageContextInfo?.messageSecret
  const creation =
    pollMessage.pollCreationMessage ?? pollMessage.pollCreationMessageV2 ?? pollMessage.pollCreationMessageV3
  if (!secret?.length || !creation) return undefined
  const creators = poll.fromMe ? present([me.jid, me.lid]) : present([poll.senderJid, poll.senderLid])
  const voters = vote.key.fromMe ? present([me.jid, me.lid]) : present([voter.jid, voter.lid])
  for (const pollCreatorJid of creators) {
    for (const voterJid of voters) {
      let chosen: Uint8Array[]
      try {
        chosen = decryptPollVote(update.vote, {
          pollCreatorJid,
          pollMsgId: poll.waId,
          pollEncKey: secret,
          voterJid,
        }).selectedOptions
      } catch {
        continue
      }
      const byHash = new Map(
        (creation.options ?? []).map((o) => [
          Buffer.from(sha256(Buffer.from(o.optionName ?? ''))).toString('hex'),
          o.optionName ?? '',
        ]),
      )
      return chosen.flatMap((hash) => byHash.get(Buffer.from(hash).toString('hex')) ?? [])
    }
  }
  return undefined
}
