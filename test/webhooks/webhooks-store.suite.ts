import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { lastTick, storeFixtures, tick, type WebhookStoreContext } from './store-fixtures.ts'

/** The organization webhooks repository. */
export function webhooksStoreSuite(context: WebhookStoreContext): void {
  const { organization, webhook, delivery, claim } = storeFixtures(context)

  describe('webhooks', () => {
    it('should round-trip every field and scope reads to the organization', async () => {
      const organizationId = await organization()
      const created = await webhook(organizationId, { sessionIds: ['ses_1'], ordered: true })
      assert.deepEqual(await context.webhooks.getById(organizationId, created.id), created)
      assert.deepEqual(await context.webhooks.getByIdUnscoped(created.id), created)
      assert.equal(await context.webhooks.getById(await organization(), created.id), undefined)
    })

    it('should list in creation order and list only enabled ones for matching', async () => {
      const organizationId = await organization()
      const first = await webhook(organizationId)
      const second = await webhook(organizationId, { enabled: false })
      assert.deepEqual(
        (await context.webhooks.listByOrganization(organizationId)).map((w) => w.id),
        [first.id, second.id],
      )
      assert.deepEqual(
        (await context.webhooks.listEnabledByOrganization(organizationId)).map((w) => w.id),
        [first.id],
      )
    })

    it('should update only the given fields, and disable with a reason', async () => {
      const organizationId = await organization()
      const created = await webhook(organizationId)
      const updated = await context.webhooks.update(organizationId, created.id, {
        events: ['*'],
        retries: { policy: 'constant', delaySeconds: 1, attempts: 2 },
        updatedAt: tick(),
      })
      assert.deepEqual(updated?.events, ['*'])
      assert.deepEqual(updated?.retries, { policy: 'constant', delaySeconds: 1, attempts: 2 })
      assert.equal(updated?.url, created.url)
      assert.equal(
        await context.webhooks.update(await organization(), created.id, { ordered: true }),
        undefined,
      )
      await context.webhooks.disable(created.id, 'gone', tick())
      const disabled = await context.webhooks.getById(organizationId, created.id)
      assert.equal(disabled?.enabled, false)
      assert.equal(disabled?.disabledReason, 'gone')
    })

    it('should delete a webhook with its deliveries and their attempts', async () => {
      const organizationId = await organization()
      const created = await webhook(organizationId)
      const row = delivery(created)
      await context.deliveries.createMany([row])
      const token = randomUUID()
      await claim(lastTick() + 1, { token })
      const attempt = {
        deliveryId: row.id,
        number: 1,
        startedAt: tick(),
        durationMs: 3,
        statusCode: 500,
        error: null,
        response: 'no',
      }
      await context.deliveries.complete(row.id, token, attempt, {
        status: 'pending',
        nextAttemptAt: tick(),
        lastStatusCode: 500,
        lastError: 'HTTP 500',
        deliveredAt: null,
        at: tick(),
      })
      assert.equal(await context.webhooks.delete(await organization(), created.id), false)
      assert.equal(await context.webhooks.delete(organizationId, created.id), true)
      assert.equal(await context.deliveries.getById(organizationId, created.id, row.id), undefined)
      assert.deepEqual(await context.deliveries.listAttempts(row.id), [])
    })
  })
}
