/**
 * `libsignal` (Baileys' Signal implementation) reports session changes with
 * `console.info('Closing session:', session)` and similar calls, passing whole session
 * objects that contain private and root keys. Those must never reach our output.
 *
 * We cannot hand libsignal a logger, so the console methods are wrapped once: a call whose
 * first argument is one of libsignal's own message prefixes is dropped, and only its
 * message text (never its arguments) is passed to `onSuppressed`. Every other console call
 * goes through untouched.
 */
const LIBSIGNAL_PREFIXES = [
  'Closing session',
  'Opening session',
  'Removing old closed session',
  'Session already closed',
  'Session already open',
  'Migrating session',
  'Closing open session in favor of incoming prekey bundle',
  'Closing stale open session',
  'Failed to decrypt message with any known session',
  'Session error:',
  'Decrypted message with closed session',
  'V1 session storage migration error',
  'WARNING: Expected pubkey of length 33',
  'Unhandled bucket type',
] as const

type ConsoleMethod = 'log' | 'info' | 'warn' | 'error' | 'debug'
const METHODS: ConsoleMethod[] = ['log', 'info', 'warn', 'error', 'debug']

let suppressedSink: (message: string) => void = () => {}
let installed = false

export function isLibsignalMessage(first: unknown): boolean {
  if (typeof first !== 'string') return false
  return LIBSIGNAL_PREFIXES.some((prefix) => first.startsWith(prefix))
}

/** Installs the console filter (idempotent). `onSuppressed` receives the bare message text. */
export function silenceLibsignal(onSuppressed?: (message: string) => void): void {
  if (onSuppressed) suppressedSink = onSuppressed
  if (installed) return
  installed = true
  for (const method of METHODS) {
    const original = console[method].bind(console)
    console[method] = (...args: unknown[]) => {
      if (isLibsignalMessage(args[0])) {
        // Only the prefix-bearing text; session objects stay out of every sink.
        suppressedSink(String(args[0]).split(':')[0] ?? 'libsignal')
        return
      }
      original(...args)
    }
  }
}
