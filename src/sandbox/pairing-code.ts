import { randomBytes } from 'node:crypto'
import {
  aesDecryptCTR,
  aesDecryptGCM,
  aesEncryptCTR,
  type BinaryNode,
  Curve,
  derivePairingCodeKey,
  getBinaryNodeChildBuffer,
  hkdf,
  jidDecode,
  type KeyPair,
} from '@whiskeysockets/baileys'
import type { ClientConnection } from './connection.ts'
import { SERVER_JID } from './connection.ts'
import { SandboxError } from './errors.ts'
import { IqFailure, type IqRouter } from './iq-router.ts'
import { nowSeconds } from './network.ts'

/**
 * The phone's half of "link with phone number". The client wraps an ephemeral key with a
 * key derived from the 8-character code (PBKDF2 → AES-CTR, no integrity); the phone, after
 * its user types the code, unwraps it, wraps its own and sends it back (primary_hello);
 * the client answers with an AES-GCM key bundle (companion_finish). A mistyped code only
 * shows there, as a GCM authentication failure, exactly as on a real phone. Both sides
 * then derive the same ADV secret, which keys the pair-success HMAC.
 */

const CODE_ALPHABET = /^[1-9A-HJ-NP-TV-Z]{8}$/
const WRAPPED_EPHEMERAL_LENGTH = 32 + 16 + 32
const KEY_BUNDLE_LENGTH = 32 + 12 + 96 + 16

export interface CompanionHello {
  phoneNumber: string
  wrappedEphemeral: Buffer
  noisePublic: Buffer
}

interface PrimaryHello {
  companionEphemeral: Buffer
  primaryEphemeral: KeyPair
  primaryIdentity: KeyPair
}

/** A pairing-code link in progress on one connection. */
export interface PendingCodeLink {
  hello: CompanionHello
  ref: Buffer
  primary?: PrimaryHello
  /** settles when the client's companion_finish arrives for the code last typed */
  settle?: (outcome: { advSecret: Buffer; identityPublic: Buffer } | Error) => void
}

/** What a user types is forgiving about case, spaces and the dash: `abcd-efgh` = `ABCDEFGH`. */
export function normalizeTypedCode(typed: string): string {
  const code = typed.replace(/[\s-]/g, '').toUpperCase()
  if (!CODE_ALPHABET.test(code)) {
    throw new SandboxError(
      'invalid_request',
      'a pairing code is 8 characters from 1-9 and A-Z without I, O and U',
    )
  }
  return code
}

async function wrapEphemeral(code: string, publicKey: Uint8Array): Promise<Buffer> {
  const salt = randomBytes(32)
  const iv = randomBytes(16)
  const key = await derivePairingCodeKey(code, salt)
  return Buffer.concat([salt, iv, aesEncryptCTR(publicKey, key, iv)])
}

async function unwrapEphemeral(code: string, wrapped: Buffer): Promise<Buffer> {
  const key = await derivePairingCodeKey(code, wrapped.subarray(0, 32))
  return aesDecryptCTR(wrapped.subarray(48, WRAPPED_EPHEMERAL_LENGTH), key, wrapped.subarray(32, 48))
}

function bytes(node: BinaryNode | undefined, tag: string): Buffer {
  const value = getBinaryNodeChildBuffer(node, tag)
  if (!value) throw new IqFailure(400, 'bad-request')
  return Buffer.from(value)
}

export function parseCompanionHello(registration: BinaryNode): CompanionHello {
  const wrappedEphemeral = bytes(registration, 'link_code_pairing_wrapped_companion_ephemeral_pub')
  if (wrappedEphemeral.length !== WRAPPED_EPHEMERAL_LENGTH) throw new IqFailure(400, 'bad-request')
  const phoneNumber = jidDecode(registration.attrs.jid ?? '')?.user
  if (!phoneNumber || !/^\d{6,15}$/.test(phoneNumber)) throw new IqFailure(400, 'bad-request')
  return { phoneNumber, wrappedEphemeral, noisePublic: bytes(registration, 'companion_server_auth_key_pub') }
}

/** The phone after its user typed `code`: the primary_hello notification and what the finish needs. */
export async function buildPrimaryHello(
  pending: PendingCodeLink,
  code: string,
  primaryIdentity: KeyPair,
): Promise<{ notification: BinaryNode; primary: PrimaryHello }> {
  const companionEphemeral = await unwrapEphemeral(code, pending.hello.wrappedEphemeral)
  const primaryEphemeral = Curve.generateKeyPair()
  const notification: BinaryNode = {
    tag: 'notification',
    attrs: {
      from: SERVER_JID,
      type: 'link_code_companion_reg',
      id: randomBytes(8).toString('hex'),
      t: String(nowSeconds()),
    },
    content: [
      {
        tag: 'link_code_companion_reg',
        attrs: { stage: 'primary_hello' },
        // every child must be bytes: Baileys reads them with getBinaryNodeChildBuffer
        content: [
          {
            tag: 'link_code_pairing_wrapped_primary_ephemeral_pub',
            attrs: {},
            content: await wrapEphemeral(code, primaryEphemeral.public),
          },
          { tag: 'primary_identity_pub', attrs: {}, content: Buffer.from(primaryIdentity.public) },
          { tag: 'link_code_pairing_ref', attrs: {}, content: pending.ref },
        ],
      },
    ],
  }
  return { notification, primary: { companionEphemeral, primaryEphemeral, primaryIdentity } }
}

