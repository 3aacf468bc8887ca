import type { ClientConnection } from './connection.ts'
import { SandboxError } from './errors.ts'
import type { SimUser } from './network.ts'

/**
 * Faults a test can inject, each reproducing what WhatsApp (or a network) really does and
 * the close code Baileys reports for it:
 * - `drop`: the TCP connection dies (Baileys: 428 connectionClosed)
 * - `silence`: the server stops answering; Baileys times out its keep-alive (408)
 * - `conflict`: another client took over the session (440 connectionReplaced)
 * - `logout`: the phone removed the device (401 loggedOut); the device is gone for good
 * - `restart-required`: stream error 515, as after pairing
 * - `slow`: every stanza to the account's clients is delayed by `delayMs` (0 clears it)
 * - `refuse-upgrade`: every WebSocket upgrade gets this HTTP status (e.g. 403), on which
 *   Baileys hangs without a close event; `status: null` clears it
 */
export type SandboxFault =
  | { kind: 'drop' | 'silence' | 'conflict' | 'logout' | 'restart-required'; phoneNumber: string }
  | { kind: 'slow'; phoneNumber: string; delayMs: number }
  | { kind: 'refuse-upgrade'; status: number | null }

/** Applies a per-connection fault; returns how many live connections it hit. */
export function applyConnectionFault(
  fault: Exclude<SandboxFault, { kind: 'refuse-upgrade' | 'slow' }>,
  user: SimUser,
  connections: ClientConnection[],
): number {
  if (fault.kind === 'logout') {
    // The phone's "log out device": the server forgets every linked device of the account.
    user.devices.clear()
  }
  if (connections.length === 0 && fault.kind !== 'logout') {
    throw new SandboxError('not_linked', `${user.phoneNumber} has no client connected`)
  }
  for (const connection of connections) {
    switch (fault.kind) {
      case 'drop':
        connection.terminate()
        break
      case 'silence':
        connection.faults.silent = true
        break
      case 'conflict':
        connection.send({
          tag: 'stream:error',
          attrs: {},
          content: [{ tag: 'conflict', attrs: { type: 'replaced' } }],
        })
        connection.close()
        break
      case 'logout':
        connection.send({ tag: 'stream:error', attrs: { code: '401' } })
        connection.close()
        break
      case 'restart-required':
        connection.send({ tag: 'stream:error', attrs: { code: '515' } })
        connection.close()
        break
    }
  }
  return connections.length
}
