import type { GroupMetadata, WASocket } from '@whiskeysockets/baileys'
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

export function baileysGroups(socket: WASocket): EngineGroups {
  return {
    metadata: async (jid) => toGroupReport(await socket.groupMetadata(jid)),
    participating: async () => Object.values(await socket.groupFetchAllParticipating()).map(toGroupReport),
    create: async (subject, participants) => toGroupReport(await socket.groupCreate(subject, participants)),
    setSubject: (jid, subject) => socket.groupUpdateSubject(jid, subject),
    setDescription: (jid, description) => socket.groupUpdateDescription(jid, description),
    updateParticipants: async (jid, participants, action: ParticipantAction) =>
      (await socket.groupParticipantsUpdate(jid, participants, action)).map((r) => ({
        jid: r.jid ?? '',
        status: r.status,
      })),
    leave: (jid) => socket.groupLeave(jid),
    inviteCode: async (jid) => (await socket.groupInviteCode(jid)) ?? '',
    revokeInvite: async (jid) => (await socket.groupRevokeInvite(jid)) ?? '',
  }
}
