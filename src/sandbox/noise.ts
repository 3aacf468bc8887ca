import {
  aesDecryptGCM,
  aesEncryptGCM,
  Curve,
  hkdf,
  type KeyPair,
  NOISE_MODE,
  proto,
  sha256,
} from '@whiskeysockets/baileys'

/**
 * The sandbox's own certificate authority. It plays the part of WhatsApp's long-term root
 * key: the intermediate certificate is signed by `root`, the leaf (the server's static Noise
 * key) by the intermediate. Clients trust `root.public` through `withSandboxTrust`.
 */
export class SandboxCertificateAuthority {
  readonly root: KeyPair = Curve.generateKeyPair()
  private readonly intermediate: KeyPair = Curve.generateKeyPair()

  certificateChainFor(serverStaticPublic: Uint8Array): Uint8Array {
    const Details = proto.CertChain.NoiseCertificate.Details
    const now = Math.floor(Date.now() / 1000)
    const validity = { notBefore: now - 60, notAfter: now + 10 * 365 * 86_400 }
    // issuerSerial must be explicit: proto3 leaves an absent field null, and Baileys
    // compares it with `!==` against WA_CERT_DETAILS.SERIAL (0).
    const intermediateDetails = Details.encode({
      serial: 1,
      issuerSerial: 0,
      key: this.intermediate.public,
      ...validity,
    }).finish()
    const leafDetails = Details.encode({
      serial: 2,
      issuerSerial: 1,
      key: serverStaticPublic,
      ...validity,
    }).finish()
    return proto.CertChain.encode({
      intermediate: {
        details: intermediateDetails,
        signature: Curve.sign(this.root.private, intermediateDetails),
      },
      leaf: { details: leafDetails, signature: Curve.sign(this.intermediate.private, leafDetails) },
    }).finish()
  }
}

const gcmIv = (counter: number): Buffer => {
  const iv = Buffer.alloc(12)
  iv.writeUInt32BE(counter, 8)
  return iv
}

const INTRO_LENGTH = 4
const ROUTING_PREFIX = 'ED'

export type NoiseState = 'await-hello' | 'await-finish' | 'transport'

/**
 * Server side of WhatsApp's Noise_XX_25519_AESGCM_SHA256 handshake and frame transport,
 * the mirror image of Baileys' lib/Utils/noise-handler.js.
 */
export class NoiseServerSession {
  state: NoiseState = 'await-hello'
  clientStaticPublic?: Buffer

  private hash: Buffer
  private salt: Buffer
  private key: Buffer
  private handshakeCounter = 0
  private readonly ephemeral: KeyPair = Curve.generateKeyPair()
  private sendKey?: Buffer
  private receiveKey?: Buffer
  private sendCounter = 0
  private receiveCounter = 0
  private pending: Buffer = Buffer.alloc(0)
  private introSeen = false

  private readonly serverStatic: KeyPair
  private readonly certificateChain: Uint8Array

  constructor(serverStatic: KeyPair, certificateChain: Uint8Array) {
    this.serverStatic = serverStatic
    this.certificateChain = certificateChain
    const mode = Buffer.from(NOISE_MODE)
    this.hash = mode.length === 32 ? mode : sha256(mode)
    this.salt = this.hash
    this.key = this.hash
  }

  /** Buffers raw WebSocket bytes and returns every complete frame (still encrypted in transport). */
  feed(data: Buffer): Buffer[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data
    if (!this.introSeen) {
      if (this.pending.length < INTRO_LENGTH) return []
      if (this.pending.toString('latin1', 0, 2) === ROUTING_PREFIX) {
        // 'ED' 0 1 | 3-byte routing length | routing info | then the 'WA' intro
        const routingLength = this.pending.readUIntBE(4, 3)
        this.pending = this.pending.subarray(7 + routingLength)
      }
      const intro = this.pending.subarray(0, INTRO_LENGTH)
      if (intro.toString('latin1', 0, 2) !== 'WA') throw new Error('not a WhatsApp Noise intro')
      this.mix(intro)
      this.pending = this.pending.subarray(INTRO_LENGTH)
      this.introSeen = true
    }
    const frames: Buffer[] = []
    while (this.pending.length >= 3) {
      const size = this.pending.readUIntBE(0, 3)
      if (this.pending.length < size + 3) break
      frames.push(Buffer.from(this.pending.subarray(3, size + 3)))
      this.pending = this.pending.subarray(size + 3)
    }
    return frames
  }

