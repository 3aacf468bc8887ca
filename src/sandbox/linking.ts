import { createHmac, randomBytes } from 'node:crypto'
import {
  type BinaryNode,
  Curve,
  getBinaryNodeChild,
  jidEncode,
  proto,
  WA_ADV_ACCOUNT_SIG_PREFIX,
  WA_ADV_DEVICE_SIG_PREFIX,
} from '@whiskeysockets/baileys'
import { type ClientConnection, SERVER_JID } from './connection.ts'
import { SandboxError } from './errors.ts'
import { LID_SERVER, nowSeconds, type SandboxNetwork, type SimUser, USER_SERVER } from './network.ts'

/** How long each pairing ref is shown by the client: Baileys shows the first for 60 s, the rest 20 s. */
export interface QrSchedule {
  firstRefMs: number
  nextRefMs: number
  refCount: number
}

export const WHATSAPP_QR_SCHEDULE: QrSchedule = { firstRefMs: 60_000, nextRefMs: 20_000, refCount: 6 }

/** A QR string as Baileys renders it: `ref,noiseKey,identityKey,advSecret[,platform]`. */
export interface ParsedQr {
  ref: string
  noisePublic: Buffer
  identityPublic: Buffer
  advSecret: Buffer
}

export function parseQr(qr: string): ParsedQr {
  // Baileys renders `ref,noise,identity,adv[,platform]`; a wa.me link wraps the same after '#'.
  const body = qr.includes('#') ? (qr.split('#')[1] ?? '') : qr
  const [ref, noise, identity, adv] = body.split(',')
  if (!ref || !noise || !identity || !adv) {
    throw new SandboxError(
      'invalid_request',
      'not a WhatsApp linking QR: expected ref,noiseKey,identityKey,advSecret',
    )
  }
  return {
    ref,
    noisePublic: Buffer.from(noise, 'base64'),
    identityPublic: Buffer.from(identity, 'base64'),
    advSecret: Buffer.from(adv, 'base64'),
  }
}

/**
 * Linking a client to an account, as WhatsApp's server and the account's phone do it
 * together: pairing refs for the QR, the phone's signed device identity (pair-success),
 * the client's counter-signature (pair-device-sign), then stream error 515 so the client
 * reconnects and logs in with its new credentials.
 */
export class Linker {
  private readonly network: SandboxNetwork
  private readonly schedule: QrSchedule

  constructor(network: SandboxNetwork, schedule: QrSchedule) {
    this.network = network
    this.schedule = schedule
  }

  /** A registration handshake: hand the client its QR refs. */
  offerRefs(connection: ClientConnection, identityPublic: Buffer, noisePublic: Buffer): void {
    const refs = Array.from({ length: this.schedule.refCount }, () => randomBytes(12).toString('base64'))
    connection.link = { identityPublic, noisePublic, refs, refsIssuedAt: Date.now() }
    connection.send({
      tag: 'iq',
      attrs: { from: SERVER_JID, type: 'set', id: randomBytes(4).toString('hex'), xmlns: 'md' },
      content: [
        {
          tag: 'pair-device',
          attrs: {},
          content: refs.map((ref) => ({ tag: 'ref', attrs: {}, content: Buffer.from(ref) })),
        },
      ],
    })
  }

  /** The ref the client shows now, per Baileys' QR schedule; older ones have expired. */
  currentRefIndex(issuedAt: number, now = Date.now()): number {
    const elapsed = now - issuedAt
    if (elapsed < this.schedule.firstRefMs) return 0
    return 1 + Math.floor((elapsed - this.schedule.firstRefMs) / this.schedule.nextRefMs)
  }

  /** The phone of `user` scans `qr`, shown by one of `connections`. */
  scan(qr: string, user: SimUser, connections: Iterable<ClientConnection>): { deviceId: number } {
    const parsed = parseQr(qr)
    const connection = [...connections].find((c) => !c.closed && c.link?.refs.includes(parsed.ref))
    if (!connection?.link) {
      throw new SandboxError(
        'not_found',
        'no client is showing this QR (it was never issued, or its client is gone)',
      )
    }
    const link = connection.link
    if (link.linkedTo) throw new SandboxError('conflict', 'this QR has already been scanned')
    const shownIndex = this.currentRefIndex(link.refsIssuedAt)
    if (link.refs.indexOf(parsed.ref) < shownIndex) {
      throw new SandboxError('expired', 'this QR has expired; scan the one the client shows now')
    }
    if (!parsed.identityPublic.equals(link.identityPublic) || !parsed.noisePublic.equals(link.noisePublic)) {
      throw new SandboxError('invalid_request', 'the QR keys do not match the client that issued it')
    }
    return this.acceptCompanion(connection, user, parsed.advSecret)
  }

