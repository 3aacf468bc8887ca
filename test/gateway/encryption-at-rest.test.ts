import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { type AuthenticationCreds, BufferJSON } from '@whiskeysockets/baileys'
import { createApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { EncryptionKeyMismatchError } from '../../src/security/encryption-key-check.ts'
import { parseEncryptionKey, SecretBox } from '../../src/security/secret-box.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { createLinkedSession, createSession, type SessionBody } from '../support/sessions.ts'
import { databaseBytes, databaseFile, queryFile } from '../support/sqlite-file.ts'

const CIPHERTEXT = /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** Every way a key could be written down: raw bytes, base64, base64url and hex. */
const encodings = (secret: Uint8Array): Buffer[] => {
  const bytes = Buffer.from(secret)
  return [
    bytes,
    ...['base64', 'base64url', 'hex'].map((e) => Buffer.from(bytes.toString(e as BufferEncoding))),
  ]
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777

describe('credentials and secrets at rest', () => {
  let gateway: TestGateway
  let session: SessionBody
  let box: SecretBox

  const open = <T>(ciphertext: string): T => JSON.parse(box.decrypt(ciphertext), BufferJSON.reviver) as T
  const storedCreds = () =>
    queryFile<{ creds: string }>(
      gateway.dataDir,
      'SELECT creds FROM auth_creds WHERE session_id = ?',
      session.id,
    )
  const storedKeys = () =>
    queryFile<{ type: string; key_id: string; value: string }>(
      gateway.dataDir,
      'SELECT type, key_id, value FROM auth_keys WHERE session_id = ?',
      session.id,
    )

  before(async () => {
    gateway = await startTestGateway()
    session = await createLinkedSession(gateway, 'vault', '15550330001')
    box = new SecretBox(
      parseEncryptionKey((await readFile(join(gateway.dataDir, 'encryption.key'), 'utf8')).trim()),
    )
  })
  after(async () => {
    await gateway.close()
  })

  it('stores the credentials and every Signal key only as ciphertexts', () => {
    const creds = storedCreds()
    assert.equal(creds.length, 1)
    assert.match(creds[0]?.creds ?? '', CIPHERTEXT)
    const keys = storedKeys()
    assert.ok(
      keys.some((k) => k.type === 'pre-key'),
      'the pre-keys are stored',
    )
    for (const key of keys) assert.match(key.value, CIPHERTEXT, `${key.type} ${key.key_id}`)
  })

  it('opens the ciphertexts with the key file, and finds the keys the phone linked', () => {
    const creds = open<AuthenticationCreds>(storedCreds()[0]?.creds ?? '')
    const account = gateway.sandbox.network.getUser('15550330001')
    const devices = [...account.devices.values()]
    assert.equal(devices.length, 1)
    const device = devices[0]
    assert.ok(device)
    assert.ok(Buffer.from(creds.noiseKey.public).equals(device.noisePublic), 'the noise key WhatsApp knows')
    assert.ok(
      Buffer.from(creds.signedIdentityKey.public).equals(device.identityPublic),
      'the identity key the phone signed',
    )
    assert.equal(creds.me?.id.split(':')[0], '15550330001')

    const preKey = storedKeys().find((k) => k.type === 'pre-key')
    const opened = open<{ public: Buffer; private: Buffer }>(preKey?.value ?? '')
    assert.equal(Buffer.from(opened.private).length, 32)
  })

  it('writes no private key to the database file or its log, in any encoding', async () => {
    const creds = open<AuthenticationCreds>(storedCreds()[0]?.creds ?? '')
    // Not advSecretKey: by protocol it is part of the QR, which the session.qr event stores.
    const secrets: [string, Uint8Array][] = [
      ['noiseKey.private', creds.noiseKey.private],
      ['signedIdentityKey.private', creds.signedIdentityKey.private],
      ['signedPreKey.keyPair.private', creds.signedPreKey.keyPair.private],
      ['pairingEphemeralKeyPair.private', creds.pairingEphemeralKeyPair.private],
    ]
    for (const key of storedKeys()
      .filter((k) => k.type === 'pre-key')
      .slice(0, 20)) {
      secrets.push([`pre-key ${key.key_id}`, open<{ private: Buffer }>(key.value).private])
    }
    const onDisk = await databaseBytes(gateway.dataDir)
    assert.ok(onDisk.length > 0)
    // The check itself must be able to fail: a value we know is in the file is found.
    assert.ok(onDisk.includes(Buffer.from(session.id)), 'the scan sees the file contents')
    for (const [name, secret] of secrets) {
      assert.ok(secret.length >= 16, `${name} is key material`)
      for (const encoded of encodings(secret)) assert.ok(!onDisk.includes(encoded), `${name} is not on disk`)
    }
  })

  it('seals the proxy password and webhook HMAC key inside the stored session config', async () => {
    const password = `proxy-${randomBytes(8).toString('hex')}`
    const hmacKey = `hmac-${randomBytes(8).toString('hex')}`
    const created = await createSession(gateway, {
      name: 'sealed-config',
      start: false,
      config: {
        proxy: { server: 'proxy.example:3128', username: 'bob', password },
        webhooks: [{ url: 'https://hooks.example/wa', hmac: { key: hmacKey } }],
      },
    })
    const [row] = queryFile<{ config: string }>(
      gateway.dataDir,
      'SELECT config FROM sessions WHERE id = ?',
      created.id,
    )
    const stored = JSON.parse(row?.config ?? '{}')
    assert.match(stored.proxy.password, CIPHERTEXT)
    assert.match(stored.webhooks[0].hmac.key, CIPHERTEXT)
    assert.equal(box.decrypt(stored.proxy.password), password)
    assert.equal(box.decrypt(stored.webhooks[0].hmac.key), hmacKey)
    const onDisk = await databaseBytes(gateway.dataDir)
    assert.ok(!onDisk.includes(Buffer.from(password)), 'no plaintext proxy password on disk')
    assert.ok(!onDisk.includes(Buffer.from(hmacKey)), 'no plaintext HMAC key on disk')
  })

  it('keeps the encryption key file and the admin key file readable by the owner only', async () => {
    assert.equal(await modeOf(join(gateway.dataDir, 'encryption.key')), 0o600)
    const adminKeyFile = join(gateway.dataDir, 'admin-api-key')
    assert.equal(await modeOf(adminKeyFile), 0o600)
    assert.equal((await readFile(adminKeyFile, 'utf8')).trim(), gateway.adminKey)
    assert.equal(gateway.app.bootstrap.adminKeyFile, adminKeyFile)
  })

  it('stores no admin key in plain text in the database', async () => {
    const onDisk = await databaseBytes(gateway.dataDir)
    assert.ok(!onDisk.includes(Buffer.from(gateway.adminKey)))
  })

  it('uses a configured ENCRYPTION_KEY instead of writing a key file', async () => {
    const key = randomBytes(32)
    const configured = await startTestGateway({
      environment: { ENCRYPTION_KEY: key.toString('hex') },
      sandbox: gateway.sandbox,
    })
    try {
      await assert.rejects(stat(join(configured.dataDir, 'encryption.key')), { code: 'ENOENT' })
      const password = `proxy-${randomBytes(8).toString('hex')}`
      const created = await configured.request('POST', '/api/v1/sessions', {
        body: {
          name: 'own-key',
          start: false,
          config: { proxy: { server: 'proxy.example:3128', password } },
        },
      })
      assert.equal(created.statusCode, 201, created.body)
      const [row] = queryFile<{ config: string }>(
        configured.dataDir,
        'SELECT config FROM sessions WHERE id = ?',
        created.json().id,
      )
      const sealed = JSON.parse(row?.config ?? '{}').proxy.password
      assert.equal(new SecretBox(key).decrypt(sealed), password)
      assert.throws(() => box.decrypt(sealed), 'another key cannot open it')
    } finally {
      await configured.close()
    }
  })

  /** A gateway on `dataDir` with `key` as its ENCRYPTION_KEY. */
  const startWithKey = (dataDir: string) => (key: Buffer) =>
    createApp({
      config: loadConfig({
        DATA_DIR: dataDir,
        PORT: '0',
        LOG_LEVEL: 'silent',
        ENCRYPTION_KEY: key.toString('hex'),
        WEBHOOK_ALLOW_PRIVATE: '1',
      }),
      sandbox: gateway.sandbox,
    })

  it('refuses to start with another encryption key than its database was written with, in one line', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wagate-keycheck-'))
    const start = startWithKey(dataDir)
    const key = randomBytes(32)
    try {
      await (await start(key)).close()
      const refusal = await start(randomBytes(32)).then(
        () => assert.fail('started with another key'),
        (error: unknown) => error,
      )
      assert.ok(refusal instanceof EncryptionKeyMismatchError)
      assert.match(
        refusal.message,
        /not the one this database was written with: start with the same ENCRYPTION_KEY/,
      )
      // Refused without taking the directory: the right key starts.
      await (await start(key)).close()
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('checks a database from before the key check by a secret it stored, before recording the key', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wagate-keycheck-'))
    const start = startWithKey(dataDir)
    const key = randomBytes(32)
    try {
      const first = await start(key)
      const created = await first.http.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        headers: { 'x-api-key': first.bootstrap.adminKey ?? '' },
        payload: { url: 'http://127.0.0.1:9/hook' },
      })
      assert.equal(created.statusCode, 201, created.body)
      await first.close()
      // As a database from before the check: a sealed webhook secret, no check value.
      const file = new DatabaseSync(databaseFile(dataDir))
      file.exec('DELETE FROM instance_settings')
      file.close()
      await assert.rejects(start(randomBytes(32)), EncryptionKeyMismatchError)
      await (await start(key)).close()
      assert.equal(
        queryFile(dataDir, 'SELECT name FROM instance_settings').length,
        1,
        'recorded by the right key',
      )
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
