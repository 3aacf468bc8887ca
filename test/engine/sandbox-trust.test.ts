import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Curve, WA_CERT_DETAILS } from '@whiskeysockets/baileys'
import {
  currentNoiseRootKey,
  WHATSAPP_NOISE_ROOT_KEY,
  withSandboxTrust,
} from '../../src/engine/sandbox-trust.ts'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'

describe('sandbox trust of the Noise root key', () => {
  let sandbox: SandboxServer
  const rootKeysChecked: Buffer[] = []
  const originalVerify = Curve.verify

  before(async () => {
    sandbox = await new SandboxServer({ seed: 41 }).listen()
    // Record which root key Baileys checks the intermediate certificate against.
    Curve.verify = (publicKey, message, signature) => {
      if (publicKey.length === 32) rootKeysChecked.push(Buffer.from(publicKey))
      return originalVerify(publicKey, message, signature)
    }
  })
  after(async () => {
    Curve.verify = originalVerify
    await sandbox.close()
  })

  it('answers WhatsApp’s key outside a sandbox scope and the sandbox key inside it', () => {
    assert.deepEqual(currentNoiseRootKey(), WHATSAPP_NOISE_ROOT_KEY)
    const inside = withSandboxTrust(sandbox.rootPublicKey, () => currentNoiseRootKey())
    assert.deepEqual(inside, Buffer.from(sandbox.rootPublicKey))
    assert.deepEqual(currentNoiseRootKey(), WHATSAPP_NOISE_ROOT_KEY)
  })

  it('checks a sandbox socket’s certificate against the sandbox root, asynchronously, during its handshake', async () => {
    rootKeysChecked.length = 0
    const client = new TestClient(sandbox)
    await client.connectForQr()
    await client.end()
    assert.ok(rootKeysChecked.some((key) => key.equals(Buffer.from(sandbox.rootPublicKey))))
    assert.ok(!rootKeysChecked.some((key) => key.equals(WHATSAPP_NOISE_ROOT_KEY)))
  })

  it('refuses a global reassignment of the root key, which would weaken real connections', () => {
    assert.throws(() => {
      WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(sandbox.rootPublicKey)
    }, /scoped by withSandboxTrust/)
    assert.deepEqual(currentNoiseRootKey(), WHATSAPP_NOISE_ROOT_KEY)
  })
})
