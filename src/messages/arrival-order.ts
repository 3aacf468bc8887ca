const SECOND_MS = 1000
/** chats remembered per ingest; the oldest is forgotten past this */
const MAX_CHATS = 10_000

/**
 * WhatsApp stamps messages to the second, and a person (or an offline replay) easily puts
 * several into one second; the timeline sorts by time, so ties would fall back to an
 * arbitrary order. Messages of a connection arrive in the order they were sent, so within
 * one second each later arrival in a chat gets the next millisecond — never leaving the
 * second WhatsApp gave it, and never moving a message that arrived late into an older one.
 */
export class ArrivalOrder {
  private readonly latest = new Map<string, number>()

  /** The epoch ms to store for a message WhatsApp stamped `timestamp` (a whole second, in ms). */
  stamp(sessionId: string, chatJid: string, timestamp: number): number {
    const key = `${sessionId}\u0000${chatJid}`
    const last = this.latest.get(key)
    const second = timestamp - (timestamp % SECOND_MS)
    const stamped =
      last !== undefined && last >= timestamp && last < second + SECOND_MS - 1 ? last + 1 : timestamp
    // re-inserted so the map's order is least recently used first
    this.latest.delete(key)
    this.latest.set(key, Math.max(stamped, last ?? stamped))
    if (this.latest.size > MAX_CHATS) {
      const oldest = this.latest.keys().next().value
      if (oldest !== undefined) this.latest.delete(oldest)
    }
    return stamped
  }
}
