import { randomBytes } from 'node:crypto'
import {
  type BinaryNode,
  type ChatModification,
  chatModificationToAppPatch,
  encodeSyncdPatch,
  getBinaryNodeChildren,
  type LTHashState,
  newLTHashState,
  proto,
  type WAPatchName,
} from '@whiskeysockets/baileys'
import type { ClientConnection } from './connection.ts'
import type { MessageRouter } from './message-router.ts'
import type { SimUser } from './network.ts'

/** One app state collection as the server keeps it: the patches in order, and where they lead. */
export interface AppStateCollection {
  /** the LT hash state after the newest patch; its version is the collection's */
  state: LTHashState
  /** encoded `SyncdPatch`es, the patch of version `n` at index `n - 1` */
  patches: Uint8Array[]
}

/** An account's app state: the sync key its phone shares with linked devices, and its collections. */
export interface AccountAppState {
  keyId: Uint8Array
  keyData: Uint8Array
  collections: Map<WAPatchName, AppStateCollection>
}

export function newAccountAppState(): AccountAppState {
  return { keyId: randomBytes(6), keyData: randomBytes(32), collections: new Map() }
}

/** What an account's phone changes about a chat; each field is its own app state mutation. */
export interface ChatStateChange {
  archived?: boolean
  pinned?: boolean
  /** epoch ms the mute ends; -1 mutes for ever; null unmutes */
  mutedUntil?: number | null
  /** true marks the chat read, false marks it unread */
  read?: boolean
}

/**
 * The protocol message with which a phone gives a linked device its app state sync key.
 * Baileys stores the key and asks for any collection it could not decrypt before.
 */
export function appStateKeyShare(appState: AccountAppState): proto.IMessage {
  return {
    protocolMessage: {
      type: proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_SHARE,
      appStateSyncKeyShare: {
        keys: [
          {
            keyId: { keyId: appState.keyId },
            keyData: {
              keyData: appState.keyData,
              fingerprint: { rawId: 1, currentIndex: 0, deviceIndexes: [0] },
              timestamp: Date.now(),
            },
          },
        ],
      },
    },
  }
}

/** The app state patches one chat change becomes, in the collections WhatsApp keeps them in. */
export function chatChangeModifications(change: ChatStateChange): ChatModification[] {
  const modifications: ChatModification[] = []
  if (change.archived !== undefined) modifications.push({ archive: change.archived, lastMessages: [] })
  if (change.pinned !== undefined) modifications.push({ pin: change.pinned })
  // Baileys' own type for `mute` is a number or null; -1 is WhatsApp's "for ever"
  if (change.mutedUntil !== undefined) modifications.push({ mute: change.mutedUntil })
  if (change.read !== undefined) modifications.push({ markRead: change.read, lastMessages: [] })
  return modifications
}

/**
 * Appends one mutation to its collection, encrypted and MACed with the account's key exactly
 * as a phone does (Baileys' own encoder), and returns the collection's new version.
 */
export async function appendMutation(
  appState: AccountAppState,
  modification: ChatModification,
  jid: string,
): Promise<{ collection: WAPatchName; version: number }> {
  const patchCreate = chatModificationToAppPatch(modification, jid)
  const keyId = Buffer.from(appState.keyId).toString('base64')
  const collection = appState.collections.get(patchCreate.type) ?? {
    state: newLTHashState(),
    patches: [],
  }
  const { patch, state } = await encodeSyncdPatch(patchCreate, keyId, collection.state, async (id) =>
    id === keyId ? proto.Message.AppStateSyncKeyData.fromObject({ keyData: appState.keyData }) : null,
  )
  const encoded = proto.SyncdPatch.encode({ ...patch, version: { version: state.version } }).finish()
  appState.collections.set(patchCreate.type, { state, patches: [...collection.patches, encoded] })
  return { collection: patchCreate.type, version: state.version }
}

/** Appends a contact's address-book entry (name, LID) to the account's contacts collection. */
export async function appendContact(
  appState: AccountAppState,
  contact: { jid: string; fullName: string; firstName?: string; lidJid?: string },
): Promise<{ collection: WAPatchName; version: number }> {
  return appendMutation(
    appState,
    {
      contact: {
        fullName: contact.fullName,
        ...(contact.firstName ? { firstName: contact.firstName } : {}),
        ...(contact.lidJid ? { lidJid: contact.lidJid } : {}),
      },
    },
    contact.jid,
  )
}

/**
 * The answer to `w:sync:app:state`: for each collection asked about, every patch after the
 * version the client has. No snapshots: a client at version 0 gets the patches from the
 * first, which decode to the same state.
 */
