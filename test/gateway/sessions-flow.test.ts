import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { eventually } from '../support/wait.ts'

describe('a sandbox session from create to ready, and back after a restart', () => {
  let gateway: TestGateway

  before(async () => {
    gateway = await startTestGateway()
  })
  after(async () => {
    await gateway.close()
  })

  const status = async (name: string) =>
    (await gateway.request('GET', `/api/v1/sessions/${name}`)).json().status

  it('creates, shows a QR, links by a sandbox scan, and becomes ready with the account identity', async () => {
    const created = await gateway.request('POST', '/api/v1/sessions', {
      body: { name: 'shop-1', sandbox: true },
    })
    assert.equal(created.statusCode, 201, created.body)
    const session = created.json()
    assert.match(session.id, /^ses_/)
    assert.equal(session.status, 'starting')

    const qr = await eventually(async () => {
      const response = await gateway.request('GET', '/api/v1/sessions/shop-1/qr')
      if (response.statusCode !== 200) return undefined
      return response.json() as { value: string; image: string; expiresAt: string; status: string }
    }, 'a QR')
    assert.match(qr.image, /^data:image\/png;base64,/)
    assert.equal(qr.status, 'scan_qr')
    assert.ok(Date.parse(qr.expiresAt) > Date.now())

    const scan = await gateway.request('POST', '/api/v1/sandbox/scan', {
      body: { qr: qr.value, phoneNumber: '15550100001' },
    })
    assert.equal(scan.statusCode, 200, scan.body)
    await eventually(async () => (await status('shop-1')) === 'ready', 'the session to be ready')

    const me = (await gateway.request('GET', '/api/v1/sessions/shop-1/me')).json()
    assert.equal(me.phone, '15550100001')
    assert.match(me.jid, /^15550100001:\d+@s\.whatsapp\.net$/)
    const history = (await gateway.request('GET', `/api/v1/sessions/${session.id}`)).json().statusHistory
    assert.deepEqual(
      history.map((h: { status: string }) => h.status),
      ['stopped', 'starting', 'scan_qr', 'authenticating', 'authenticating', 'ready'],
    )
  })

  it('comes back ready after a server restart, from stored credentials, without a QR', async () => {
    await gateway.restart()
    await eventually(async () => (await status('shop-1')) === 'ready', 'the restored session to be ready')
    const history = (await gateway.request('GET', '/api/v1/sessions/shop-1')).json().statusHistory
    assert.ok(!history.slice(-3).some((h: { status: string }) => h.status === 'scan_qr'))
  })

  it('keeps both Signal sessions in step across a restart: messages still decrypt both ways', async () => {
    const patched = await gateway.request('PATCH', '/api/v1/sessions/shop-1', {
      body: { config: { pacing: { enabled: false } } },
    })
    assert.equal(patched.statusCode, 200, patched.body)
    const carol = gateway.sandbox.network.createUser({
      kind: 'contact',
      phoneNumber: '15550100101',
      pushName: 'Carol',
    })
    const timeline = async () =>
      (await gateway.request('GET', `/api/v1/sessions/shop-1/chats/${carol.phoneNumber}/messages`)).json()
        .items as { text: string }[]
    const exchange = async (label: string) => {
      await gateway.sandbox.sendAs({
        from: carol.phoneNumber,
        to: '15550100001',
        content: { text: `${label} in` },
      })
      await eventually(
        async () => (await timeline()).some((m) => m.text === `${label} in`),
        `"${label} in" stored`,
      )
      const sent = await gateway.request('POST', '/api/v1/sessions/shop-1/messages', {
        body: { to: carol.phoneNumber, type: 'text', text: { body: `${label} out` } },
      })
      assert.equal(sent.statusCode, 202, sent.body)
      await eventually(
        () =>
          carol.received.some(
            (m) =>
              m.message?.conversation === `${label} out` ||
              m.message?.extendedTextMessage?.text === `${label} out`,
          ),
        `Carol to decrypt "${label} out"`,
      )
    }
    await exchange('before')
    // Straight after the last send, so the restart meets key changes still staged in memory.
    await gateway.restart()
    await eventually(async () => (await status('shop-1')) === 'ready', 'ready again')
    await exchange('after')
  })
})