/** Opens companion_finish; a wrong code fails GCM authentication and throws `wrong_code`. */
export function openCompanionFinish(
  primary: PrimaryHello,
  registration: BinaryNode,
): { advSecret: Buffer; identityPublic: Buffer } {
  const wrapped = bytes(registration, 'link_code_pairing_wrapped_key_bundle')
  const identityPublic = bytes(registration, 'companion_identity_public')
  if (wrapped.length !== KEY_BUNDLE_LENGTH) throw new SandboxError('invalid_request', 'malformed key bundle')
  const ephemeralShared = Curve.sharedKey(primary.primaryEphemeral.private, primary.companionEphemeral)
  const bundleKey = hkdf(ephemeralShared, 32, {
    salt: wrapped.subarray(0, 32),
    info: 'link_code_pairing_key_bundle_encryption_key',
  })
  let bundle: Buffer
  try {
    bundle = aesDecryptGCM(wrapped.subarray(44), bundleKey, wrapped.subarray(32, 44), Buffer.alloc(0))
  } catch {
    throw new SandboxError(
      'wrong_code',
      'the code typed on the phone does not match the code the client shows',
    )
  }
  const bundledIdentity = bundle.subarray(0, 32)
  const bundledPrimary = bundle.subarray(32, 64)
  const advRandom = bundle.subarray(64, 96)
  if (
    !bundledIdentity.equals(identityPublic) ||
    !bundledPrimary.equals(Buffer.from(primary.primaryIdentity.public))
  ) {
    throw new SandboxError('invalid_request', 'the key bundle names other identities')
  }
  const identityShared = Curve.sharedKey(primary.primaryIdentity.private, identityPublic)
  const advSecret = Buffer.from(
    hkdf(Buffer.concat([ephemeralShared, identityShared, advRandom]), 32, { info: 'adv_secret' }),
  )
  return { advSecret, identityPublic }
}

/** Answers the client's two link_code_companion_reg iqs (hello and finish). */
export function registerPairingCodeIqs(
  router: IqRouter,
  onFinish: (connection: ClientConnection, outcome: { advSecret: Buffer; identityPublic: Buffer }) => void,
): void {
  router.register('md', 'set', 'link_code_companion_reg', ({ connection, child }) => {
    if (!child || !connection.link) throw new IqFailure(400, 'bad-request')
    if (child.attrs.stage === 'companion_hello') {
      const hello = parseCompanionHello(child)
      if (!hello.noisePublic.equals(connection.link.noisePublic)) throw new IqFailure(400, 'bad-request')
      const ref = Buffer.from(randomBytes(16).toString('base64url'))
      connection.codeLink = { hello, ref }
      return [
        {
          tag: 'link_code_companion_reg',
          attrs: {},
          content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: ref }],
        },
      ]
    }
    if (child.attrs.stage === 'companion_finish') {
      const pending = connection.codeLink
      if (!pending?.primary) throw new IqFailure(400, 'bad-request')
      const settle = pending.settle
      pending.settle = undefined
      let outcome: { advSecret: Buffer; identityPublic: Buffer } | Error
      try {
        outcome = openCompanionFinish(pending.primary, child)
      } catch (error) {
        outcome = error as Error
      }
      // The phone says "incorrect code" and lets its user type again; the client waits.
      pending.primary = undefined
      // After our iq result has gone out: pair-success (on success), then tell the typist.
      setImmediate(() => {
        if (!(outcome instanceof Error)) onFinish(connection, outcome)
        settle?.(outcome)
      })
      return undefined
    }
    throw new IqFailure(400, 'bad-request')
  })
}

/** Waits for the client's companion_finish after a primary_hello, bounded by `timeoutMs`. */
export function awaitCompanionFinish(
  pending: PendingCodeLink,
  timeoutMs: number,
): Promise<{ advSecret: Buffer; identityPublic: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.settle = undefined
      reject(new SandboxError('timeout', 'the client did not finish the pairing-code exchange'))
    }, timeoutMs)
    pending.settle = (outcome) => {
      clearTimeout(timer)
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    }
  })
}