export function syncAnswer(
  appState: AccountAppState | undefined,
  sync: BinaryNode | undefined,
): BinaryNode[] {
  const collections = getBinaryNodeChildren(sync, 'collection').map((requested): BinaryNode => {
    const name = (requested.attrs.name ?? '') as WAPatchName
    const known = Number(requested.attrs.version ?? '0') || 0
    const collection = appState?.collections.get(name)
    const newer = collection ? collection.patches.slice(known) : []
    return {
      tag: 'collection',
      attrs: { name, version: String(Math.max(known, collection?.state.version ?? 0)) },
      ...(newer.length
        ? {
            content: [
              {
                tag: 'patches',
                attrs: {},
                content: newer.map((patch): BinaryNode => ({ tag: 'patch', attrs: {}, content: patch })),
              },
            ],
          }
        : {}),
    }
  })
  return [{ tag: 'sync', attrs: {}, content: collections }]
}

/** Tells an account's devices that a collection has new patches; Baileys fetches them. */
export function serverSyncNotification(collection: WAPatchName, version: number): BinaryNode {
  return {
    tag: 'notification',
    attrs: {
      from: 's.whatsapp.net',
      type: 'server_sync',
      id: randomBytes(8).toString('hex'),
      t: String(Math.floor(Date.now() / 1000)),
    },
    content: [{ tag: 'collection', attrs: { name: collection, version: String(version) } }],
  }
}

const KEY_SHARE_WAIT_MS = 5_000

/**
 * The server side of app state: the phone shares its sync key with each device once (at
 * login), and every change it makes becomes patches announced by `server_sync`.
 */
export class AppStateSync {
  private readonly router: MessageRouter
  private readonly connectionsOf: (user: SimUser) => ClientConnection[]
  /** the id of the key share each device got, by `phone:device`, to wait for its receipt */
  private readonly keyShares = new Map<string, string>()

  constructor(router: MessageRouter, connectionsOf: (user: SimUser) => ClientConnection[]) {
    this.router = router
    this.connectionsOf = connectionsOf
  }

  /** The phone gives a freshly logged-in device the account's key (once per device). */
  async shareKey(connection: ClientConnection): Promise<void> {
    const login = connection.login
    const device = login?.user.devices.get(login.deviceId)
    if (!login || !device) return
    device.appStateKeyShared = true
    login.user.appState ??= newAccountAppState()
    const id = await this.router.sendFromOwnPhone(connection, appStateKeyShare(login.user.appState))
    if (id) this.keyShares.set(`${login.user.phoneNumber}:${login.deviceId}`, id)
  }

  async changeChat(account: SimUser, jid: string, change: ChatStateChange) {
    const appState = await this.sharedAppState(account)
    const applied: { collection: WAPatchName; version: number }[] = []
    for (const modification of chatChangeModifications(change)) {
      applied.push(await appendMutation(appState, modification, jid))
    }
    this.announce(account, applied)
    return applied
  }

  async saveContact(account: SimUser, contact: SimUser, names: { fullName: string; firstName?: string }) {
    const appState = await this.sharedAppState(account)
    const applied = await appendContact(appState, { jid: contact.jid, lidJid: contact.lidJid, ...names })
    this.announce(account, [applied])
    return applied
  }

  reset(): void {
    this.keyShares.clear()
  }

  /**
   * The account's app state, its key already with every connected device: a key share sent
   * at login is waited for (its `peer_msg` receipt), so that the patches that follow decrypt
   * rather than park the collection until the next key share.
   */
  private async sharedAppState(account: SimUser): Promise<AccountAppState> {
    account.appState ??= newAccountAppState()
    const deadline = Date.now() + KEY_SHARE_WAIT_MS
    for (const connection of this.connectionsOf(account)) {
      const id = this.keyShares.get(`${account.phoneNumber}:${connection.login?.deviceId}`)
      while (id && !this.acknowledged(account, id) && Date.now() < deadline && !connection.closed) {
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    }
    return account.appState
  }

  private acknowledged(account: SimUser, messageId: string): boolean {
    return (this.router.activity.get(account.phoneNumber) ?? []).some(
      (a) => a.kind === 'receipt' && a.messageIds?.includes(messageId),
    )
  }

  /** One `server_sync` per collection, naming its newest version. */
  private announce(account: SimUser, applied: { collection: WAPatchName; version: number }[]): void {
    const newest = new Map<WAPatchName, number>()
    for (const { collection, version } of applied) newest.set(collection, version)
    for (const [collection, version] of newest) {
      this.router.sendRaw(account, serverSyncNotification(collection, version))
    }
  }
}