  /** ClientHello in, ServerHello frame out. */
  answerClientHello(frame: Buffer): Buffer {
    const { clientHello } = proto.HandshakeMessage.decode(frame)
    if (!clientHello?.ephemeral) throw new Error('ClientHello without an ephemeral key')
    const clientEphemeral = Buffer.from(clientHello.ephemeral)
    this.mix(clientEphemeral)
    this.mix(this.ephemeral.public)
    this.mixIntoKey(Curve.sharedKey(this.ephemeral.private, clientEphemeral))
    const encryptedStatic = this.encryptHandshake(this.serverStatic.public)
    this.mixIntoKey(Curve.sharedKey(this.serverStatic.private, clientEphemeral))
    const encryptedPayload = this.encryptHandshake(this.certificateChain)
    this.state = 'await-finish'
    const hello = proto.HandshakeMessage.encode({
      serverHello: { ephemeral: this.ephemeral.public, static: encryptedStatic, payload: encryptedPayload },
    }).finish()
    return this.frame(hello)
  }

  /** ClientFinish in, the client's login or registration payload out; switches to transport. */
  acceptClientFinish(frame: Buffer): proto.ClientPayload {
    const { clientFinish } = proto.HandshakeMessage.decode(frame)
    if (!clientFinish?.static || !clientFinish.payload) throw new Error('incomplete ClientFinish')
    const clientStatic = this.decryptHandshake(clientFinish.static)
    this.clientStaticPublic = clientStatic
    this.mixIntoKey(Curve.sharedKey(this.ephemeral.private, clientStatic))
    const payload = this.decryptHandshake(clientFinish.payload)
    const keys = Buffer.from(hkdf(Buffer.alloc(0), 64, { salt: this.salt, info: '' }))
    this.receiveKey = keys.subarray(0, 32)
    this.sendKey = keys.subarray(32)
    this.state = 'transport'
    return proto.ClientPayload.decode(payload)
  }

  decrypt(frame: Buffer): Buffer {
    if (!this.receiveKey) throw new Error('Noise transport not established')
    return aesDecryptGCM(frame, this.receiveKey, gcmIv(this.receiveCounter++), Buffer.alloc(0))
  }

  encryptFrame(plaintext: Uint8Array): Buffer {
    if (!this.sendKey) throw new Error('Noise transport not established')
    return this.frame(aesEncryptGCM(plaintext, this.sendKey, gcmIv(this.sendCounter++), Buffer.alloc(0)))
  }

  private mix(data: Uint8Array): void {
    this.hash = sha256(Buffer.concat([this.hash, data]))
  }

  private mixIntoKey(data: Uint8Array): void {
    const derived = Buffer.from(hkdf(Buffer.from(data), 64, { salt: this.salt, info: '' }))
    this.salt = derived.subarray(0, 32)
    this.key = derived.subarray(32)
    this.handshakeCounter = 0
  }

  private encryptHandshake(plaintext: Uint8Array): Buffer {
    const ciphertext = aesEncryptGCM(plaintext, this.key, gcmIv(this.handshakeCounter++), this.hash)
    this.mix(ciphertext)
    return ciphertext
  }

  private decryptHandshake(ciphertext: Uint8Array): Buffer {
    const plaintext = aesDecryptGCM(
      Buffer.from(ciphertext),
      this.key,
      gcmIv(this.handshakeCounter++),
      this.hash,
    )
    this.mix(ciphertext)
    return plaintext
  }

  private frame(data: Uint8Array): Buffer {
    const out = Buffer.alloc(3 + data.length)
    out.writeUIntBE(data.length, 0, 3)
    out.set(data, 3)
    return out
  }
}
