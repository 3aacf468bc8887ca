import { createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { readFile, unlink } from 'node:fs/promises'
import { Agent as HttpsAgent } from 'node:https'
import { encryptedStream, getMediaKeys, normalizeMessageContent, type proto } from '@whiskeysockets/baileys'
import { Agent as UndiciAgent } from 'undici'
import { SandboxError } from './errors.ts'
import type { MediaServer } from './media-server.ts'
import { nowSeconds } from './network.ts'

export type MediaKind = 'image' | 'video' | 'audio' | 'document' | 'sticker'

/** What a simulated person attaches; the bytes are sent exactly as given. */
export interface ContactMedia {
  kind: MediaKind
  bytes: Uint8Array
  mimetype: string
  /** image, video and document only */
  caption?: string
  /** document only; WhatsApp shows "file" without one */
  fileName?: string
  /** audio only: a voice note rather than an audio file */
  ptt?: boolean
  /** audio and video duration, shown before playback */
  seconds?: number
}

/** A media message a linked client sent, after a simulated person downloaded and decrypted it. */
export interface DecryptedMedia {
  kind: MediaKind
  mimetype: string
  bytes: Buffer
  fileName?: string
  caption?: string
  ptt?: boolean
}

/** WhatsApp's MAC on media is the first 10 bytes of the HMAC, appended to the ciphertext. */
const MAC_LENGTH = 10

/**
 * Encrypts `media` the way a WhatsApp phone does, uploads the ciphertext to the sandbox's
 * media server and returns the message a simulated person sends, e.g. with
 * `sandbox.router.send(contact, account, message)`. The key exists only in that message.
 */
export async function encryptMediaForContact(
  server: MediaServer,
  media: ContactMedia,
): Promise<proto.IMessage> {
  const encrypted = await encryptedStream(Buffer.from(media.bytes), media.kind)
  let ciphertext: Buffer
  try {
    ciphertext = await readFile(encrypted.encFilePath)
  } finally {
    // Baileys stages ciphertext in a temp file; nothing else cleans it up.
    await unlink(encrypted.encFilePath).catch(() => undefined)
  }
  const { url, directPath } = server.store(media.kind, ciphertext)
  const common = {
    url,
    directPath,
    mimetype: media.mimetype,
    mediaKey: encrypted.mediaKey,
    fileEncSha256: encrypted.fileEncSha256,
    fileSha256: encrypted.fileSha256,
    fileLength: encrypted.fileLength,
    mediaKeyTimestamp: nowSeconds(),
  }
  switch (media.kind) {
    case 'image':
      return { imageMessage: { ...common, caption: media.caption } }
    case 'video':
      return { videoMessage: { ...common, caption: media.caption, seconds: media.seconds } }
    case 'audio':
      return { audioMessage: { ...common, ptt: media.ptt ?? false, seconds: media.seconds } }
    case 'document':
      return { documentMessage: { ...common, fileName: media.fileName ?? 'file', caption: media.caption } }
    case 'sticker':
      return { stickerMessage: { ...common, isAnimated: false } }
  }
}

/**
 * Downloads and decrypts the media of a message a linked client sent, as the recipient's
 * phone would: from the sandbox's store by direct path, checking the MAC and the
 * plaintext hash so a wrong key or a corrupted upload fails loudly.
 */
export async function decryptClientMedia(
  server: MediaServer,
  message: proto.IMessage,
): Promise<DecryptedMedia> {
  const found = mediaContent(message)
  if (!found) throw new SandboxError('invalid_request', 'the message carries no media')
  const { kind, content } = found
  const location = content.directPath || content.url
  const blob = location ? server.blob(location) : undefined
  if (!blob) throw new SandboxError('not_found', 'the media server holds no blob for this message')
  if (!content.mediaKey || blob.length <= MAC_LENGTH) {
    throw new SandboxError('invalid_request', 'the message has no media key or the blob is truncated')
  }
  const { iv, cipherKey, macKey } = await getMediaKeys(content.mediaKey, kind)
  // getMediaKeys always derives a MAC key; its type only leaves room for callers that skip it.
  if (!macKey) throw new Error('getMediaKeys returned no MAC key')
  const body = blob.subarray(0, -MAC_LENGTH)
  const mac = createHmac('sha256', macKey).update(iv).update(body).digest().subarray(0, MAC_LENGTH)
  if (!timingSafeEqual(mac, blob.subarray(-MAC_LENGTH))) {
    throw new SandboxError('invalid_request', 'the media MAC does not match the message key')
  }
  const decipher = createDecipheriv('aes-256-cbc', cipherKey, iv)
  const bytes = Buffer.concat([decipher.update(body), decipher.final()])
  const sha = createHash('sha256').update(bytes).digest()
  if (content.fileSha256 && !sha.equals(Buffer.from(content.fileSha256))) {
    throw new SandboxError('invalid_request', 'the decrypted media does not match its fileSha256')
  }
  return {
    kind,
    mimetype: content.mimetype ?? '',
    bytes,
    ...('fileName' in content && content.fileName ? { fileName: content.fileName } : {}),
    ...('caption' in content && content.caption ? { caption: content.caption } : {}),
    ...('ptt' in content && content.ptt ? { ptt: true } : {}),
  }
}

type MediaContent =
  | proto.Message.IImageMessage
  | proto.Message.IVideoMessage
  | proto.Message.IAudioMessage
  | proto.Message.IDocumentMessage
  | proto.Message.IStickerMessage

/** The media part of a message, past wrappers (ephemeral, view-once, document with caption). */
function mediaContent(message: proto.IMessage): { kind: MediaKind; content: MediaContent } | undefined {
  const inner = normalizeMessageContent(message)
  if (!inner) return undefined
  if (inner.imageMessage) return { kind: 'image', content: inner.imageMessage }
  // Video notes (ptv) are encrypted as video.
  const video = inner.videoMessage ?? inner.ptvMessage
  if (video) return { kind: 'video', content: video }
  if (inner.audioMessage) return { kind: 'audio', content: inner.audioMessage }
  if (inner.documentMessage) return { kind: 'document', content: inner.documentMessage }
  if (inner.stickerMessage) return { kind: 'sticker', content: inner.stickerMessage }
  return undefined
}

// ---- TLS trust for a client, per socket -----------------------------------------------
// The media server's certificate is self-signed and made at start. A client trusts it only
// on the agents below, never process-wide, so a real WhatsApp socket in the same process
// keeps checking WhatsApp's certificates against the system roots.

/** For Baileys' `fetchAgent`: uploads go through `node:https.request` with this agent. */
export function sandboxHttpsAgent(caPem: string): HttpsAgent {
  return new HttpsAgent({ ca: caPem })
}

/**
 * For fetch-based downloads: Baileys' `options.dispatcher` (history and app-state blobs)
 * and `downloadMediaMessage(m, 'buffer', { options: { dispatcher } })` in the app, since
 * media downloads ignore the socket config.
 */
export function sandboxDispatcher(caPem: string): UndiciAgent {
  return new UndiciAgent({ connect: { ca: caPem } })
}

/** The socket config that makes a Baileys client trust the media server for uploads and blobs. */
export function sandboxMediaTrust(caPem: string): {
  fetchAgent: HttpsAgent
  options: { dispatcher: UndiciAgent }
} {
  return { fetchAgent: sandboxHttpsAgent(caPem), options: { dispatcher: sandboxDispatcher(caPem) } }
}
