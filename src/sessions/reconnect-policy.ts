import type { CloseInfo } from '../engine/engine.ts'

/**
 * What to do when WhatsApp closes a session's connection, by close code
 * (BAILEYS-NOTES.md). Pure: the session manager acts on the decision.
 */
export type CloseDecision =
  | { action: 'reconnect-now'; reason: string }
  | { action: 'reconnect'; reason: string }
  | { action: 'logged-out'; reason: string }
  | { action: 'fail'; reason: string }

export interface CloseContext {
  /** the session had linked credentials when the connection closed */
  linked: boolean
  /** when the last link completed (515 follows it within milliseconds) */
  linkedAt?: number
  /** recent 440s and 500s, newest last, epoch ms */
  recentConflicts: number[]
  recentBadSessions: number[]
  now: number
}

const WINDOW_MS = 60_000

export function decideOnClose(info: CloseInfo, context: CloseContext): CloseDecision {
  const code = info.code
  const recent = (times: number[]) => times.filter((t) => context.now - t < WINDOW_MS).length
  switch (code) {
    case 515:
      return { action: 'reconnect-now', reason: 'WhatsApp asked for a restart (515)' }
    case 401:
    case 419:
      // 401 can race the 515 that follows a fresh link; the credentials are good then.
      if (context.linkedAt && context.now - context.linkedAt < 15_000) {
        return { action: 'reconnect', reason: 'logged-out signal right after linking (401), retrying' }
      }
      return { action: 'logged-out', reason: 'the device was logged out from the phone (401)' }
    case 403:
      return { action: 'logged-out', reason: 'WhatsApp refused the session (403): the number may be banned' }
    case 411:
      return { action: 'logged-out', reason: 'multi-device mismatch (411): link the number again' }
    case 440:
      // Two clients on one account kick each other forever; retry once, then stop.
      if (recent(context.recentConflicts) >= 1) {
        return {
          action: 'fail',
          reason: 'replaced by another client (440); start the session to take it back',
        }
      }
      return { action: 'reconnect', reason: 'replaced by another client (440), retrying once' }
    case 500:
      if (recent(context.recentBadSessions) >= 2) {
        return { action: 'logged-out', reason: 'bad session (500) repeatedly: link the number again' }
      }
      return { action: 'reconnect', reason: 'bad session (500)' }
    case 408:
      if (!context.linked && /QR refs/i.test(info.message)) {
        return { action: 'fail', reason: 'the QR code was not scanned in time; start the session again' }
      }
      return { action: 'reconnect', reason: `connection timed out (408): ${info.message}` }
    default:
      return { action: 'reconnect', reason: `connection lost (${code ?? 'no code'}): ${info.message}` }
  }
}

/** Capped exponential backoff with "equal jitter": between half and all of the step. */
export function backoffDelay(
  attempt: number,
  options: { initialMs: number; maxMs: number },
  random = Math.random,
) {
  const step = Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, attempt))
  return Math.round(step / 2 + random() * (step / 2))
}
