import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { type AnyMessageContent, downloadMediaMessage } from '@whiskeysockets/baileys'
import pino from 'pino'
import {
  type ContactMedia,
  decryptClientMedia,
  encryptMediaForContact,
  sandboxMediaTrust,
} from '../../src/sandbox/media.ts'
import type { MediaServer } from '../../src/sandbox/media-server.ts'
import type { SimUser } from '../../src/sandbox/network.ts'
import { SandboxServer } from '../../src/sandbox/server.ts'
import { TestClient } from '../support/baileys-client.ts'

const ACCOUNT = '15550004001'
/** a stand-in thumbnail: its presence is what stops Baileys from needing sharp or ffmpeg */
const THUMBNAIL_B64 = Buffer.from('sandbox-thumbnail').toString('base64')

const SAMPLES: { label: string; media: ContactMedia }[] = [
  {
    label: 'an image with a caption',
    media: { kind: 'image', bytes: randomBytes(4_000), mimetype: 'image/jpeg', caption: 'the view' },
  },
  {
    label: 'a video with a caption',
    media: { kind: 'video', bytes: randomBytes(70_000), mimetype: 'video/mp4', caption: 'a clip' },
  },
  {
    label: 'a voice note',
    media: {
      kind: 'audio',
      bytes: randomBytes(9_001),
      mimetype: 'audio/ogg; codecs=opus',
      ptt: true,
      seconds: 2,
    },
  },
  {
    label: 'a document with a file name',
    media: {
      kind: 'document',
      bytes: randomBytes(1_234),
      mimetype: 'application/pdf',
      fileName: 'invoice.pdf',
    },
  },
  { label: 'a sticker', media: { kind: 'sticker', bytes: randomBytes(512), mimetype: 'image/webp' } },
]

/** What the app passes to sendMessage for `media`, with every extra Baileys would otherwise compute. */
function outgoing(media: ContactMedia): AnyMessageContent {
  const bytes = Buffer.from(media.bytes)
  const { mimetype, caption } = media
  switch (media.kind) {
    case 'image':
      return { image: bytes, mimetype, caption, jpegThumbnail: THUMBNAIL_B64, width: 4, height: 3 }
    case 'video':
      return { video: bytes, mimetype, caption, jpegThumbnail: THUMBNAIL_B64 }
    case 'audio': {
      // waveform is read by Baileys but missing from its content type; a variable skips the literal check
      const voiceNote = {
        audio: bytes,
        mimetype,
        ptt: media.ptt,
        seconds: media.seconds,
        waveform: new Uint8Array(64),
      }
      return voiceNote
    }
    case 'document':
      return { document: bytes, mimetype, fileName: media.fileName }
    case 'sticker':
      return { sticker: bytes, mimetype }
  }
}

async function until<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  for (const started = Date.now(); Date.now() - started < timeoutMs; ) {
    const found = probe()
    if (found !== undefined) return found
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`nothing turned up within ${timeoutMs} ms`)
}

