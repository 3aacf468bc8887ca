import {
  type AuthenticationCreds,
  addTransactionCapability,
  Curve,
  DEFAULT_CONNECTION_CONFIG,
  encodeWAMessage,
  generateSignalPubKey,
  initAuthCreds,
  type KeyPair,
  proto,
  type SignalDataSet,
  type SignalDataTypeMap,
  type SignalKeyStore,
  type SignalRepositoryWithLIDStore,
  signedKeyPair,
  unpadRandomMax16,
} from '@whiskeysockets/baileys'
import pino from 'pino'

/** The public half of a device's Signal keys, as the server hands it out to start a session. */
export interface PreKeyBundle {
  registrationId: number
  identity: Uint8Array
  signedPreKey: { keyId: number; public: Uint8Array; signature: Uint8Array }
  /** at most one one-time prekey when handed out; consumed by the server on hand-out */
  preKeys: { keyId: number; public: Uint8Array }[]
}

export type SignalCiphertextType = 'pkmsg' | 'msg'

const silentLogger = pino({ level: 'silent' })
// makeLibSignalRepository is not exported from the package root; the default connection
// config carries it, which keeps us on Baileys' own Signal code rather than a copy.
const makeSignalRepository = DEFAULT_CONNECTION_CONFIG.makeSignalRepository
const ONE_TIME_PREKEYS = 30

/** A Signal key store in memory: the simulated devices' keys live as long as the sandbox. */
class MemoryKeyStore implements SignalKeyStore {
  readonly table = new Map<string, unknown>()

  async get<T extends keyof SignalDataTypeMap>(type: T, ids: string[]) {
    const found: { [id: string]: SignalDataTypeMap[T] } = {}
    for (const id of ids) {
      const value = this.table.get(`${type}:${id}`)
      if (value !== undefined) found[id] = value as SignalDataTypeMap[T]
    }
    return found
  }

  async set(data: SignalDataSet) {
    for (const [type, byId] of Object.entries(data)) {
      for (const [id, value] of Object.entries(byId ?? {})) {
        if (value === null || value === undefined) this.table.delete(`${type}:${id}`)
        else this.table.set(`${type}:${id}`, value)
      }
    }
  }
}

/** Everything a device needs to pick up where it left off (Buffers inside: serialize with BufferJSON). */
export interface SignalDeviceSnapshot {
  jid: string
  creds: AuthenticationCreds
  keys: [string, unknown][]
  oneTimePreKeys: { keyId: number; pair: KeyPair }[]
  nextPreKeyId: number
}

/**
 * One simulated WhatsApp device — a contact's phone or an account's primary phone — with
 * real Signal keys and sessions, through Baileys' own libsignal repository. It encrypts
 * what simulated people send and decrypts what the linked client sends them.
 */
export class SignalDevice {
  private readonly repository: SignalRepositoryWithLIDStore
  private readonly creds: { -readonly [K in keyof AuthenticationCreds]: AuthenticationCreds[K] } =
    initAuthCreds()
  private readonly oneTimePreKeys: { keyId: number; pair: KeyPair }[] = []
  private nextPreKeyId = 1
  private readonly keys: SignalKeyStore
  private readonly store = new MemoryKeyStore()
  readonly jid: string

  /**
   * @param jid the device's address, e.g. `15550001111@s.whatsapp.net` (device 0)
   * @param identity an identity key pair to use; a primary phone uses its account key so
   *   the device identities it signs and its Signal identity agree
   * @param snapshot a saved state to continue from (sessions, prekeys, sender keys)
   */
  constructor(jid: string, identity?: KeyPair, snapshot?: SignalDeviceSnapshot) {
    this.jid = jid
    if (snapshot) {
      Object.assign(this.creds, snapshot.creds)
      for (const [key, value] of snapshot.keys) this.store.table.set(key, value)
      this.oneTimePreKeys.push(...snapshot.oneTimePreKeys)
      this.nextPreKeyId = snapshot.nextPreKeyId
    } else if (identity) {
      this.creds.signedIdentityKey = identity
      this.creds.signedPreKey = signedKeyPair(identity, 1)
    }
    this.keys = addTransactionCapability(this.store, silentLogger, {
      maxCommitRetries: 1,
      delayBetweenTriesMs: 0,
    })
    this.repository = makeSignalRepository({ creds: this.creds, keys: this.keys }, silentLogger)
    if (!snapshot) this.replenishPreKeys()
  }

