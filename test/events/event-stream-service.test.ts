import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Principal } from '../../src/accounts/api-key.types.ts'
import { EventBus } from '../../src/events/event-bus.ts'
import { EventStreamService } from '../../src/realtime/event-stream.service.ts'
import type { EventsRepository } from '../../src/store/events.repository.ts'

const principal: Principal = { organizationId: 'org_1', keyId: 'key_1', role: 'viewer', sessionIds: null }
/** A store whose replay fails after the cursor was found. */
const failingReplay = {
  getById: async () => ({
    id: 'evt_a',
    organizationId: 'org_1',
    sessionId: null,
    type: 'x',
    payload: {},
    createdAt: 1,
  }),
  listAfter: async () => {
    throw new Error('the store went away')
  },
} as unknown as EventsRepository

describe('the event stream service', () => {
  it('leaves nothing subscribed when a replay fails', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const ends: string[] = []
    await assert.rejects(
      stream.subscribe(
        principal,
        { types: [], sessionIds: null },
        () => true,
        'evt_a',
        (why) => ends.push(why),
      ),
      /went away/,
    )
    // Left registered, it would be ended now.
    stream.revoked(principal.keyId)
    assert.deepEqual(ends, [], 'nothing of the failed subscription is left')
  })

  it('refuses a stream for a key revoked while it was opening, and voids its tickets', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const { ticket } = stream.issueTicket(principal)
    stream.revoked(principal.keyId)
    await assert.rejects(
      stream.subscribe(principal, { types: [], sessionIds: null }, () => true),
      /revoked/,
    )
    assert.throws(() => stream.redeemTicket(ticket), /unknown or expired/)
  })

  it('ends an open stream when its key is revoked, and only that key’s', async () => {
    const bus = new EventBus()
    const stream = new EventStreamService({ events: failingReplay, bus })
    const ends: string[] = []
    const other = { ...principal, keyId: 'key_2' }
    await stream.subscribe(
      principal,
      { types: [], sessionIds: null },
      () => true,
      undefined,
      (why) => ends.push(`1 ${why}`),
    )
    await stream.subscribe(
      other,
      { types: [], sessionIds: null },
      () => true,
      undefined,
      (why) => ends.push(`2 ${why}`),
    )
    stream.revoked(principal.keyId)
    assert.deepEqual(ends, ['1 the API key was revoked'])
  })
})
