import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'

describe('CORS, for browser apps on the origins CORS_ORIGINS names', () => {
  let gateway: TestGateway

  before(async () => {
    gateway = await startTestGateway({ environment: { CORS_ORIGINS: 'http://app.example' } })
  })
  after(async () => {
    await gateway.close()
  })

  const preflight = (method: string, origin = 'http://app.example') =>
    gateway.app.http.inject({
      method: 'OPTIONS',
      url: '/api/v1/sessions/anything',
      headers: {
        origin,
        'access-control-request-method': method,
        'access-control-request-headers': 'x-api-key, content-type',
      },
    })

  it('lets a browser app edit and delete, not only read and create', async () => {
    for (const method of ['PATCH', 'DELETE', 'PUT', 'POST']) {
      const response = await preflight(method)
      assert.equal(response.statusCode, 204, method)
      assert.equal(response.headers['access-control-allow-origin'], 'http://app.example')
      const allowed = String(response.headers['access-control-allow-methods']).split(/,\s*/)
      assert.ok(allowed.includes(method), `${method} in ${allowed.join(',')}`)
    }
  })

  it('lets it read the request id of an answer, to quote it', async () => {
    const response = await gateway.app.http.inject({
      method: 'GET',
      url: '/api/v1/sessions',
      headers: { origin: 'http://app.example', 'x-api-key': gateway.adminKey },
    })
    assert.equal(response.statusCode, 200)
    assert.match(String(response.headers['access-control-expose-headers']), /x-request-id/)
  })

  it('says nothing to another origin', async () => {
    const response = await preflight('DELETE', 'http://elsewhere.example')
    assert.equal(response.headers['access-control-allow-origin'], undefined)
  })
})
