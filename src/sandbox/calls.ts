import type { BinaryNode } from '@whiskeysockets/baileys'
import type { MessageRouter } from './message-router.ts'
import { nowSeconds, type SandboxNetwork, type SimUser } from './network.ts'

/**
 * Calls from simulated people: WhatsApp rings every linked device of the account with an
 * `<offer>`, and when the caller gives up each device gets a `<terminate reason="timeout">`
 * (Baileys reports a missed call). Only the signalling is simulated; there is no media.
 */
export class SandboxCalls {
  private readonly network: SandboxNetwork
  private readonly router: MessageRouter
  private readonly timers = new Set<NodeJS.Timeout>()

  constructor(network: SandboxNetwork, router: MessageRouter) {
    this.network = network
    this.router = router
  }

  /** `from` calls `account`; after `ringMs` (when given) the caller gives up. */
  ring(
    from: SimUser,
    account: SimUser,
    options: { video?: boolean; ringMs?: number } = {},
  ): { callId: string } {
    const callId = this.network.random.hex(16).toUpperCase()
    const lid = from.addressing === 'lid'
    const call = (child: BinaryNode): BinaryNode => ({
      tag: 'call',
      attrs: { from: lid ? from.lidJid : from.jid, id: this.network.messageId(), t: String(nowSeconds()) },
      content: [child],
    })
    const creator = {
      'call-id': callId,
      'call-creator': lid ? from.lidJid : from.jid,
      ...(lid ? { caller_pn: from.jid } : {}),
    }
    const media: BinaryNode[] = [{ tag: 'audio', attrs: { enc: 'opus', rate: '16000' } }]
    if (options.video) media.push({ tag: 'video', attrs: { enc: 'vp8', dec: 'vp8' } })
    this.router.sendRaw(account, call({ tag: 'offer', attrs: creator, content: media }))
    if (options.ringMs !== undefined) {
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        this.router.sendRaw(account, call({ tag: 'terminate', attrs: { ...creator, reason: 'timeout' } }))
      }, options.ringMs)
      this.timers.add(timer)
    }
    return { callId }
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
  }
}
