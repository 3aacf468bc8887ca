import { invalidRequest } from './errors.ts'

export const USER_SERVER = 's.whatsapp.net'
export const LEGACY_USER_SERVER = 'c.us'
export const LID_SERVER = 'lid'
export const GROUP_SERVER = 'g.us'
export const BROADCAST_SERVER = 'broadcast'
export const NEWSLETTER_SERVER = 'newsletter'
export const STATUS_JID = 'status@broadcast'

export type ChatKind = 'user' | 'lid' | 'group' | 'broadcast' | 'newsletter' | 'status'

/** Splits `user[:device]@server`; undefined for anything else. */
export function parseJid(jid: string): { user: string; device?: number; server: string } | undefined {
  const at = jid.indexOf('@')
  if (at <= 0 || at === jid.length - 1) return undefined
  const server = jid.slice(at + 1)
  const [user = '', device] = jid.slice(0, at).split(':')
  return { user, ...(device === undefined ? {} : { device: Number(device) }), server }
}

export function chatKind(jid: string): ChatKind | undefined {
  if (jid === STATUS_JID) return 'status'
  const server = parseJid(jid)?.server
  if (server === USER_SERVER || server === LEGACY_USER_SERVER) return 'user'
  if (server === LID_SERVER) return 'lid'
  if (server === GROUP_SERVER) return 'group'
  if (server === BROADCAST_SERVER) return 'broadcast'
  if (server === NEWSLETTER_SERVER) return 'newsletter'
  return undefined
}

/** The device-less form: `15550001234:3@s.whatsapp.net` → `15550001234@s.whatsapp.net`. */
export function bareJid(jid: string): string {
  const parsed = parseJid(jid)
  if (!parsed) return jid
  const server = parsed.server === LEGACY_USER_SERVER ? USER_SERVER : parsed.server
  return `${parsed.user}@${server}`
}

export const phoneOf = (jid: string): string | undefined => {
  const parsed = parseJid(jid)
  return parsed && (parsed.server === USER_SERVER || parsed.server === LEGACY_USER_SERVER)
    ? parsed.user
    : undefined
}

/**
 * Where a message goes, from what people write: a phone number (`628123456789`,
 * `+62 812-345-6789`), a user JID (`…@s.whatsapp.net` or the older `…@c.us`), a LID
 * (`…@lid`) or a group (`…@g.us`). Throws an `invalid_request` naming `field`.
 */
export function normalizeRecipient(input: string, field = 'body.to'): string {
  const value = input.trim()
  const fail = (why: string) => invalidRequest(`${field}: ${why}`, [{ path: field, message: why }])
  if (!value.includes('@')) {
    const digits = value.replace(/[\s+\-().]/g, '')
    if (!/^\d{6,15}$/.test(digits)) throw fail('a phone number is 6–15 digits with the country code')
    return `${digits}@${USER_SERVER}`
  }
  const parsed = parseJid(value)
  if (!parsed) throw fail('not a WhatsApp address')
  switch (parsed.server) {
    case USER_SERVER:
    case LEGACY_USER_SERVER:
      if (!/^\d{6,15}$/.test(parsed.user)) throw fail('the user part of a phone JID is 6–15 digits')
      return `${parsed.user}@${USER_SERVER}`
    case LID_SERVER:
      if (!/^\d{1,20}$/.test(parsed.user)) throw fail('a LID is digits followed by @lid')
      return `${parsed.user}@${LID_SERVER}`
    case GROUP_SERVER:
      if (!/^\d{6,20}(-\d{6,12})?$/.test(parsed.user)) throw fail('not a group JID')
      return `${parsed.user}@${GROUP_SERVER}`
    default:
      throw fail(`messages go to phone numbers, user JIDs, LIDs or groups, not @${parsed.server}`)
  }
}
