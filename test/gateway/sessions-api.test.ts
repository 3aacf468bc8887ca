import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import {
  createLinkedSession,
  createSession,
  getSession,
  type SessionBody,
  unlinkRequests,
  waitForQr,
  waitForStatus,
} from '../support/sessions.ts'
import { queryFile } from '../support/sqlite-file.ts'
import { eventually } from '../support/wait.ts'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

describe('sessions API', () => {
  let gateway: TestGateway

  before(async () => {
    gateway = await startTestGateway()
  })
  after(async () => {
    await gateway.close()
  })

  const keyWith = async (body: { role: string; sessionIds?: string[] }): Promise<string> => {
    const response = await gateway.request('POST', '/api/v1/api-keys', {
      body: { name: 'test key', ...body },
    })
    assert.equal(response.statusCode, 201, response.body)
    return response.json().key
  }
  const authRows = (sessionId: string) => ({
    creds: queryFile(gateway.dataDir, 'SELECT 1 FROM auth_creds WHERE session_id = ?', sessionId).length,
    keys: queryFile(gateway.dataDir, 'SELECT 1 FROM auth_keys WHERE session_id = ?', sessionId).length,
  })

  describe('happy', () => {
    it('creates a session with a ses_ id and starts connecting it by default', async () => {
      const created = await gateway.request('POST', '/api/v1/sessions', {
        body: { name: 'auto-start', sandbox: true },
      })
      assert.equal(created.statusCode, 201, created.body)
      const session = created.json() as SessionBody
      assert.match(session.id, /^ses_[0-9a-z]{20}$/)
      assert.equal(session.name, 'auto-start')
      assert.equal(session.status, 'starting')
      assert.equal(session.sandbox, true)
      assert.equal(session.reconnectCount, 0)
      await waitForStatus(gateway, session.id, 'scan_qr')
    })

    it('creates a session that stays stopped when start is false', async () => {
      const session = await createSession(gateway, { name: 'stays-stopped', start: false })
      assert.equal(session.status, 'stopped')
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal((await getSession(gateway, session.id)).status, 'stopped')
      assert.equal(gateway.app.manager.isConnected(session.id), false)
    })

    it('lists sessions filtered by status, page by page with a cursor, with the total', async () => {
      const created = []
      for (const name of ['list-a', 'list-b', 'list-c', 'list-d', 'list-e']) {
        created.push(await createSession(gateway, { name, start: false }))
      }
      const running = await createSession(gateway, { name: 'list-running' })
      await waitForStatus(gateway, running.id, 'scan_qr')

      const all = (await gateway.request('GET', '/api/v1/sessions?status=stopped&limit=100')).json()
      assert.equal(all.total, all.items.length)
      assert.ok(all.items.every((s: SessionBody) => s.status === 'stopped'))
      const allIds = all.items.map((s: SessionBody) => s.id)
      for (const session of created) assert.ok(allIds.includes(session.id), `${session.name} is listed`)
      assert.ok(!allIds.includes(running.id), 'a running session is not listed as stopped')

      const paged: string[] = []
      let cursor: string | null = null
      do {
        const url: string = `/api/v1/sessions?status=stopped&limit=2${cursor ? `&cursor=${cursor}` : ''}`
        const page = (await gateway.request('GET', url)).json()
        assert.ok(page.items.length <= 2)
        assert.equal(page.total, all.total, 'every page reports the same total')
        paged.push(...page.items.map((s: SessionBody) => s.id))
        cursor = page.nextCursor
      } while (cursor)
      assert.deepEqual(paged, allIds, 'the pages together are the whole list, in order, without repeats')

      const scanning = (await gateway.request('GET', '/api/v1/sessions?status=scan_qr&limit=100')).json()
      assert.ok(scanning.items.some((s: SessionBody) => s.id === running.id))
    })

    it('gets a session by its id and by its name', async () => {
      const session = await createSession(gateway, { name: 'by-both', start: false })
      const byId = await getSession(gateway, session.id)
      const byName = await getSession(gateway, 'by-both')
      assert.equal(byId.id, session.id)
      assert.equal(byName.id, session.id)
      assert.equal(byName.name, 'by-both')
    })

    it('renames a session, which is then found by its new name only', async () => {
      const session = await createSession(gateway, { name: 'old-name', start: false })
      const patched = await gateway.request('PATCH', '/api/v1/sessions/old-name', {
        body: { name: 'new-name' },
      })
      assert.equal(patched.statusCode, 200, patched.body)
      assert.equal(patched.json().session.name, 'new-name')
      assert.equal((await getSession(gateway, 'new-name')).id, session.id)
      assertError(await gateway.request('GET', '/api/v1/sessions/old-name'), 404, 'not_found')
    })

    it('patches the config fields it names and keeps the others', async () => {
      const session = await createSession(gateway, {
        name: 'patched-in-part',
        start: false,
        config: {
          metadata: { team: 'x' },
          proxy: { server: 'proxy.example:3128', password: 'kept-password-1' },
          webhooks: [{ url: 'https://hooks.example/a', hmac: { key: 'kept-hmac-key-1' } }],
        },
      })
      const webhooks = [{ url: 'https://hooks.example/b' }]
      const patched = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, {
        body: { config: { webhooks } },
      })
      assert.equal(patched.statusCode, 200, patched.body)
      const read = (await gateway.request('GET', `/api/v1/sessions/${session.id}`)).json()
      assert.deepEqual(read.metadata, { team: 'x' }, 'the metadata every event carries is kept')
      assert.equal(read.config.proxy.passwordSet, true, 'the proxy and its password are kept')
      assert.deepEqual(
        read.config.webhooks.map((webhook: { url: string }) => webhook.url),
        ['https://hooks.example/b'],
      )
      const metadataOnly = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, {
        body: { config: { metadata: { team: 'y' } } },
      })
      assert.equal(metadataOnly.statusCode, 200, metadataOnly.body)
      const after = (await gateway.request('GET', `/api/v1/sessions/${session.id}`)).json()
      assert.deepEqual(after.metadata, { team: 'y' })
      assert.equal(after.config.proxy?.passwordSet, true)
      const unproxied = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, {
        body: { config: { proxy: null } },
      })
      assert.equal(unproxied.statusCode, 200, unproxied.body)
      const direct = (await gateway.request('GET', `/api/v1/sessions/${session.id}`)).json()
      assert.equal(direct.config.proxy, undefined, 'proxy: null removes the proxy')
      assert.deepEqual(direct.metadata, { team: 'y' })
      assert.deepEqual(
        after.config.webhooks.map((webhook: { url: string }) => webhook.url),
        ['https://hooks.example/b'],
      )
    })

    it('stores config secrets but never returns them, only whether they are set', async () => {
      const session = await createSession(gateway, {
        name: 'secretive',
        start: false,
        config: { metadata: { team: 'sales' } },
      })
      const config = {
        metadata: { team: 'support' },
        proxy: { server: 'proxy.example:3128', username: 'alice', password: 'proxy-password-123' },
        webhooks: [{ url: 'https://hooks.example/wa', hmac: { key: 'hmac-secret-key-456' } }],
      }
      const patched = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, { body: { config } })
      assert.equal(patched.statusCode, 200, patched.body)
      for (const response of [patched, await gateway.request('GET', `/api/v1/sessions/${session.id}`)]) {
        assert.ok(!response.body.includes('proxy-password-123'), 'the proxy password never comes back')
        assert.ok(!response.body.includes('hmac-secret-key-456'), 'the HMAC key never comes back')
      }
      const body = patched.json()
      assert.deepEqual(body.restartRequired, [], 'a stopped session needs no restart')
      assert.deepEqual(body.session.config.proxy, {
        server: 'proxy.example:3128',
        username: 'alice',
        passwordSet: true,
      })
      assert.deepEqual(body.session.config.webhooks[0].hmac, { keySet: true })
      assert.deepEqual(body.session.metadata, { team: 'support' })

      // Leaving a secret out of a PATCH keeps the stored one.
      const again = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, {
        body: {
          config: {
            ...config,
            proxy: { server: 'proxy.example:3128' },
            webhooks: [{ url: config.webhooks[0]?.url }],
          },
        },
      })
      assert.equal(again.statusCode, 200, again.body)
      assert.equal(again.json().session.config.proxy.passwordSet, true)
      assert.deepEqual(again.json().session.config.webhooks[0].hmac, { keySet: true })
    })

    it('tells which changes a running session needs a restart for', async () => {
      const session = await createSession(gateway, { name: 'running-config' })
      await waitForStatus(gateway, session.id, 'scan_qr')
      const metadataOnly = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, {
        body: { config: { metadata: { region: 'eu' } } },
      })
      assert.equal(metadataOnly.statusCode, 200, metadataOnly.body)
      assert.deepEqual(metadataOnly.json().restartRequired, [])
      assert.deepEqual(metadataOnly.json().session.metadata, { region: 'eu' })

      const withProxy = await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, {
        body: { config: { metadata: { region: 'eu' }, proxy: { server: 'socks5://127.0.0.1:1080' } } },
      })
      assert.equal(withProxy.statusCode, 200, withProxy.body)
      assert.deepEqual(withProxy.json().restartRequired, ['proxy'])
      await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`)
    })

    it('starts, stops and restarts a session on request', async () => {
      const session = await createSession(gateway, { name: 'controls', start: false })
      const started = await gateway.request('POST', `/api/v1/sessions/${session.id}/start`)
      assert.equal(started.statusCode, 200, started.body)
      assert.equal(started.json().status, 'starting')
      await waitForStatus(gateway, session.id, 'scan_qr')

      const stopped = await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`)
      assert.equal(stopped.statusCode, 200, stopped.body)
      assert.equal(stopped.json().status, 'stopped')
      assert.equal(gateway.app.manager.isConnected(session.id), false)

      const restarted = await gateway.request('POST', '/api/v1/sessions/controls/restart')
      assert.equal(restarted.statusCode, 200, restarted.body)
      assert.equal(restarted.json().status, 'starting')
      await waitForStatus(gateway, session.id, 'scan_qr')
      await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`)
    })

    it('shows the QR as JSON with a PNG data URL, as PNG bytes, and as the raw string', async () => {
      const session = await createSession(gateway, { name: 'qr-shapes' })
      const qr = await waitForQr(gateway, session.id)
      assert.equal(qr.status, 'scan_qr')
      assert.match(qr.image, /^data:image\/png;base64,/)
      assert.ok(
        Buffer.from(qr.image.split(',')[1] ?? '', 'base64')
          .subarray(0, 8)
          .equals(PNG_SIGNATURE),
      )
      assert.ok(Date.parse(qr.expiresAt) > Date.now())

      const png = await gateway.request('GET', `/api/v1/sessions/${session.id}/qr?format=png`)
      assert.equal(png.statusCode, 200)
      assert.equal(png.headers['content-type'], 'image/png')
      assert.ok(png.rawPayload.subarray(0, 8).equals(PNG_SIGNATURE), 'the body is a PNG')

      const raw = await gateway.request('GET', `/api/v1/sessions/${session.id}/qr?format=raw`)
      assert.equal(raw.statusCode, 200)
      assert.match(String(raw.headers['content-type']), /^text\/plain/)
      assert.equal(raw.body, qr.value)
      await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`)
    })

    it('links by pairing code: the code typed on the phone makes the session ready with that number', async () => {
      const session = await createSession(gateway, { name: 'by-code', start: false })
      const requested = await gateway.request('POST', '/api/v1/sessions/by-code/pairing-code', {
        body: { phoneNumber: '+1 555 031 0002' },
      })
      assert.equal(requested.statusCode, 200, requested.body)
      const { code, expiresAt } = requested.json()
      assert.match(code, /^[A-Z0-9]{4}-[A-Z0-9]{4}$/)
      assert.ok(Date.parse(expiresAt) > Date.now())
      assert.equal((await getSession(gateway, session.id)).status, 'pairing')

      const typed = await gateway.request('POST', '/api/v1/sandbox/pairing-code', {
        body: { phoneNumber: '15550310002', code },
      })
      assert.equal(typed.statusCode, 200, typed.body)
      const ready = await waitForStatus(gateway, session.id, 'ready')
      assert.equal(ready.phone, '15550310002')
      assert.equal(ready.lastError, null)
    })

    it('shows the linked account and device', async () => {
      const session = await createLinkedSession(gateway, 'who-am-i', '15550310003')
      const me = await gateway.request('GET', `/api/v1/sessions/${session.id}/me`)
      assert.equal(me.statusCode, 200, me.body)
      const body = me.json()
      assert.equal(body.phone, '15550310003')
      assert.match(body.jid, /^15550310003:\d+@s\.whatsapp\.net$/)
      assert.equal(body.deviceId, Number(body.jid.split(':')[1].split('@')[0]))
      assert.ok(body.deviceId > 0, 'a companion device id')
      const account = gateway.sandbox.network.getUser('15550310003')
      assert.equal(body.lid?.split(':')[0], account.lid)
    })

    it('logs a linked session out: unlinked at WhatsApp, credentials gone, status logged_out', async () => {
      const session = await createLinkedSession(gateway, 'leaving', '15550310004')
      assert.equal(authRows(session.id).creds, 1)
      const unlinksBefore = unlinkRequests(gateway)

      const response = await gateway.request('POST', `/api/v1/sessions/${session.id}/logout`)
      assert.equal(response.statusCode, 200, response.body)
      const body = response.json() as SessionBody
      assert.equal(body.status, 'logged_out')
      assert.equal(body.phone, null)
      assert.equal(body.jid, null)
      assert.deepEqual(authRows(session.id), { creds: 0, keys: 0 })
      await eventually(
        () => unlinkRequests(gateway) === unlinksBefore + 1,
        'the client to ask WhatsApp to unlink it',
      )
      assert.equal(gateway.app.manager.isConnected(session.id), false)
      assertError(await gateway.request('GET', `/api/v1/sessions/${session.id}/me`), 409, 'invalid_state')

      // Starting again needs a new link.
      await gateway.request('POST', `/api/v1/sessions/${session.id}/start`)
      await waitForStatus(gateway, session.id, 'scan_qr')
      await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`)
    })

    it('deletes a linked session: stops it, unlinks it at WhatsApp and removes its credentials', async () => {
      const session = await createLinkedSession(gateway, 'doomed', '15550310005')
      const rows = authRows(session.id)
      assert.equal(rows.creds, 1)
      assert.ok(rows.keys > 0, 'a linked session has Signal keys')
      const unlinksBefore = unlinkRequests(gateway)

      const response = await gateway.request('DELETE', `/api/v1/sessions/${session.id}`)
      assert.equal(response.statusCode, 204, response.body)
      assert.equal(response.body, '')
      assertError(await gateway.request('GET', `/api/v1/sessions/${session.id}`), 404, 'not_found')
      assert.deepEqual(authRows(session.id), { creds: 0, keys: 0 })
      assert.equal(queryFile(gateway.dataDir, 'SELECT 1 FROM sessions WHERE id = ?', session.id).length, 0)
      await eventually(
        () => unlinkRequests(gateway) === unlinksBefore + 1,
        'the client to ask WhatsApp to unlink it',
      )
      assert.equal(gateway.app.manager.isConnected(session.id), false)
      const account = gateway.sandbox.network.getUser('15550310005')
      assert.ok(
        ![...gateway.sandbox.connections].some((c) => !c.closed && c.login?.user === account),
        'no socket of the deleted session is left open',
      )
      // The name is free again.
      await createSession(gateway, { name: 'doomed', start: false })
    })

    it('deletes a linked session so that the account no longer lists its device', async () => {
      await createLinkedSession(gateway, 'doomed-device', '15550310006')
      await gateway.request('DELETE', '/api/v1/sessions/doomed-device')
      await eventually(
        async () =>
          (await gateway.request('GET', '/api/v1/sandbox/accounts/15550310006')).json().linkedDevices
            .length === 0,
        'the account to forget the device',
        2_000,
      )
    })

    it('deletes a session that never linked', async () => {
      const session = await createSession(gateway, { name: 'never-linked' })
      await waitForStatus(gateway, session.id, 'scan_qr')
      const response = await gateway.request('DELETE', '/api/v1/sessions/never-linked')
      assert.equal(response.statusCode, 204, response.body)
      assert.equal(gateway.app.manager.isConnected(session.id), false)
      assertError(await gateway.request('GET', `/api/v1/sessions/${session.id}`), 404, 'not_found')
    })
  })

  describe('error', () => {
    it('answers a body that is not JSON with 415, and an empty JSON body naming the body', async () => {
      const form = await gateway.app.http.inject({
        method: 'POST',
        url: '/api/v1/sessions',
        headers: { 'x-api-key': gateway.adminKey, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'name=formed',
      })
      const error = assertError(form, 415, 'unsupported_media_type')
      assert.match(error.message, /must be JSON/)
      // text/plain too, though Fastify would read it as a string for the schema to refuse
      const text = await gateway.app.http.inject({
        method: 'POST',
        url: '/api/v1/sessions',
        headers: { 'x-api-key': gateway.adminKey, 'content-type': 'text/plain' },
        payload: '{"name":"texted"}',
      })
      assertError(text, 415, 'unsupported_media_type')
      // An empty one is no body, as fetch labels it for a bodiless POST.
      const bodiless = await gateway.app.http.inject({
        method: 'POST',
        url: '/api/v1/events/ticket',
        headers: { 'x-api-key': gateway.adminKey, 'content-type': 'text/plain;charset=UTF-8' },
        payload: '',
      })
      assert.equal(bodiless.statusCode, 200, bodiless.body)
      const empty = await gateway.app.http.inject({
        method: 'POST',
        url: '/api/v1/sessions',
        headers: { 'x-api-key': gateway.adminKey, 'content-type': 'application/json' },
      })
      assert.deepEqual(
        assertError(empty, 400, 'invalid_request').details?.map((detail) => detail.path),
        ['body'],
      )
    })

    it('answers a method a path does not take with 405 and the methods it does, after the key', async () => {
      const cases = [
        ['PUT', '/api/v1/sessions', 'GET, HEAD, POST'],
        ['DELETE', '/api/v1/webhooks', 'GET, HEAD, POST'],
        ['POST', '/api/v1/sessions/anything', 'DELETE, GET, HEAD, PATCH'],
        ['GET', '/api/v1/sessions/anything/start', 'POST'],
        ['PATCH', '/api/v1/%73essions', 'GET, HEAD, POST'],
        // an escaped slash stays inside its segment, as the router reads it
        ['PUT', '/api/v1/sessions/a%2Fb', 'DELETE, GET, HEAD, PATCH'],
        ['GET', '/api/v1/sandbox/reset', 'POST'],
        ['POST', '/api/docs/', 'GET, HEAD'],
      ] as const
      for (const [method, url, allow] of cases) {
        const response = await gateway.request(method, url, { body: method === 'GET' ? undefined : {} })
        const error = assertError(response, 405, 'method_not_allowed')
        assert.equal(response.headers.allow, allow, `${method} ${url}`)
        assert.match(error.message, new RegExp(`^${method} is not allowed on .*; it takes ${allow}$`))
      }
      // A path no route has stays a 404, as does a file the docs' route does not have; and
      // neither is said without a key.
      assertError(await gateway.request('GET', '/api/v1/nothing-here'), 404, 'not_found')
      assertError(await gateway.request('GET', '/api/docs/static/nothing.js'), 404, 'not_found')
      assertError(await gateway.request('PUT', '/api/v1/sessions', { key: null }), 401, 'unauthorized')
    })

    it('rejects a name that is too short, naming the field', async () => {
      assertInvalidField(
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'ab' } }),
        'body.name',
      )
    })

    it('rejects a name with characters other than letters, digits and hyphens', async () => {
      for (const name of ['shop 1', 'shop_1', 'shöp-1', 'x'.repeat(51)]) {
        assertInvalidField(await gateway.request('POST', '/api/v1/sessions', { body: { name } }), 'body.name')
      }
      const session = await createSession(gateway, { name: 'rename-me', start: false })
      assertInvalidField(
        await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, { body: { name: 'a/b' } }),
        'body.name',
      )
    })

    it('rejects a malformed proxy server, naming body.config.proxy.server', async () => {
      const config = { proxy: { server: 'not a host' } }
      assertInvalidField(
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'bad-proxy', config } }),
        'body.config.proxy.server',
      )
      assertError(await gateway.request('GET', '/api/v1/sessions/bad-proxy'), 404, 'not_found')
      const session = await createSession(gateway, { name: 'good-proxy', start: false })
      assertInvalidField(
        await gateway.request('PATCH', `/api/v1/sessions/${session.id}`, { body: { config } }),
        'body.config.proxy.server',
      )
    })

    it('rejects a webhook HMAC key that is too short, naming it', async () => {
      const config = { webhooks: [{ url: 'https://hooks.example/', hmac: { key: 'short' } }] }
      assertInvalidField(
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'bad-hook', config } }),
        'body.config.webhooks.0.hmac.key',
      )
    })

    it('rejects a pairing-code request with a bad phone number, naming body.phoneNumber', async () => {
      const session = await createSession(gateway, { name: 'bad-phone', start: false })
      for (const phoneNumber of ['12345', '+1 555 abc 0000', '1234567890123456']) {
        assertInvalidField(
          await gateway.request('POST', `/api/v1/sessions/${session.id}/pairing-code`, {
            body: { phoneNumber },
          }),
          'body.phoneNumber',
        )
      }
      assertInvalidField(
        await gateway.request('POST', `/api/v1/sessions/${session.id}/pairing-code`, { body: {} }),
        'body.phoneNumber',
      )
      assert.equal((await getSession(gateway, session.id)).status, 'stopped', 'a bad request starts nothing')
    })

    it('rejects a cursor that did not come from a previous page', async () => {
      const error = assertError(
        await gateway.request('GET', '/api/v1/sessions?cursor=garbage'),
        400,
        'invalid_request',
      )
      assert.match(error.message, /cursor/)
    })

    it('answers 404 for a session that does not exist, on every session route', async () => {
      const routes: [method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown][] = [
        ['GET', ''],
        ['PATCH', '', { name: 'whatever' }],
        ['DELETE', ''],
        ['POST', '/start'],
        ['POST', '/stop'],
        ['POST', '/restart'],
        ['POST', '/logout'],
        ['GET', '/qr'],
        ['POST', '/pairing-code', { phoneNumber: '15550319999' }],
        ['GET', '/me'],
      ]
      for (const [method, path, body] of routes) {
        const error = assertError(
          await gateway.request(method, `/api/v1/sessions/no-such-session${path}`, { body }),
          404,
          'not_found',
        )
        assert.match(error.message, /no-such-session/)
      }
    })

    it('refuses a second session with the same name, and a rename onto a taken name', async () => {
      await createSession(gateway, { name: 'taken', start: false })
      const error = assertError(
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'taken', start: false } }),
        409,
        'conflict',
      )
      assert.match(error.message, /taken/)
      const other = await createSession(gateway, { name: 'not-taken', start: false })
      assertError(
        await gateway.request('PATCH', `/api/v1/sessions/${other.id}`, { body: { name: 'taken' } }),
        409,
        'conflict',
      )
    })

    it('refuses to start a started session, stop a stopped one, or log out an unlinked one', async () => {
      const session = await createSession(gateway, { name: 'wrong-states' })
      const started = assertError(
        await gateway.request('POST', `/api/v1/sessions/${session.id}/start`),
        409,
        'invalid_state',
      )
      assert.match(started.message, /already started/)
      const unlinked = assertError(
        await gateway.request('POST', `/api/v1/sessions/${session.id}/logout`),
        409,
        'invalid_state',
      )
      assert.match(unlinked.message, /not linked/)

      await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`)
      const stopped = assertError(
        await gateway.request('POST', `/api/v1/sessions/${session.id}/stop`),
        409,
        'invalid_state',
      )
      assert.match(stopped.message, /already stopped/)
    })

    it('says there is no QR because the session is not started', async () => {
      const session = await createSession(gateway, { name: 'no-qr-stopped', start: false })
      for (const format of ['json', 'png', 'raw']) {
        const error = assertError(
          await gateway.request('GET', `/api/v1/sessions/${session.id}/qr?format=${format}`),
          409,
          'invalid_state',
        )
        assert.match(error.message, /not started/)
      }
    })

    it('says there is no QR because the session is already linked', async () => {
      const session = await createLinkedSession(gateway, 'no-qr-linked', '15550310007')
      const error = assertError(
        await gateway.request('GET', `/api/v1/sessions/${session.id}/qr`),
        409,
        'invalid_state',
      )
      assert.match(error.message, /already linked/)
      const pairing = assertError(
        await gateway.request('POST', `/api/v1/sessions/${session.id}/pairing-code`, {
          body: { phoneNumber: '15550310007' },
        }),
        409,
        'invalid_state',
      )
      assert.match(pairing.message, /already linked/)
    })

    it('says a session that never linked has no account to show', async () => {
      const session = await createSession(gateway, { name: 'no-me', start: false })
      const error = assertError(
        await gateway.request('GET', `/api/v1/sessions/${session.id}/me`),
        409,
        'invalid_state',
      )
      assert.match(error.message, /not linked/)
    })

    it('rejects an unknown status filter and a limit out of range', async () => {
      assertInvalidField(
        await gateway.request('GET', '/api/v1/sessions?status=sleeping'),
        'querystring.status',
      )
      assertInvalidField(await gateway.request('GET', '/api/v1/sessions?limit=0'), 'querystring.limit')
      assertInvalidField(await gateway.request('GET', '/api/v1/sessions?limit=101'), 'querystring.limit')
    })
  })

  describe('security', () => {
    it('lets a viewer read sessions but not create, start or see the QR', async () => {
      const session = await createSession(gateway, { name: 'viewed', start: false })
      const viewer = await keyWith({ role: 'viewer' })
      assert.equal((await gateway.request('GET', '/api/v1/sessions', { key: viewer })).statusCode, 200)
      assert.equal(
        (await gateway.request('GET', `/api/v1/sessions/${session.id}`, { key: viewer })).statusCode,
        200,
      )

      const create = assertError(
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'by-viewer' }, key: viewer }),
        403,
        'forbidden',
      )
      assert.match(create.message, /operator/)
      assertError(await gateway.request('GET', '/api/v1/sessions/by-viewer'), 404, 'not_found')
      for (const [method, path] of [
        ['POST', '/start'],
        ['POST', '/stop'],
        ['POST', '/logout'],
        ['GET', '/qr'],
        ['DELETE', ''],
      ] as const) {
        assertError(
          await gateway.request(method, `/api/v1/sessions/${session.id}${path}`, { key: viewer }),
          403,
          'forbidden',
        )
      }
      assert.equal((await getSession(gateway, session.id)).status, 'stopped')
    })

    it('lets an operator create and control sessions', async () => {
      const operator = await keyWith({ role: 'operator' })
      const created = await gateway.request('POST', '/api/v1/sessions', {
        body: { name: 'by-operator', start: false },
        key: operator,
      })
      assert.equal(created.statusCode, 201, created.body)
      const deleted = await gateway.request('DELETE', '/api/v1/sessions/by-operator', { key: operator })
      assert.equal(deleted.statusCode, 204)
    })

    it('keeps a key scoped to one session out of every other session', async () => {
      const mine = await createSession(gateway, { name: 'scope-mine', start: false })
      const theirs = await createSession(gateway, { name: 'scope-theirs', start: false })
      const scoped = await keyWith({ role: 'operator', sessionIds: [mine.id] })

      assert.equal(
        (await gateway.request('GET', `/api/v1/sessions/${mine.id}`, { key: scoped })).statusCode,
        200,
      )
      assert.equal(
        (await gateway.request('GET', '/api/v1/sessions/scope-mine', { key: scoped })).statusCode,
        200,
      )
      for (const ref of [theirs.id, 'scope-theirs']) {
        assertError(
          await gateway.request('GET', `/api/v1/sessions/${ref}`, { key: scoped }),
          403,
          'forbidden',
        )
      }
      for (const [method, path] of [
        ['POST', '/start'],
        ['PATCH', ''],
        ['DELETE', ''],
        ['GET', '/qr'],
        ['GET', '/me'],
      ] as const) {
        assertError(
          await gateway.request(method, `/api/v1/sessions/${theirs.id}${path}`, {
            key: scoped,
            body: method === 'PATCH' ? { name: 'hijacked' } : undefined,
          }),
          403,
          'forbidden',
        )
      }
      assert.equal((await getSession(gateway, theirs.id)).name, 'scope-theirs')

      const list = (await gateway.request('GET', '/api/v1/sessions?limit=100', { key: scoped })).json()
      assert.deepEqual(
        list.items.map((s: SessionBody) => s.id),
        [mine.id],
      )
      assert.equal(list.total, 1)
      assertError(
        await gateway.request('POST', '/api/v1/sessions', { body: { name: 'scope-new' }, key: scoped }),
        403,
        'forbidden',
      )
    })
  })
})
