import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { LightMyRequestResponse } from 'fastify'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError } from '../support/http-assertions.ts'
import { documentedRoutes, type RouteEntry, registeredRoutes } from '../support/routes.ts'
import { createSession, getSession } from '../support/sessions.ts'
import { seedOrganization } from '../support/sqlite-file.ts'

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT'

/**
 * A body each session route with one accepts, so that only the auth or scope check can
 * refuse the request. A new route with a body needs its entry here: the walk fails with
 * a 400 until it has one, rather than passing without reaching the scope check.
 */
const VALID_BODIES: Record<string, unknown> = {
  'PATCH /api/v1/sessions/:id': { name: 'taken-over' },
  'POST /api/v1/sessions/:id/pairing-code': { phoneNumber: '15550400999' },
  'POST /api/v1/sessions/:id/messages': { to: '15550400998', type: 'text', text: { body: 'hello' } },
  'POST /api/v1/sessions/:id/presence': { state: 'available' },
  'POST /api/v1/sessions/:id/numbers/check': { numbers: ['15550400998'] },
  'POST /api/v1/sessions/:id/groups': { subject: 'Team', participants: ['15550400998'] },
  'PATCH /api/v1/sessions/:id/groups/:groupId': { subject: 'Renamed' },
  'POST /api/v1/sessions/:id/groups/:groupId/participants': { action: 'add', participants: ['15550400998'] },
  'PATCH /api/v1/sessions/:id/messages/:messageId': { text: 'edited' },
  'POST /api/v1/sessions/:id/messages/:messageId/forward': { to: '15550400998' },
  'POST /api/v1/sessions/:id/webhook-deliveries/retry': { since: '2026-01-01T00:00:00Z' },
}

/** Routes that change something and that a viewer key may call. */
const VIEWER_WRITES = new Set(['POST /api/v1/events/ticket'])

/** Values for path parameters other than the session's `:id` that their routes accept. */
const PARAM_VALUES: Record<string, string> = {
  chatId: '15550400998@s.whatsapp.net',
  contactId: '15550400998@s.whatsapp.net',
  messageId: 'msg_placeholder',
  mediaId: 'med_placeholder',
  phoneNumber: '15550400001',
  jid: '120363000000000000@g.us',
  groupId: '120363000000000000@g.us',
  chat: '15550400998',
  contactNumber: '15550400998',
}

const API_PREFIX = '/api/v1'