describe('sandbox media', () => {
  let sandbox: SandboxServer
  let media: MediaServer
  let trust: ReturnType<typeof sandboxMediaTrust>
  let client: TestClient
  let account: SimUser
  let alice: SimUser
  const logger = pino({ level: 'silent' })

  before(async () => {
    sandbox = await new SandboxServer({ seed: 21 }).listen()
    media = sandbox.media
    trust = sandboxMediaTrust(media.caPem)
    client = new TestClient(sandbox)
    await client.linkByQr(ACCOUNT)
    account = sandbox.network.getUser(ACCOUNT)
    alice = sandbox.network.createUser({ kind: 'contact', phoneNumber: '15550004101', pushName: 'Alice' })
  })
  after(async () => {
    await client?.end()
    await sandbox?.close()
    trust?.fetchAgent.destroy()
    await trust?.options.dispatcher.close()
  })

  describe('from the linked client to a contact', () => {
    for (const { label, media: sample } of SAMPLES) {
      it(`delivers ${label} that the contact decrypts byte for byte`, async () => {
        const sent = await client.sendAndRemember(alice.jid, outgoing(sample))
        const id = sent?.key.id
        assert.ok(id, 'sendMessage returned a message key')
        const received = await until(() => alice.received.find((r) => r.id === id))
        const decrypted = await decryptClientMedia(media, received.message)
        assert.equal(decrypted.kind, sample.kind)
        assert.equal(decrypted.mimetype, sample.mimetype)
        assert.equal(decrypted.caption, sample.caption)
        assert.equal(decrypted.fileName, sample.fileName)
        assert.equal(decrypted.ptt, sample.ptt)
        assert.deepEqual(decrypted.bytes, Buffer.from(sample.bytes))
      })
    }

    it('refuses to decrypt when the media key does not match the blob', async () => {
      const sent = await client.sendAndRemember(alice.jid, outgoing(SAMPLES[0]!.media))
      const received = await until(() => alice.received.find((r) => r.id === sent?.key.id))
      const forged = { imageMessage: { ...received.message.imageMessage, mediaKey: randomBytes(32) } }
      await assert.rejects(decryptClientMedia(media, forged), { code: 'invalid_request' })
    })
  })

  describe('from a contact to the linked client', () => {
    for (const { label, media: sample } of SAMPLES) {
      it(`delivers ${label} that Baileys downloads byte for byte`, async () => {
        const message = await encryptMediaForContact(media, sample)
        const id = sandbox.network.messageId()
        const upsert = client.waitFor('messages.upsert', (u) => u.messages.some((m) => m.key.id === id))
        await sandbox.router.send(alice, account, message, id)
        const arrived = (await upsert).messages.find((m) => m.key.id === id)
        assert.ok(arrived)
        const bytes = await downloadMediaMessage(
          arrived,
          'buffer',
          { options: trust.options },
          { logger, reuploadRequest: client.socket.updateMediaMessage },
        )
        assert.deepEqual(bytes, Buffer.from(sample.bytes))
        const content = arrived.message?.[`${sample.kind}Message`]
        assert.equal(content?.mimetype, sample.mimetype)
        if (sample.caption) assert.equal(content && 'caption' in content && content.caption, sample.caption)
        if (sample.fileName) assert.equal(arrived.message?.documentMessage?.fileName, sample.fileName)
        if (sample.ptt) assert.equal(arrived.message?.audioMessage?.ptt, true)
      })
    }
  })

  describe('the media server', () => {
    it('answers 404 for a direct path it never stored', async () => {
      const response = await fetch(
        `https://${media.hostname}/v/t62.7118-24/unknown.enc?ccb=11-4`,
        trust.options,
      )
      assert.equal(response.status, 404)
    })

    it('rejects an upload without the media_conn auth', async () => {
      const body = randomBytes(64)
      const token = createToken(body)
      const response = await fetch(`https://${media.hostname}/mms/image/${token}?auth=wrong&token=${token}`, {
        ...trust.options,
        method: 'POST',
        body,
      })
      assert.equal(response.status, 401)
    })

    it('rejects an upload whose token is not the hash of its bytes', async () => {
      const token = createToken(randomBytes(64))
      const url = `https://${media.hostname}/mms/image/${token}?auth=${encodeURIComponent(media.auth)}&token=${token}`
      const response = await fetch(url, { ...trust.options, method: 'POST', body: randomBytes(64) })
      assert.equal(response.status, 400)
    })

    it('is not trusted by a client that was not given its certificate', async () => {
      await assert.rejects(fetch(`https://${media.hostname}/v/t62.7118-24/unknown.enc`), (error: Error) => {
        const cause = error.cause as { code?: string } | undefined
        assert.equal(cause?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT')
        return true
      })
    })
  })
})

const createToken = (body: Uint8Array): string => createHash('sha256').update(body).digest('base64url')
