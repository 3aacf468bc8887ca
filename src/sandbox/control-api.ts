import type { FastifyError } from 'fastify'
import { type FastifyPluginAsyncZod, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import { activityRoutes } from './control-activity-routes.ts'
import { sendControlError } from './control-errors.ts'
import { worldRoutes } from './control-world-routes.ts'
import { SandboxError } from './errors.ts'
import type { SimGroup, SimUser } from './network.ts'
import type { SandboxServer } from './server.ts'

/** What the control routes look people and groups up with. */
export interface SandboxLookups {
  person(phoneNumber: string): SimUser
  /** the person, who must be of `kind` (404 otherwise) */
  ofKind(phoneNumber: string, kind: 'account' | 'contact'): SimUser
  groupOf(jid: string | undefined): SimGroup | undefined
}

/** The plugin's instance, as its route groups take it. */
export type ControlApp = Parameters<FastifyPluginAsyncZod>[0]

export interface SandboxControlRoutesOptions {
  sandbox: SandboxServer
}

/**
 * The sandbox control API: create phones and contacts, scan a QR, type a pairing code,
 * send as a contact, read what linked clients sent, inject faults. JSON in and out; every
 * error is `{ error: { code, message, requestId, details? } }` (see `sendControlError` in
 * control-errors.ts). Each route's schema also documents it for the gateway's OpenAPI document:
 * its operationId, what each answer means and the errors it gives.
 *
 * The plugin is self-contained: it sets the zod validator and serializer compilers and an
 * error handler on its own encapsulated instance (it is deliberately not wrapped in
 * fastify-plugin), so it mounts unchanged at `/` in the standalone runner and at
 * `/api/v1/sandbox` in the gateway, without touching the parent's settings. Its error
 * handler answers only what it owns (SandboxError, failed validation) and passes everything
 * else — a parent's auth hook failing, bad JSON, bugs — to the parent's error handler; the
 * standalone runner installs `sendControlError` as that parent, and its 404 handler (the
 * gateway's answers a wrong method with 405). The routes are in two groups: the world
 * (control-world-routes.ts) and what happens in it (control-activity-routes.ts).
 *
 * The sandbox has no authentication: mount it only on loopback or behind the gateway's.
 */
export const sandboxControlRoutes: FastifyPluginAsyncZod<SandboxControlRoutesOptions> = async (
  app,
  { sandbox },
) => {
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof SandboxError || error.validation) return sendControlError(error, request, reply)
    // rethrown, it reaches the parent's error handler (the gateway's envelope, or ours standalone)
    throw error
  })

  const { network } = sandbox
  const person = (phoneNumber: string): SimUser => network.getUser(phoneNumber)
  const ofKind = (phoneNumber: string, kind: 'account' | 'contact'): SimUser => {
    const user = person(phoneNumber)
    if (user.kind !== kind) throw new SandboxError('not_found', `${phoneNumber} is not a ${kind}`)
    return user
  }
  const groupOf = (jid: string | undefined) => (jid ? network.getGroup(jid) : undefined)

  worldRoutes(app, sandbox, { person, ofKind, groupOf })
  activityRoutes(app, sandbox, { person, ofKind, groupOf })
}
