import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { eventually } from '../support/wait.ts'

/** A minimal HTTP CONNECT proxy on loopback that records where it tunnelled to and with what credentials. */
function startConnectProxy(): Promise<{
  server: Server
  port: number
  tunnels: { target: string; auth?: string }[]
}> {
  const tunnels: { target: string; auth?: string }[] = []
  const server = createServer((_request, response) => response.writeHead(405).end())
  server.on('connect', (request, client, head) => {
    const target = request.url ?? ''
    tunnels.push({ target, auth: request.headers['proxy-authorization'] })
    const [host, port] = target.split(':')
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as AddressInfo).port, tunnels }),
    ),
  )
}

describe('a session behind a proxy', () => {
  let gateway: TestGateway
  let proxy: Awaited<ReturnType<typeof startConnectProxy>>

  before(async () => {
    gateway = await startTestGateway()
    proxy = await startConnectProxy()
  })
  after(async () => {
    await gateway.close()
    proxy.server.closeAllConnections()
    await new Promise((resolve) => proxy.server.close(resolve))
  })

  it('connects to WhatsApp through the configured proxy, with its credentials, and links', async () => {
    const created = await gateway.request('POST', '/api/v1/sessions', {
      body: {
        name: 'behind-proxy',
        sandbox: true,
        config: { proxy: { server: `127.0.0.1:${proxy.port}`, username: 'wagate', password: 's3cret pass' } },
      },
    })
    assert.equal(created.statusCode, 201, created.body)
    assert.deepEqual(created.json().config.proxy, {
      server: `127.0.0.1:${proxy.port}`,
      username: 'wagate',
      passwordSet: true,
    })
    const qr = await eventually(async () => {
      const response = await gateway.request('GET', '/api/v1/sessions/behind-proxy/qr?format=raw')
      return response.statusCode === 200 ? response.body : undefined
    }, 'a QR through the proxy')
    const websocketPort = new URL(gateway.sandbox.websocketUrl).port
    const tunnel = proxy.tunnels.find((t) => t.target.endsWith(`:${websocketPort}`))
    assert.ok(tunnel, 'the WebSocket went through the proxy')
    assert.equal(tunnel.auth, `Basic ${Buffer.from('wagate:s3cret pass').toString('base64')}`)
    gateway.sandbox.scan(qr, '15550300001')
    await eventually(
      async () => (await gateway.request('GET', '/api/v1/sessions/behind-proxy')).json().status === 'ready',
      'ready through the proxy',
    )
  })
})