  /** The device's whole state, for a sandbox that keeps its world across restarts. */
  snapshot(): SignalDeviceSnapshot {
    return {
      jid: this.jid,
      creds: this.creds,
      keys: [...this.store.table],
      oneTimePreKeys: this.oneTimePreKeys,
      nextPreKeyId: this.nextPreKeyId,
    }
  }

  get identityPublic(): Uint8Array {
    return this.creds.signedIdentityKey.public
  }

  /** Hands out this device's bundle with one one-time prekey, consuming it as the server does. */
  takeBundle(): PreKeyBundle {
    if (this.oneTimePreKeys.length === 0) this.replenishPreKeys()
    const preKey = this.oneTimePreKeys.shift()
    return {
      registrationId: this.creds.registrationId,
      identity: this.creds.signedIdentityKey.public,
      signedPreKey: {
        keyId: this.creds.signedPreKey.keyId,
        public: this.creds.signedPreKey.keyPair.public,
        signature: this.creds.signedPreKey.signature,
      },
      preKeys: preKey ? [{ keyId: preKey.keyId, public: preKey.pair.public }] : [],
    }
  }

  async hasSessionWith(peerJid: string): Promise<boolean> {
    return (await this.repository.validateSession(peerJid)).exists
  }

  /** Starts a Signal session with a peer from its bundle (no-op when one exists). */
  async ensureSession(peerJid: string, peer: PreKeyBundle): Promise<void> {
    if (await this.hasSessionWith(peerJid)) return
    const preKey = peer.preKeys[0]
    await this.repository.injectE2ESession({
      jid: peerJid,
      session: {
        registrationId: peer.registrationId,
        identityKey: generateSignalPubKey(peer.identity),
        signedPreKey: {
          keyId: peer.signedPreKey.keyId,
          publicKey: generateSignalPubKey(peer.signedPreKey.public),
          signature: peer.signedPreKey.signature,
        },
        preKey: preKey ? { keyId: preKey.keyId, publicKey: generateSignalPubKey(preKey.public) } : undefined,
      },
    })
  }

  async encrypt(
    peerJid: string,
    message: proto.IMessage,
  ): Promise<{ type: SignalCiphertextType; ciphertext: Uint8Array }> {
    return this.repository.encryptMessage({ jid: peerJid, data: encodeWAMessage(message) })
  }

  async decrypt(peerJid: string, type: SignalCiphertextType, ciphertext: Uint8Array): Promise<proto.Message> {
    const padded = await this.repository.decryptMessage({ jid: peerJid, type, ciphertext })
    return proto.Message.decode(unpadRandomMax16(padded))
  }

  /** Encrypts for a group with this device's sender key; returns the key's distribution message too. */
  async encryptForGroup(
    groupJid: string,
    authorJid: string,
    message: proto.IMessage,
  ): Promise<{ ciphertext: Uint8Array; senderKeyDistributionMessage: Uint8Array }> {
    // The author address names the sender key; receivers must see the same one in `participant`.
    return this.repository.encryptGroupMessage({
      group: groupJid,
      meId: authorJid,
      data: encodeWAMessage(message),
    })
  }

  async acceptSenderKey(groupJid: string, authorJid: string, distribution: Uint8Array): Promise<void> {
    await this.repository.processSenderKeyDistributionMessage({
      authorJid,
      item: { groupId: groupJid, axolotlSenderKeyDistributionMessage: distribution },
    })
  }

  async decryptGroup(groupJid: string, authorJid: string, ciphertext: Uint8Array): Promise<proto.Message> {
    const padded = await this.repository.decryptGroupMessage({ group: groupJid, authorJid, msg: ciphertext })
    return proto.Message.decode(unpadRandomMax16(padded))
  }

  private replenishPreKeys(): void {
    const added: Record<string, KeyPair> = {}
    for (let i = 0; i < ONE_TIME_PREKEYS; i++) {
      const keyId = this.nextPreKeyId++
      const pair = Curve.generateKeyPair()
      this.oneTimePreKeys.push({ keyId, pair })
      added[keyId] = pair
    }
    void this.keys.set({ 'pre-key': added })
  }
}