describe('authentication and isolation on every /api/v1 route', () => {
  let gateway: TestGateway
  let routes: RouteEntry[]

  before(async () => {
    gateway = await startTestGateway()
    await gateway.app.http.ready()
    routes = registeredRoutes(gateway.app.http).filter((r) => r.url.startsWith(API_PREFIX))
  })
  after(async () => {
    await gateway.close()
  })

  const fill = (url: string, id = 'ses_placeholder') =>
    url
      .replace(/:(\w+)/g, (_, name: string) => (name === 'id' ? id : (PARAM_VALUES[name] ?? id)))
      .replace('*', 'anything')
  const inject = (route: RouteEntry, url: string, headers: Record<string, string>) =>
    gateway.app.http.inject({
      method: route.method as Method,
      url,
      headers,
      ...(VALID_BODIES[`${route.method} ${route.url}`] === undefined
        ? {}
        : { payload: VALID_BODIES[`${route.method} ${route.url}`] as object }),
    })
  const assertRefused = (route: RouteEntry, response: LightMyRequestResponse, why: string) => {
    const label = `${route.method} ${route.url} (${why})`
    if (route.method === 'HEAD') {
      // HEAD answers carry no body, but the status and request id still tell.
      assert.equal(response.statusCode, 401, label)
      assert.match(String(response.headers['x-request-id']), /^req_/, label)
      return
    }
    try {
      assertError(response, 401, 'unauthorized')
    } catch (error) {
      throw new Error(`${label}: ${(error as Error).message}`)
    }
  }

  it('finds every route the router holds, including every documented one', () => {
    assert.ok(routes.length > 20, `expected more than 20 routes under ${API_PREFIX}, found ${routes.length}`)
    const registered = new Set(routes.map((r) => `${r.method} ${r.url}`))
    const documented = documentedRoutes(gateway.app.http).filter((r) => r.url.startsWith(API_PREFIX))
    assert.ok(documented.length > 20)
    for (const route of documented) {
      assert.ok(registered.has(`${route.method} ${route.url}`), `${route.method} ${route.url} was walked`)
    }
    for (const expected of [
      'POST /api/v1/sessions',
      'DELETE /api/v1/api-keys/:id',
      'POST /api/v1/sandbox/scan',
    ]) {
      assert.ok(registered.has(expected), `${expected} was walked`)
    }
  })

  it('rejects a missing key, a wrong key, a wrong bearer token and a key in the query string on every route', async () => {
    const wrongKey = `wag_${'x'.repeat(40)}`
    for (const route of routes) {
      const url = fill(route.url)
      assertRefused(route, await inject(route, url, {}), 'no key')
      assertRefused(route, await inject(route, url, { 'x-api-key': wrongKey }), 'wrong key')
      assertRefused(route, await inject(route, url, { authorization: `Bearer ${wrongKey}` }), 'wrong bearer')
      assertRefused(route, await inject(route, url, { authorization: gateway.adminKey }), 'no Bearer scheme')
      const separator = url.includes('?') ? '&' : '?'
      assertRefused(
        route,
        await inject(route, `${url}${separator}api_key=${gateway.adminKey}`, {}),
        'query key',
      )
    }
  })

  it('guards every route however its path is spelt: percent-encoded, it is still the same route', async () => {
    const encoded = (url: string) => url.replace(/^\/api\//, '/%61pi/')
    gateway.sandbox.network.createUser({ kind: 'account', phoneNumber: '15550400077' })
    let reached = 0
    for (const route of routes.filter((r) => r.method !== 'HEAD')) {
      const response = await inject(route, encoded(fill(route.url)), {})
      if (response.statusCode === 404 && /no route/.test(response.body)) continue
      reached++
      assertRefused(route, response, 'percent-encoded path, no key')
    }
    // The router decodes paths: every route is reached this way, the sandbox's included.
    assert.ok(reached > 40, `reached ${reached} routes`)
    assert.ok(gateway.sandbox.network.findUser('15550400077'), 'the sandbox was not reset')
  })

  it('asks for a key before saying a route does not exist, and answers 404 in the envelope after', async () => {
    assertError(await gateway.request('GET', '/api/v1/no-such-route', { key: null }), 401, 'unauthorized')
    // However the path is spelt: no key, no word on which routes exist.
    assertError(await gateway.request('GET', '/%61pi/v1/no-such-route', { key: null }), 401, 'unauthorized')
    const error = assertError(await gateway.request('GET', '/api/v1/no-such-route'), 404, 'not_found')
    assert.match(error.message, /no-such-route/)
  })

  it('answers a path parameter over the length limit in the envelope', async () => {
    const error = assertError(
      await gateway.request('GET', `/api/v1/webhooks/${'x'.repeat(200)}`),
      400,
      'invalid_request',
    )
    assert.match(error.message, /max param length/)
  })

  it("keeps every session route away from another organization's sessions and out-of-scope sessions", async () => {
    const target = await createSession(gateway, { name: 'isolated', start: false })
    const bystander = await createSession(gateway, { name: 'bystander', start: false })
    const scoped = await gateway.request('POST', '/api/v1/api-keys', {
      body: { name: 'scoped admin', role: 'admin', sessionIds: [bystander.id] },
    })
    assert.equal(scoped.statusCode, 201, scoped.body)
    const scopedKey: string = scoped.json().key
    const otherTenant = seedOrganization(gateway.dataDir)

    const sessionRoutes = routes.filter(
      (r) => r.url.startsWith(`${API_PREFIX}/sessions/:id`) && r.method !== 'HEAD',
    )
    assert.ok(sessionRoutes.length >= 10, `found ${sessionRoutes.length} session routes`)
    for (const route of sessionRoutes) {
      for (const ref of [target.id, target.name]) {
        const url = fill(route.url, ref)
        const label = `${route.method} ${route.url} with ${ref}`
        const foreign = await inject(route, url, { 'x-api-key': otherTenant.key })
        if (foreign.statusCode === 400) {
          assert.fail(
            `${label}: give this route a valid body in VALID_BODIES or its parameters in PARAM_VALUES (${foreign.body})`,
          )
        }
        assert.equal(foreign.statusCode, 404, `${label}, another organization: ${foreign.body}`)
        assertError(foreign, 404, 'not_found')
        const outOfScope = await inject(route, url, { 'x-api-key': scopedKey })
        assert.equal(outOfScope.statusCode, 403, `${label}, out of scope: ${outOfScope.body}`)
        assertError(outOfScope, 403, 'forbidden')
        // Told before its body is looked at, too: a body no route accepts gets the same 403.
        const junk = await gateway.app.http.inject({
          method: route.method as Method,
          url,
          headers: { 'x-api-key': scopedKey },
          payload: [1],
        })
        assertError(junk, 403, 'forbidden')
      }
    }

    const untouched = await getSession(gateway, target.id)
    assert.equal(untouched.name, 'isolated')
    assert.equal(untouched.status, 'stopped')
    const foreignList = (await gateway.request('GET', '/api/v1/sessions', { key: otherTenant.key })).json()
    assert.deepEqual(foreignList, { items: [], nextCursor: null, total: 0 })
    const byName = await gateway.request('POST', '/api/v1/sessions', {
      body: { name: 'isolated', start: false },
      key: otherTenant.key,
    })
    assert.equal(byName.statusCode, 201, 'names are unique per organization, not across them')
  })

  it('keeps the sandbox control API for admins of the whole organization only', async () => {
    const key = async (body: object) =>
      (await gateway.request('POST', '/api/v1/api-keys', { body })).json().key as string
    const operator = await key({ name: 'operator', role: 'operator' })
    const session = await createSession(gateway, { name: 'sandboxed', start: false })
    const limitedAdmin = await key({ name: 'limited admin', role: 'admin', sessionIds: [session.id] })
    gateway.sandbox.network.createUser({ kind: 'account', phoneNumber: '15550400001' })
    const sandboxRoutes = routes.filter(
      (r) => r.url.startsWith(`${API_PREFIX}/sandbox`) && r.method !== 'HEAD',
    )
    assert.ok(sandboxRoutes.length > 10)
    for (const route of sandboxRoutes) {
      assertError(await inject(route, fill(route.url), { 'x-api-key': operator }), 403, 'forbidden')
      // Its links, phones and messages reach every session: one session's admin may not reset them.
      const limited = assertError(
        await inject(route, fill(route.url), { 'x-api-key': limitedAdmin }),
        403,
        'forbidden',
      )
      assert.match(limited.message, /sandbox controls need a key that is not limited to sessions/)
    }
    assert.ok(gateway.sandbox.network.findUser('15550400001'), 'the sandbox was not reset')
  })

  it('refuses a session-limited key a new session before looking at its body', async () => {
    const session = await createSession(gateway, { name: 'limited-to', start: false })
    const limited = (
      await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'limited operator', role: 'operator', sessionIds: [session.id] },
      })
    ).json().key
    for (const body of [{ name: 'x' }, { name: 'fine-name', start: false }]) {
      const error = assertError(
        await gateway.request('POST', '/api/v1/sessions', { body, key: limited }),
        403,
        'forbidden',
      )
      assert.match(error.message, /new sessions need a key that is not limited to sessions/)
    }
  })

  it('tells a caller without the role so before reading the body, on every route that changes something', async () => {
    const viewer = (
      await gateway.request('POST', '/api/v1/api-keys', { body: { name: 'viewer', role: 'viewer' } })
    ).json().key
    const session = await createSession(gateway, { name: 'viewed', start: false })
    const limitedAdmin = (
      await gateway.request('POST', '/api/v1/api-keys', {
        body: { name: 'limited admin', role: 'admin', sessionIds: [session.id] },
      })
    ).json().key
    const writes = routes.filter((r) => !['GET', 'HEAD'].includes(r.method))
    assert.ok(writes.length > 20, `found ${writes.length} routes that change something`)
    let refused = 0
    for (const route of writes) {
      const label = `${route.method} ${route.url}`
      // A body no route accepts: an array where each wants an object.
      const junk = { method: route.method as Method, url: fill(route.url, session.id), payload: [1] }
      const asViewer = await gateway.app.http.inject({ ...junk, headers: { 'x-api-key': viewer } })
      if (VIEWER_WRITES.has(label)) {
        assert.notEqual(asViewer.statusCode, 403, `${label} is open to viewers: ${asViewer.body}`)
        continue
      }
      const error = assertError(asViewer, 403, 'forbidden')
      assert.match(error.message, /needs the (operator|admin) role; the key has viewer/, label)
      // Nor is a body that is not even JSON parsed for it.
      const unparsable = await gateway.app.http.inject({
        ...junk,
        payload: '{',
        headers: { 'x-api-key': viewer, 'content-type': 'application/json' },
      })
      assertError(unparsable, 403, 'forbidden')
      refused++
      if (route.url.startsWith(`${API_PREFIX}/webhooks`) || route.url.startsWith(`${API_PREFIX}/api-keys`)) {
        const asLimited = await gateway.app.http.inject({ ...junk, headers: { 'x-api-key': limitedAdmin } })
        assert.match(assertError(asLimited, 403, 'forbidden').message, /not limited to sessions/, label)
      }
    }
    assert.ok(refused > 20, `refused ${refused}`)
  })
})
