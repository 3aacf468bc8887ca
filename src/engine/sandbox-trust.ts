import { AsyncLocalStorage } from 'node:async_hooks'
import { WA_CERT_DETAILS } from '@whiskeysockets/baileys'

/**
 * Lets Baileys trust a sandbox's Noise root key for the sockets created inside
 * `withSandboxTrust`, and WhatsApp's real root key everywhere else.
 *
 * Baileys reads `WA_CERT_DETAILS.PUBLIC_KEY` when it checks the server's certificate chain
 * during the Noise handshake. We replace that property with a getter that answers from an
 * AsyncLocalStorage scope: a socket created inside the scope runs its handshake in that
 * scope (the TCP handle and all its callbacks inherit the async context of their creation),
 * so only sandbox sockets see the sandbox key. A real WhatsApp socket, created outside any
 * scope, is still checked against WhatsApp's own key, in the same process and at the same
 * time. Nothing is swapped globally, so there is no window in which a real connection
 * could accept a sandbox certificate.
 */
const scope = new AsyncLocalStorage<Buffer>()
const whatsappRootKey: Buffer = Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY)
let installed = false

function install(): void {
  if (installed) return
  Object.defineProperty(WA_CERT_DETAILS, 'PUBLIC_KEY', {
    get: () => scope.getStore() ?? whatsappRootKey,
    set: () => {
      throw new Error('WA_CERT_DETAILS.PUBLIC_KEY is scoped by withSandboxTrust and cannot be assigned')
    },
    enumerable: true,
    configurable: false,
  })
  installed = true
}

/** Runs `create` (which must create the Baileys socket synchronously) trusting `rootPublicKey`. */
export function withSandboxTrust<T>(rootPublicKey: Uint8Array, create: () => T): T {
  install()
  return scope.run(Buffer.from(rootPublicKey), create)
}

/** The Noise root key Baileys would check against in the current async context. */
export function currentNoiseRootKey(): Buffer {
  install()
  return WA_CERT_DETAILS.PUBLIC_KEY as Buffer
}

/** WhatsApp's own Noise root key, as shipped by Baileys. */
export const WHATSAPP_NOISE_ROOT_KEY: Buffer = whatsappRootKey
