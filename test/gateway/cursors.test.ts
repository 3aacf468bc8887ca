import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { assertError, assertInvalidField } from '../support/http-assertions.ts'
import { createSession } from '../support/sessions.ts'

/**
 * Every paginated list takes only the cursors it handed out: anything else is a 400 that
 * names the query parameter, never a 500 or a silently empty page.
 */
describe('pagination cursors', () => {
  let gateway: TestGateway
  let webhookId: string

  before(async () => {
    gateway = await startTestGateway()
    await createSession(gateway, { name: 'paged', start: false })
    const webhook = await gateway.request('POST', '/api/v1/webhooks', {
      body: { url: 'http://127.0.0.1:9/hook' },
    })
    assert.equal(webhook.statusCode, 201, webhook.body)
    webhookId = webhook.json().id
  })
  after(() => gateway.close())

  const garbage = ['garbage', 'W10', 'WyJ4IiwxXQ', '%%%']
  const lists = (): [string, string][] => [
    ['/api/v1/sessions', 'cursor'],
    ['/api/v1/sessions/paged/chats', 'cursor'],
    ['/api/v1/sessions/paged/chats/15550990002/messages', 'before'],
    ['/api/v1/sessions/paged/chats/15550990002/messages', 'after'],
    ['/api/v1/sessions/paged/contacts', 'cursor'],
    ['/api/v1/sessions/paged/groups', 'cursor'],
    [`/api/v1/webhooks/${webhookId}/deliveries`, 'cursor'],
  ]

  it('rejects a cursor it did not hand out, naming the parameter', async () => {
    for (const [path, field] of lists()) {
      for (const value of garbage) {
        assertInvalidField(
          await gateway.request('GET', `${path}?${field}=${encodeURIComponent(value)}`),
          `querystring.${field}`,
        )
      }
    }
  })

  it('rejects before and after together', async () => {
    const error = assertError(
      await gateway.request('GET', '/api/v1/sessions/paged/chats/15550990002/messages?before=x&after=y'),
      400,
      'invalid_request',
    )
    assert.ok(error.details?.some((d) => d.path === 'querystring.after'))
  })

  it('pages with the cursors it hands out', async () => {
    for (const name of ['paged-2', 'paged-3']) await createSession(gateway, { name, start: false })
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''
      const page = (await gateway.request('GET', `/api/v1/sessions?limit=1${query}`)).json()
      seen.push(...page.items.map((s: { name: string }) => s.name))
      cursor = page.nextCursor
    } while (cursor)
    assert.deepEqual([...seen].sort(), ['paged', 'paged-2', 'paged-3'])
  })
})
