import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { BufferJSON, type KeyPair, type LTHashState, proto, type WAPatchName } from '@whiskeysockets/baileys'
import {
  type LinkedDevice,
  type ParticipantRole,
  type ReceivedMessage,
  SandboxNetwork,
  SimGroup,
  SimUser,
} from './network.ts'
import type { SignalDeviceSnapshot } from './signal-device.ts'

/** How many received messages per person and group a saved sandbox keeps. */
const KEPT_MESSAGES = 200

type StoredMessage = Omit<ReceivedMessage, 'message'> & { message: Uint8Array }

interface UserSnapshot {
  phoneNumber: string
  lid: string
  pushName: string
  kind: 'account' | 'contact'
  addressing: 'lid' | 'pn'
  online: boolean
  lastDeviceId: number
  accountKey: KeyPair
  phone: SignalDeviceSnapshot
  devices: LinkedDevice[]
  received: StoredMessage[]
  /** absent in files saved before app state existed */
  appState?: {
    keyId: Uint8Array
    keyData: Uint8Array
    collections: [WAPatchName, { state: LTHashState; patches: Uint8Array[] }][]
  }
}

interface GroupSnapshot {
  id: string
  subject: string
  subjectTime: number
  creator: string
  createdAt: number
  inviteCode: string
  description: string
  descriptionId: string
  addressing: 'lid' | 'pn'
  announce: boolean
  restrict: boolean
  participants: [string, ParticipantRole][]
  memberNames: [string, string][]
  received: StoredMessage[]
}

interface NetworkSnapshot {
  version: 1
  seed: number
  randomState: number
  users: UserSnapshot[]
  groups: GroupSnapshot[]
}

const storeMessages = (messages: ReceivedMessage[]): StoredMessage[] =>
  messages.slice(-KEPT_MESSAGES).map((m) => ({ ...m, message: proto.Message.encode(m.message).finish() }))

const loadMessages = (messages: StoredMessage[]): ReceivedMessage[] =>
  messages.map((m) => ({ ...m, message: proto.Message.decode(m.message) }))

/**
 * The sandbox's world as JSON: people with their phones' Signal state, linked devices and
 * groups. An embedded sandbox saves it in the data directory so that after a gateway
 * restart its linked sessions log in again, as they would with WhatsApp. It holds private
 * keys of simulated people only — never of real ones — and is written with mode 0600.
 */
export function serializeNetwork(network: SandboxNetwork): string {
  const snapshot: NetworkSnapshot = {
    version: 1,
    seed: network.seed,
    randomState: network.random.state,
    users: network.users().map((user) => ({
      phoneNumber: user.phoneNumber,
      lid: user.lid,
      pushName: user.pushName,
      kind: user.kind,
      addressing: user.addressing,
      online: user.online,
      lastDeviceId: user.lastDeviceId,
      accountKey: user.accountKey,
      phone: user.phone.snapshot(),
      devices: [...user.devices.values()],
      received: storeMessages(user.received),
      ...(user.appState
        ? {
            appState: {
              keyId: user.appState.keyId,
              keyData: user.appState.keyData,
              collections: [...user.appState.collections],
            },
          }
        : {}),
    })),
    groups: network.allGroups().map((group) => ({
      id: group.id,
      subject: group.subject,
      subjectTime: group.subjectTime,
      creator: group.creator,
      createdAt: group.createdAt,
      inviteCode: group.inviteCode,
      description: group.description,
      descriptionId: group.descriptionId,
      addressing: group.addressing,
      announce: group.announce,
      restrict: group.restrict,
      participants: [...group.participants],
      memberNames: [...group.memberNames],
      received: storeMessages(group.received),
    })),
  }
  return JSON.stringify(snapshot, BufferJSON.replacer)
}

export function deserializeNetwork(json: string): SandboxNetwork {
  const snapshot = JSON.parse(json, BufferJSON.reviver) as NetworkSnapshot
  if (snapshot.version !== 1) throw new Error(`unknown sandbox state version ${String(snapshot.version)}`)
  const network = new SandboxNetwork(snapshot.seed)
  network.random.state = snapshot.randomState
  for (const saved of snapshot.users) {
    const user = new SimUser(saved.phoneNumber, saved.lid, saved.pushName, saved.kind, {
      accountKey: saved.accountKey,
      phone: saved.phone,
    })
    user.addressing = saved.addressing
    user.online = saved.online
    user.lastDeviceId = saved.lastDeviceId
    for (const device of saved.devices) user.devices.set(device.deviceId, device)
    user.received.push(...loadMessages(saved.received))
    if (saved.appState)
      user.appState = { ...saved.appState, collections: new Map(saved.appState.collections) }
    network.usersByPhone.set(user.phoneNumber, user)
    network.usersByLid.set(user.lid, user)
  }
  for (const saved of snapshot.groups) {
    const group = new SimGroup(saved.id, saved.subject, saved.creator, saved.createdAt, saved.inviteCode)
    group.subjectTime = saved.subjectTime
    group.description = saved.description
    group.descriptionId = saved.descriptionId
    group.addressing = saved.addressing
    group.announce = saved.announce
    group.restrict = saved.restrict
    for (const [phoneNumber, role] of saved.participants) group.participants.set(phoneNumber, role)
    for (const [phoneNumber, name] of saved.memberNames) group.memberNames.set(phoneNumber, name)
    group.received.push(...loadMessages(saved.received))
    network.groups.set(group.id, group)
  }
  return network
}

/** Writes atomically (temp file, then rename), readable by the owner only. */
export async function saveNetwork(path: string, network: SandboxNetwork): Promise<void> {
  const temporary = `${path}.tmp`
  await writeFile(temporary, serializeNetwork(network), { mode: 0o600 })
  await chmod(temporary, 0o600)
  await rename(temporary, path)
}

export async function loadNetwork(path: string): Promise<SandboxNetwork | undefined> {
  try {
    return deserializeNetwork(await readFile(path, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}
