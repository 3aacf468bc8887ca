import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { beforeEach, describe, it } from 'node:test'
import { sql } from 'kysely'
import { newId } from '../../src/domain/ids.ts'
import { type DomainEvent, wireBody } from '../../src/events/catalogue.ts'
import { EventsRepository } from '../../src/store/events.repository.ts'
import type { DueCursor, WebhookDeliveriesRepository } from '../../src/store/webhook-deliveries.repository.ts'
import { lastTick, storeFixtures, tick, type WebhookStoreContext } from './store-fixtures.ts'

/** The outbox: deliveries, claims, attempts. */
export function deliveriesStoreSuite(context: WebhookStoreContext): void {
  const { organization, webhook, delivery, claim, settle } = storeFixtures(context)

  describe('webhook deliveries', () => {
    // Claims are global (the worker serves every organization): each test starts from an empty outbox.
    beforeEach(async () => {
      await context.database.db.deleteFrom('webhook_attempts').execute()
      await context.database.db.deleteFrom('webhook_deliveries').execute()
    })

    it("should list a session's own webhooks' deliveries, not an organization webhook's, through their index", async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const target = {
        url: 'https://hooks.example/own',
        sealedSecret: null,
        scheme: 'none' as const,
        customHeaders: [],
        retries: { policy: 'constant' as const, delaySeconds: 1, attempts: 1 },
      }
      const own = (sessionId: string) =>
        delivery(hook, { webhookId: null, endpointKey: `${sessionId}#own`, sessionId, target })
      const mine = [own('ses_mine'), own('ses_mine')]
      await context.deliveries.createMany([
        ...mine,
        own('ses_other'),
        delivery(hook, { sessionId: 'ses_mine' }),
      ])
      const page = await context.deliveries.listByWebhook(
        organizationId,
        { sessionId: 'ses_mine' },
        { limit: 10 },
      )
      assert.deepEqual(
        page.items.map((item) => item.id),
        mine.map((row) => row.id).reverse(),
      )
      if (context.database.dialect === 'sqlite') {
        const { rows } = await sql<{ detail: string }>`explain query plan
          select * from webhook_deliveries where organization_id = ${organizationId}
          and webhook_id is null and session_id = ${'ses_mine'} order by seq desc, id desc limit 11`.execute(
          context.database.db,
        )
        assert.match(rows.map((row) => row.detail).join(' | '), /webhook_deliveries_session_own_idx/)
      }
    })

    it('should list newest first, filter by status and page with a cursor', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const rows = Array.from({ length: 5 }, () => delivery(hook))
      await context.deliveries.createMany(rows)
      const first = await context.deliveries.listByWebhook(organizationId, hook.id, { limit: 2 })
      assert.deepEqual(
        first.items.map((d) => d.id),
        [rows[4]?.id, rows[3]?.id],
      )
      assert.ok(first.nextCursor)
      const rest = await context.deliveries.listByWebhook(organizationId, hook.id, {
        limit: 10,
        cursor: first.nextCursor,
      })
      assert.deepEqual(
        rest.items.map((d) => d.id),
        [rows[2]?.id, rows[1]?.id, rows[0]?.id],
      )
      assert.equal(rest.nextCursor, null)
      assert.equal(
        (await context.deliveries.listByWebhook(organizationId, hook.id, { status: 'dead', limit: 10 })).items
          .length,
        0,
      )
      await assert.rejects(
        context.deliveries.listByWebhook(organizationId, hook.id, { limit: 1, cursor: 'nonsense' }),
        /cursor/,
      )
    })

    it('should build the body of a delivery stored with its event from the event row, byte for byte', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const event: DomainEvent = {
        id: newId('event'),
        type: 'session.qr',
        organizationId,
        session: { id: 'ses_a', name: 'front desk', metadata: { team: 'ops', z: '1', a: '2' } },
        timestamp: tick(),
        data: { value: 'é "quoted" \u2028 👍', expiresAt: 1 },
      }
      await new EventsRepository(context.database.db).append([
        {
          id: event.id,
          organizationId,
          sessionId: 'ses_a',
          type: event.type,
          payload: { session: event.session, data: event.data },
          createdAt: event.timestamp,
        },
      ])
      const row = delivery(hook, { eventId: event.id, body: null })
      const leased = delivery(hook, {
        eventId: event.id,
        endpointKey: 'ses_a#other',
        body: null,
        lease: { token: randomUUID(), lockedUntil: lastTick() + 60_000 },
      })
      assert.deepEqual([...(await context.deliveries.createMany([row, leased]))], [], 'all written')
      const again = { ...leased, id: newId('delivery') }
      assert.deepEqual(
        [...(await context.deliveries.createMany([again]))],
        [again.id],
        'a leased one that met the delivery of its event and endpoint was not written',
      )

      const claimed = await claim(lastTick() + 1)
      assert.deepEqual(
        claimed.map((found) => found.id),
        [row.id],
        'one leased at enqueue waits for its lease to end',
      )
      assert.equal(claimed[0]?.body, wireBody(event))
      assert.equal(await context.deliveries.getBody(leased.id), wireBody(event))
    })

    it('should write one delivery per event and endpoint however often it is enqueued', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const row = delivery(hook)
      await context.deliveries.createMany([row])
      await context.deliveries.createMany([{ ...row, id: newId('delivery') }])
      assert.equal(
        (await context.deliveries.listByWebhook(organizationId, hook.id, { limit: 10 })).items.length,
        1,
      )
    })

    it('should lease due deliveries once, skip blocked endpoints, and lease again after expiry', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const blocked = await webhook(organizationId)
      const due = delivery(hook)
      const later = delivery(hook, { createdAt: lastTick() + 1_000_000 })
      const ofBlocked = delivery(blocked)
      await context.deliveries.createMany([due, later, ofBlocked])
      const now = lastTick() + 1
      const leased = await claim(now, { blockedKeys: [blocked.id] })
      assert.deepEqual(
        leased.map((d) => d.id),
        [due.id],
      )
      assert.equal(leased[0]?.lockedUntil, now + 30_000)
      assert.deepEqual(
        await claim(now, { blockedKeys: [blocked.id] }),
        [],
        'a leased row is not leased twice',
      )
      assert.deepEqual(
        (await claim(now + 30_000, { blockedKeys: [blocked.id] })).map((d) => d.id),
        [due.id],
        'an expired lease is taken over',
      )
    })

    it('should record an outcome only for the lease holder, and the attempt either way', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const row = delivery(hook)
      await context.deliveries.createMany([row])
      const token = randomUUID()
      await claim(lastTick() + 1, { token })
      const attempt = (number: number) => ({
        deliveryId: row.id,
        number,
        startedAt: tick(),
        durationMs: 12,
        statusCode: 200,
        error: null,
        response: 'ok',
      })
      const outcome = {
        status: 'delivered' as const,
        nextAttemptAt: lastTick(),
        lastStatusCode: 200,
        lastError: null,
        deliveredAt: lastTick(),
        at: lastTick(),
      }
      assert.equal(await context.deliveries.complete(row.id, 'stale-token', attempt(1), outcome), false)
      assert.equal((await context.deliveries.getById(organizationId, hook.id, row.id))?.status, 'pending')
      assert.equal(await context.deliveries.complete(row.id, token, attempt(2), outcome), true)
      const stored = await context.deliveries.getById(organizationId, hook.id, row.id)
      assert.equal(stored?.status, 'delivered')
      assert.equal(stored?.attempts, 2)
      assert.equal(stored?.leaseToken, null)
      assert.deepEqual(
        (await context.deliveries.listAttempts(row.id)).map((a) => [a.number, a.statusCode, a.response]),
        [
          [1, 200, 'ok'],
          [2, 200, 'ok'],
        ],
      )
    })

    it('should offer only the oldest pending delivery of an ordered queue', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId, { ordered: true })
      const key = `${hook.id}|ses_a`
      const [a1, a2] = [delivery(hook, { orderingKey: key }), delivery(hook, { orderingKey: key })]
      const b1 = delivery(hook, { orderingKey: `${hook.id}|ses_b`, sessionId: 'ses_b' })
      await context.deliveries.createMany([a2!, a1!, b1].reverse())
      const now = lastTick() + 1
      const token = randomUUID()
      assert.deepEqual((await claim(now, { token })).map((d) => d.id).sort(), [a1!.id, b1.id].sort())
      assert.deepEqual(await claim(now), [], 'the head is in flight: nothing else of its queue')
      await settle(a1!.id, token, 'dead', now)
      assert.deepEqual(
        (await claim(now)).map((d) => d.id),
        [a2!.id],
        'a dead head no longer holds the queue',
      )
    })

    it('should never lease one delivery to two concurrent claimers', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const rows = Array.from({ length: 40 }, () => delivery(hook))
      await context.deliveries.createMany(rows)
      const now = lastTick() + 1
      const claimOn = (repository: WebhookDeliveriesRepository) =>
        repository.claimDue({ now, limit: 15, leaseMs: 30_000, token: randomUUID(), blockedKeys: [] })
      const batches = await Promise.all([
        claimOn(context.deliveries),
        claimOn(context.otherDeliveries),
        claimOn(context.deliveries),
        claimOn(context.otherDeliveries),
      ])
      const ids = batches.flat().map((d) => d.id)
      assert.equal(new Set(ids).size, ids.length, 'no delivery leased twice')
      assert.equal(ids.length, 40, 'and every due one leased')
    })

    it('should settle many deliveries at once, every attempt recorded, outcomes only where the lease held', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const [ok, failed, lost] = [delivery(hook), delivery(hook), delivery(hook)]
      await context.deliveries.createMany([ok!, failed!, lost!])
      const token = randomUUID()
      assert.equal((await claim(lastTick() + 1, { token })).length, 3)
      const at = tick()
      const attempt = (deliveryId: string, statusCode: number) => ({
        deliveryId,
        number: 1,
        startedAt: at,
        durationMs: 4,
        statusCode,
        error: null,
        response: '',
      })
      const delivered = {
        status: 'delivered' as const,
        nextAttemptAt: at,
        lastStatusCode: 200,
        lastError: null,
        deliveredAt: at,
        at,
      }
      const kept = await context.deliveries.completeMany([
        { id: ok!.id, token, attempt: attempt(ok!.id, 200), outcome: delivered },
        {
          id: failed!.id,
          token,
          attempt: attempt(failed!.id, 500),
          outcome: {
            ...delivered,
            status: 'pending',
            nextAttemptAt: at + 5_000,
            lastStatusCode: 500,
            lastError: 'HTTP 500',
            deliveredAt: null,
          },
        },
        { id: lost!.id, token: 'stale-token', attempt: attempt(lost!.id, 200), outcome: delivered },
      ])
      assert.deepEqual([...kept].sort(), [ok!.id, failed!.id].sort())

      const stored = async (id: string) => context.deliveries.getById(organizationId, hook.id, id)
      const settled = await stored(ok!.id)
      assert.equal(settled?.status, 'delivered')
      assert.equal(settled?.attempts, 1)
      assert.equal(settled?.leaseToken, null)
      const retrying = await stored(failed!.id)
      assert.deepEqual(
        [retrying?.status, retrying?.nextAttemptAt, retrying?.lastError, retrying?.lockedUntil],
        ['pending', at + 5_000, 'HTTP 500', null],
      )
      const held = await stored(lost!.id)
      assert.deepEqual([held?.status, held?.leaseToken, held?.attempts], ['pending', token, 0])
      for (const row of [ok!, failed!, lost!]) {
        assert.equal((await context.deliveries.listAttempts(row.id)).length, 1, 'the attempt happened')
      }
    })

    it('should claim each delivery with where it goes now: its webhook as it stands, none when disabled', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId, { signatureScheme: 'sha256' })
      const off = await webhook(organizationId)
      const target = {
        url: 'https://session.example/hook',
        sealedSecret: null,
        scheme: 'none' as const,
        customHeaders: [],
        retries: { policy: 'constant' as const, delaySeconds: 1, attempts: 2 },
      }
      const [ofHook, ofOff, ofSession] = [
        delivery(hook),
        delivery(off),
        delivery(hook, { webhookId: null, endpointKey: 'ses_a#0123', target }),
      ]
      await context.deliveries.createMany([ofHook!, ofOff!, ofSession!])
      // Edited and disabled after the deliveries were written.
      await context.webhooks.update(organizationId, hook.id, {
        url: 'https://receiver.example/moved',
        updatedAt: tick(),
      })
      await context.webhooks.disable(off.id, 'gone', tick())

      const claimed = new Map((await claim(lastTick() + 1)).map((d) => [d.id, d.sendTo]))
      assert.deepEqual(claimed.get(ofHook!.id), {
        url: 'https://receiver.example/moved',
        sealedSecret: hook.secret,
        scheme: 'sha256',
        customHeaders: hook.customHeaders,
        retries: hook.retries,
      })
      assert.equal(claimed.get(ofOff!.id), null)
      assert.deepEqual(claimed.get(ofSession!.id), target)
    })

    it('should store outcomes before it claims, so an ordered queue moves on in the same step', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId, { ordered: true })
      const key = `${hook.id}|ses_a`
      const [head, next] = [delivery(hook, { orderingKey: key }), delivery(hook, { orderingKey: key })]
      await context.deliveries.createMany([head!, next!])
      const token = randomUUID()
      const now = lastTick() + 1
      assert.deepEqual(
        (await claim(now, { token })).map((d) => d.id),
        [head!.id],
      )
      const { kept, claimed } = await context.deliveries.completeAndClaim(
        [
          {
            id: head!.id,
            token,
            attempt: null,
            outcome: {
              status: 'delivered',
              nextAttemptAt: now,
              lastStatusCode: 200,
              lastError: null,
              deliveredAt: now,
              at: now,
            },
          },
        ],
        { now, limit: 10, leaseMs: 30_000, token: randomUUID(), blockedKeys: [] },
      )
      assert.deepEqual([...kept], [head!.id])
      assert.deepEqual(
        claimed.map((d) => d.id),
        [next!.id],
      )
    })

    it('should replay only dead deliveries, with a fresh retry budget', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const row = delivery(hook)
      await context.deliveries.createMany([row])
      assert.equal(await context.deliveries.replay(organizationId, hook.id, row.id, tick()), undefined)
      const token = randomUUID()
      await claim(lastTick() + 1, { token })
      await context.deliveries.complete(
        row.id,
        token,
        {
          deliveryId: row.id,
          number: 3,
          startedAt: tick(),
          durationMs: 1,
          statusCode: 500,
          error: null,
          response: null,
        },
        {
          status: 'dead',
          nextAttemptAt: lastTick(),
          lastStatusCode: 500,
          lastError: 'HTTP 500',
          deliveredAt: null,
          at: lastTick(),
        },
      )
      const at = tick()
      const replayed = await context.deliveries.replay(organizationId, hook.id, row.id, at)
      assert.equal(replayed?.status, 'pending')
      assert.equal(replayed?.replayOffset, 3)
      assert.equal(replayed?.nextAttemptAt, at)
      assert.equal(await context.deliveries.replay(await organization(), hook.id, row.id, at), undefined)
    })

    it('should walk a delivery log in (seq, id) order, stretch by stretch, ties on seq included', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const base = delivery(hook)
      // Two processes can give one webhook the same seq: the walk must see both.
      const rows = [0, 1, 1, 1, 2, 3].map((offset) => delivery(hook, { seq: base.seq + offset }))
      await context.deliveries.createMany([...rows, delivery(await webhook(organizationId))])
      const walked: string[] = []
      let after: { seq: number; id: string } | undefined
      for (;;) {
        const stretch = await context.deliveries.logStretch(organizationId, hook.id, {
          from: base.seq,
          after,
          limit: 2,
        })
        walked.push(...stretch.map((row) => row.id))
        after = stretch.at(-1)
        if (stretch.length < 2) break
      }
      const expected = [...rows].sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : 1)).map((row) => row.id)
      assert.deepEqual(walked, expected)
    })

    it('should replay only the dead among the ids given, with a fresh budget, a session webhook as it is now', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const target = (attempts: number) => ({
        url: 'https://hooks.example/own',
        sealedSecret: null,
        scheme: 'none' as const,
        customHeaders: [],
        retries: { policy: 'constant' as const, delaySeconds: 1, attempts },
      })
      const own = () =>
        delivery(hook, {
          webhookId: null,
          endpointKey: 'ses_own#own',
          sessionId: 'ses_own',
          target: target(1),
        })
      const [dead, delivered] = [own(), own()]
      await context.deliveries.createMany([dead, delivered])
      const mark = (status: string, id: string) =>
        context.database.db
          .updateTable('webhook_deliveries')
          .set({ status, attempts: 3 })
          .where('id', '=', id)
          .execute()
      await mark('dead', dead.id)
      await mark('delivered', delivered.id)
      const at = tick()
      const probeAt = at + 5_000
      assert.equal(
        await context.deliveries.replayMany([dead.id, delivered.id], at, {
          target: target(9),
          dueAt: probeAt,
        }),
        1,
      )
      const owner = { sessionId: 'ses_own' }
      const replayed = await context.deliveries.getById(organizationId, owner, dead.id)
      assert.equal(replayed?.status, 'pending')
      assert.equal(replayed?.nextAttemptAt, probeAt, 'due when its open circuit lets a probe through')
      assert.equal(replayed?.replayOffset, 3, 'a fresh retry budget')
      assert.deepEqual(replayed?.target, target(9))
      assert.equal(
        (await context.deliveries.getById(organizationId, owner, delivered.id))?.status,
        'delivered',
      )
      assert.equal(await context.deliveries.replayMany([dead.id], tick()), 0, 'pending now: not dead')
    })

    it('should give up the pending deliveries of an endpoint, leaving leased ones to their holder', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const leasedRow = delivery(hook)
      await context.deliveries.createMany([leasedRow])
      await claim(lastTick() + 1)
      await context.deliveries.createMany([delivery(hook), delivery(hook)])
      assert.equal(await context.deliveries.killPending(hook.id, 'gone', lastTick() + 2), 2)
      const page = await context.deliveries.listByWebhook(organizationId, hook.id, { limit: 10 })
      assert.deepEqual(page.items.map((d) => d.status).sort(), ['dead', 'dead', 'pending'])
    })

    it('should move the due deliveries of an endpoint no one holds to later, walking on in chunks, and no other', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const other = await webhook(organizationId)
      const leasedRow = delivery(hook)
      await context.deliveries.createMany([leasedRow])
      const [leased] = await claim(lastTick() + 1)
      const due = Array.from({ length: 5 }, () => delivery(hook))
      const laterDue = lastTick() + 1_000_000
      const later = delivery(hook, { dueAt: laterDue })
      await context.deliveries.createMany([...due, later, delivery(other)])
      const now = lastTick() + 1
      // Sooner than the lease of the claimed one ends, which the claim below must still respect.
      const until = now + 20_000
      const holdBack = (after?: DueCursor) =>
        context.deliveries.holdBack(hook.id, { until, now, giveUpReason: 'down', after, limit: 3 })
      // Three due rows read per call, whichever endpoint's: its five, then the other's one.
      const first = await holdBack()
      assert.deepEqual([first.deferred, first.givenUp], [3, 0])
      assert.ok(first.next)
      const second = await holdBack(first.next)
      assert.deepEqual(
        [second.deferred, second.givenUp],
        [2, 0],
        'its last two, and the other’s row read past',
      )
      const third = await holdBack(second.next)
      assert.deepEqual([third.deferred, third.next], [0, undefined], 'the walk is through')
      assert.equal((await holdBack()).deferred, 0, 'from the start again: nothing left before then')
      const rows = await context.database.db
        .selectFrom('webhook_deliveries')
        .select(['id', 'endpoint_key', 'next_attempt_at'])
        .execute()
      const dueAt = new Map(rows.map((row) => [row.id, Number(row.next_attempt_at)]))
      for (const row of due) assert.equal(dueAt.get(row.id), until)
      assert.equal(dueAt.get(later.id), laterDue, 'due later still: as it was')
      assert.equal(dueAt.get(leasedRow.id), leased?.lockedUntil, 'its lease decides')
      assert.ok((rows.find((row) => row.endpoint_key === other.id)?.next_attempt_at ?? until) < until)
      // Nothing of it is due before then: a claim finds the other endpoint's delivery only.
      const claimed = await claim(until - 1)
      assert.deepEqual(
        claimed.map((d) => d.endpointKey),
        [other.id],
      )
      // Closed again before then: what was moved is due at once.
      assert.equal(await context.deliveries.bringForward(hook.id, until, now + 5), 5)
      assert.equal((await claim(now + 5)).length, 5)
    })

    it('should give up, on the way, the due deliveries of an endpoint unchanged since a time, and no other', async () => {
      const organizationId = await organization()
      const hook = await webhook(organizationId)
      const other = await webhook(organizationId)
      const idle = Array.from({ length: 3 }, () => delivery(hook))
      const idleOther = delivery(other)
      await context.deliveries.createMany([...idle, idleOther])
      const unchangedSince = tick()
      const recent = delivery(hook)
      await context.deliveries.createMany([recent])
      const now = lastTick() + 1
      const step = await context.deliveries.holdBack(hook.id, {
        until: now + 60_000,
        now,
        giveUpUnchangedSince: unchangedSince,
        giveUpReason: 'down',
        limit: 10,
      })
      assert.deepEqual([step.givenUp, step.deferred, step.next], [3, 1, undefined])
      const page = await context.deliveries.listByWebhook(organizationId, hook.id, { limit: 10 })
      const byId = new Map(page.items.map((d) => [d.id, d]))
      for (const row of idle) {
        assert.equal(byId.get(row.id)?.status, 'dead')
        assert.equal(byId.get(row.id)?.lastError, 'down')
      }
      assert.equal(byId.get(recent.id)?.status, 'pending', 'changed since: moved, not given up')
      assert.equal(byId.get(recent.id)?.nextAttemptAt, now + 60_000)
      const others = await context.deliveries.listByWebhook(organizationId, other.id, { limit: 10 })
      assert.deepEqual(
        others.items.map((d) => d.status),
        ['pending'],
      )
    })
  })
}