  /**
   * The phone accepts the companion: it signs the companion's identity with the account key
   * (the ADV device identity), wrapped in an HMAC keyed by the shared ADV secret.
   */
  acceptCompanion(connection: ClientConnection, user: SimUser, advSecret: Buffer): { deviceId: number } {
    const link = connection.link
    if (!link) throw new SandboxError('not_found', 'the client is not linking')
    const deviceId = user.allocateDeviceId()
    const details = proto.ADVDeviceIdentity.encode({
      rawId: deviceId,
      timestamp: nowSeconds(),
      keyIndex: deviceId,
      accountType: proto.ADVEncryptionType.E2EE,
      deviceType: proto.ADVEncryptionType.E2EE,
    }).finish()
    const accountSignature = Curve.sign(
      user.accountKey.private,
      Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, details, link.identityPublic]),
    )
    const signed = proto.ADVSignedDeviceIdentity.encode({
      details,
      accountSignatureKey: user.accountKey.public,
      accountSignature,
    }).finish()
    const hmac = createHmac('sha256', advSecret).update(signed).digest()
    const container = proto.ADVSignedDeviceIdentityHMAC.encode({ details: signed, hmac }).finish()
    link.linkedTo = { user, deviceId }
    link.pairSuccessIqId = randomBytes(4).toString('hex')
    user.kind = 'account'
    connection.send({
      tag: 'iq',
      attrs: { from: SERVER_JID, type: 'set', id: link.pairSuccessIqId },
      content: [
        {
          tag: 'pair-success',
          attrs: {},
          content: [
            { tag: 'device-identity', attrs: {}, content: container },
            { tag: 'platform', attrs: { name: 'android' } },
            { tag: 'biz', attrs: { name: user.pushName } },
            {
              tag: 'device',
              attrs: {
                jid: jidEncode(user.phoneNumber, USER_SERVER, deviceId),
                lid: jidEncode(user.lid, LID_SERVER, deviceId),
              },
            },
          ],
        },
      ],
    })
    return { deviceId }
  }

  /**
   * The client's answer to pair-success. A valid counter-signature completes the link:
   * the device is registered and the stream restarts with 515, as WhatsApp does.
   */
  onPairSuccessAnswer(connection: ClientConnection, answer: BinaryNode): boolean {
    const link = connection.link
    if (!link?.linkedTo || answer.attrs.id !== link.pairSuccessIqId) return false
    const { user, deviceId } = link.linkedTo
    const identityNode = getBinaryNodeChild(getBinaryNodeChild(answer, 'pair-device-sign'), 'device-identity')
    if (answer.attrs.type !== 'result' || !(identityNode?.content instanceof Uint8Array)) {
      connection.send({ tag: 'stream:error', attrs: { code: '401' } })
      connection.close()
      return true
    }
    const signed = proto.ADVSignedDeviceIdentity.decode(identityNode.content)
    const deviceSignatureValid =
      signed.details &&
      signed.deviceSignature &&
      Curve.verify(
        link.identityPublic,
        Buffer.concat([
          WA_ADV_DEVICE_SIG_PREFIX,
          signed.details,
          user.accountKey.public,
          link.identityPublic,
        ]),
        signed.deviceSignature,
      )
    if (!deviceSignatureValid) {
      connection.send({ tag: 'stream:error', attrs: { code: '401' } })
      connection.close()
      return true
    }
    user.devices.set(deviceId, {
      deviceId,
      identityPublic: link.identityPublic,
      noisePublic: link.noisePublic,
      platform: 'sandbox',
      linkedAt: nowSeconds(),
    })
    connection.send({ tag: 'stream:error', attrs: { code: '515' } })
    connection.close()
    return true
  }

  /** A login handshake: known device and matching Noise key, or the 401 WhatsApp sends. */
  login(connection: ClientConnection, username: string, deviceId: number): SimUser | undefined {
    const user = this.network.findUser(username)
    const device = user?.devices.get(deviceId)
    if (!user || !device || !connection.noise.clientStaticPublic?.equals(device.noisePublic)) {
      connection.send({ tag: 'failure', attrs: { reason: '401', location: 'sandbox' } })
      connection.close()
      return undefined
    }
    connection.login = { user, deviceId }
    const now = String(nowSeconds())
    connection.send({
      tag: 'success',
      attrs: {
        t: now,
        lid: jidEncode(user.lid, LID_SERVER, deviceId),
        props: '1',
        abprops: '1',
        location: 'sandbox',
        creation: now,
      },
    })
    return user
  }
}
