import { bareJid, chatKind, phoneOf } from '../domain/jid.ts'
import type { ContactReport } from '../engine/engine.ts'
import type { DomainEventMap } from '../events/catalogue.ts'
import { CONTACT_FIELDS } from '../events/event-schemas.ts'
import type { ContactRecord, ContactsRepository, ContactUpsert } from '../store/contacts.repository.ts'
import type { Executor } from '../store/schema.ts'

export type ContactUpdate = DomainEventMap['contact.update']
export type Person = DomainEventMap['presence.update']['participant']

type ContactField = (typeof CONTACT_FIELDS)[number]

const isLid = (jid: string | null | undefined): jid is string => Boolean(jid && chatKind(jid) === 'lid')

/**
 * The session's contacts as events see them: writes that say what they changed (for
 * `contact.update`), and people named by both their addresses wherever the LID map knows
 * the other one.
 */
export class ContactBook {
  private readonly contacts: ContactsRepository

  constructor(contacts: ContactsRepository) {
    this.contacts = contacts
  }

  /**
   * Merges what is known, as the repository does (a value once learnt is never blanked),
   * and returns one change per contact whose stored name, push name, verified name, LID or
   * phone is now different — a contact stored for the first time included.
   */
  async remember(sessionId: string, upserts: ContactUpsert[], trx: Executor): Promise<ContactUpdate[]> {
    if (upserts.length === 0) return []
    const merged = new Map<string, ContactUpsert>()
    for (const upsert of upserts) merged.set(upsert.jid, { ...merged.get(upsert.jid), ...known(upsert) })
    const stored = new Map(
      (await this.contacts.listByJids(sessionId, [...merged.keys()], trx)).map((c) => [c.jid, c]),
    )
    const updates: ContactUpdate[] = []
    const writes: ContactUpsert[] = []
    for (const upsert of merged.values()) {
      const before = stored.get(upsert.jid)
      const after = { ...fieldsOf(before), ...known(upsert) }
      const changed = CONTACT_FIELDS.filter((field) => (after[field] ?? null) !== (before?.[field] ?? null))
      // Most messages come from someone already stored as they are: nothing to write.
      const businessChanged = upsert.isBusiness !== undefined && upsert.isBusiness !== before?.isBusiness
      if (before && changed.length === 0 && !businessChanged) continue
      writes.push(upsert)
      if (changed.length === 0) continue
      updates.push({
        jid: upsert.jid,
        lid: after.lid ?? null,
        phone: after.phone ?? null,
        changed,
        name: after.name ?? null,
        pushName: after.pushName ?? null,
        verifiedName: after.verifiedName ?? null,
      })
    }
    if (writes.length) await this.contacts.upsertMany(sessionId, writes, trx)
    return updates
  }

  /**
   * Contacts as the engine reports them, each under its phone JID when the LID map knows the
   * number (Baileys names people by whichever address the chat used, often their LID), with
   * what changed.
   */
  async rememberReports(
    sessionId: string,
    reports: ContactReport[],
    trx: Executor,
  ): Promise<ContactUpdate[]> {
    const contacts: ContactUpsert[] = []
    for (const report of reports) {
      const contact = toContact(report)
      const pn = isLid(contact.jid) ? await this.contacts.pnForLid(sessionId, contact.jid, trx) : undefined
      contacts.push(pn ? { ...contact, jid: pn, lid: contact.jid, phone: phoneOf(pn) } : contact)
    }
    return this.remember(sessionId, contacts, trx)
  }

  /**
   * Records that `lid` is `pn`, and puts the LID on the contact stored under `pn` when it
   * lacks it (a change). Returns that change, if any.
   */
  async mapLid(sessionId: string, lid: string, pn: string, trx: Executor): Promise<ContactUpdate[]> {
    await this.contacts.mapLid(sessionId, lid, pn, trx)
    const [contact] = await this.contacts.listByJids(sessionId, [pn], trx)
    if (!contact || contact.lid === lid) return []
    return this.remember(sessionId, [{ jid: pn, lid }], trx)
  }

  /**
   * A person from how WhatsApp addressed them (phone JID or LID, device suffix allowed) and
   * the other address when it gave one; the LID map fills in what is missing.
   */
  async person(sessionId: string, address: string, alternate?: string, trx?: Executor): Promise<Person> {
    const a = bareJid(address)
    const b = alternate ? bareJid(alternate) : undefined
    let lid: string | null = isLid(a) ? a : isLid(b) ? b : null
    let pn: string | null = !isLid(a) ? a : b !== undefined && !isLid(b) ? b : null
    if (!pn && lid) pn = (await this.contacts.pnForLid(sessionId, lid, trx)) ?? null
    if (!lid && pn) lid = (await this.contacts.lidForPn(sessionId, pn, trx)) ?? null
    return { jid: pn ?? lid ?? a, lid, phone: pn ? (phoneOf(pn) ?? null) : null }
  }
}

function toContact(contact: ContactReport): ContactUpsert {
  const jid = bareJid(contact.jid)
  const phone = phoneOf(jid)
  return {
    jid,
    ...(contact.lid ? { lid: contact.lid } : {}),
    ...(phone ? { phone } : {}),
    ...(contact.name ? { name: contact.name } : {}),
    ...(contact.pushName ? { pushName: contact.pushName } : {}),
    ...(contact.verifiedName ? { verifiedName: contact.verifiedName } : {}),
  }
}

function fieldsOf(contact: ContactRecord | undefined): Partial<Record<ContactField, string | null>> {
  if (!contact) return {}
  return Object.fromEntries(CONTACT_FIELDS.map((field) => [field, contact[field]]))
}

/** Only what the source knows: absent and null fields keep the stored value. */
function known(upsert: ContactUpsert): ContactUpsert {
  return Object.fromEntries(
    Object.entries(upsert).filter(([, value]) => value !== undefined && value !== null),
  ) as ContactUpsert
}
