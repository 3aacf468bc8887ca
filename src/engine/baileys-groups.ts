import type { GroupMetadata, WASocket } from '@whiskeysockets/baileys'
import { AppError, notFound } from '../domain/errors.ts'
import type { EngineGroups, GroupReport, ParticipantAction } from './engine.ts'

const isLid = (jid: string | undefined | null) => Boolean(jid?.endsWith('@lid'))

/** Baileys' group metadata in the engine's shape: each member with phone JID and LID where known. */
export function toGroupReport(metadata: GroupMetadata): GroupReport {
  return {
    jid: metadata.id,
    subject: metadata.subject,
    ...(metadata.desc ? { description: metadata.desc } : {}),
    ...(metadata.owner ? { owner: metadata.owner } : {}),
    ...(metadata.creation ? { createdAt: metadata.creation * 1000 } : {}),
    announce: Boolean(metadata.announce),
    restrict: Boolean(metadata.restrict),
    participants: metadata.participants.map((p) => {
      const phoneJid = isLid(p.id) ? (p.phoneNumber ?? null) : p.id
      return {
        jid: phoneJid ?? p.id,
        lid: isLid(p.id) ? p.id : (p.lid ?? null),
        phone: phoneJid ? (phoneJid.split('@')[0] ?? null) : null,
        role: p.admin === 'superadmin' ? 'superadmin' : p.admin === 'admin' ? 'admin' : 'member',
      }
    }),
  }
}

/**
 * WhatsApp refuses a group query with an error code, which Baileys throws as a Boom whose
 * `data` is that code: a group that does not exist (or that we are no longer in) is not
 * found, a change only admins may make is forbidden. Anything else stays unexpected.
 */
async function asked<T>(what: string, query: () => Promise<T>): Promise<T> {
  try {
    return await query()
  } catch (error) {
    const code = (error as { data?: unknown } | null)?.data
    if (code === 404 || code === 410) throw notFound(what)
    if (code === 401 || code === 403) {
      throw new AppError('forbidden', `WhatsApp refused: the session may not do this in ${what}`)
    }
    throw error
  }
}

export function baileysGroups(socket: WASocket): EngineGroups {
  const group = (jid: string) => `group ${jid}`
  return {
    metadata: (jid) => asked(group(jid), async () => toGroupReport(await socket.groupMetadata(jid))),
    participating: async () => Object.values(await socket.groupFetchAllParticipating()).map(toGroupReport),
    create: async (subject, participants) => toGroupReport(await socket.groupCreate(subject, participants)),
    setSubject: (jid, subject) => asked(group(jid), () => socket.groupUpdateSubject(jid, subject)),
    setDescription: (jid, description) =>
      asked(group(jid), () => socket.groupUpdateDescription(jid, description)),
    updateParticipants: async (jid, participants, action: ParticipantAction) =>
      (await asked(group(jid), () => socket.groupParticipantsUpdate(jid, participants, action))).map((r) => ({
        // LID-addressed groups answer with each member's LID and their number beside it
        jid: r.content?.attrs?.phone_number ?? r.jid ?? '',
        status: r.status,
      })),
    leave: (jid) => asked(group(jid), () => socket.groupLeave(jid)),
    inviteCode: async (jid) => (await asked(group(jid), () => socket.groupInviteCode(jid))) ?? '',
    revokeInvite: async (jid) => (await asked(group(jid), () => socket.groupRevokeInvite(jid))) ?? '',
  }
}
