import type { BinaryNode } from '@whiskeysockets/baileys'
import type { ClientConnection } from './connection.ts'
import type { SimUser } from './network.ts'

/** What an iq handler sees. `user` and `deviceId` are set once the connection has logged in. */
export interface IqContext {
  connection: ClientConnection
  iq: BinaryNode
  /** the iq's first child element, which names the query */
  child?: BinaryNode
  user?: SimUser
  deviceId?: number
}

/** Return the result's children (or nothing for an empty result); throw IqFailure for an error iq. */
export type IqHandler = (context: IqContext) => BinaryNode[] | undefined | Promise<BinaryNode[] | undefined>

/** An iq answered with `<error code text>`, as WhatsApp does for a bad query. */
export class IqFailure extends Error {
  readonly code: number
  readonly text: string

  constructor(code: number, text: string) {
    super(`${code} ${text}`)
    this.code = code
    this.text = text
  }
}

const keyOf = (xmlns: string, type: string, childTag: string): string => `${xmlns}|${type}|${childTag}`

/**
 * Routes client iqs by (xmlns, type, first child tag) to the handler registered for them.
 * Queries nobody registered get an empty result, which is what WhatsApp answers for
 * the many set-and-forget iqs (passive, tokens, props) a client sends.
 */
export class IqRouter {
  private readonly handlers = new Map<string, IqHandler>()
  readonly seen = new Map<string, number>()

  register(xmlns: string, type: 'get' | 'set', childTag: string, handler: IqHandler): this {
    this.handlers.set(keyOf(xmlns, type, childTag), handler)
    return this
  }

  async handle(context: IqContext): Promise<void> {
    const { iq, connection } = context
    const key = keyOf(iq.attrs.xmlns ?? '', iq.attrs.type ?? '', context.child?.tag ?? '')
    this.seen.set(key, (this.seen.get(key) ?? 0) + 1)
    const handler = this.handlers.get(key)
    try {
      const content = handler ? await handler(context) : undefined
      connection.iqResult(iq, content)
    } catch (error) {
      if (error instanceof IqFailure) connection.iqError(iq, error.code, error.text)
      else throw error
    }
  }
}
