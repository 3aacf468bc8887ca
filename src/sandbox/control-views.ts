import { proto } from '@whiskeysockets/baileys'
import type { Account, Activity, Contact, Group, InboxMessage, SandboxInfo } from './control-schemas.ts'
import type { ClientActivity } from './message-router.ts'
import type { ReceivedMessage, SimGroup, SimUser } from './network.ts'
import type { SandboxServer } from './server.ts'

/**
 * How the sandbox's objects look over the control API: phone numbers as digit strings,
 * JIDs and ids — never key material (a `SimUser` holds its account key pair and Signal
 * state; none of it is copied here).
 */

export function toInfo(sandbox: SandboxServer): SandboxInfo {
  return {
    websocketUrl: sandbox.websocketUrl,
    noiseRootPublicKey: Buffer.from(sandbox.rootPublicKey).toString('base64'),
    seed: sandbox.network.seed,
    accounts: sandbox.network.users('account').length,
    contacts: sandbox.network.users('contact').length,
    groups: sandbox.network.allGroups().length,
  }
}

export function toAccount(sandbox: SandboxServer, user: SimUser): Account {
  return {
    phoneNumber: user.phoneNumber,
    jid: user.jid,
    lid: user.lid,
    lidJid: user.lidJid,
    pushName: user.pushName,
    linkedDevices: [...user.devices.values()].map((device) => ({
      deviceId: device.deviceId,
      linkedAt: device.linkedAt,
      connected: sandbox.router.liveConnection(user, device.deviceId) !== undefined,
    })),
  }
}

export function toContact(user: SimUser): Contact {
  return {
    phoneNumber: user.phoneNumber,
    jid: user.jid,
    lid: user.lid,
    lidJid: user.lidJid,
    pushName: user.pushName,
    online: user.online,
    addressing: user.addressing,
  }
}

export function toGroup(sandbox: SandboxServer, group: SimGroup): Group {
  return {
    jid: group.jid,
    subject: group.subject,
    creator: group.creator,
    createdAt: group.createdAt,
    addressing: group.addressing,
    participants: [...group.participants].map(([phoneNumber, role]) => ({
      phoneNumber,
      lid: sandbox.network.findUser(phoneNumber)?.lid ?? '',
      role,
      ...(group.memberNames.has(phoneNumber) ? { name: group.memberNames.get(phoneNumber) } : {}),
    })),
  }
}

export function toInboxMessage(received: ReceivedMessage): InboxMessage {
  return {
    id: received.id,
    from: received.from,
    to: received.to,
    chat: received.chat,
    timestamp: received.timestamp,
    kind: received.kind,
    text: received.text ?? null,
    // Bytes (media keys, poll secrets) as base64 and enums by name read well in JSON;
    // longs as numbers, since every long a message carries (timestamps, sizes) fits.
    message: proto.Message.toObject(received.message as proto.Message, {
      bytes: String,
      longs: Number,
      enums: String,
    }),
  }
}

export function toActivity(activity: ClientActivity): Activity {
  return {
    at: activity.at,
    kind: activity.kind,
    value: activity.value,
    ...(activity.messageIds ? { messageIds: activity.messageIds } : {}),
    ...(activity.to ? { to: activity.to } : {}),
  }
}
