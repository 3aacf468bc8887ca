/*
 * The process the crash test kills: it emits a burst of events (each stored with its
 * deliveries in one transaction, as the gateway does) while its worker delivers them,
 * until SIGKILL ends it somewhere in the middle.
 * Arguments: dataDir organizationId encryptionKeyHex eventCount
 */
import { newId } from '../../src/domain/ids.ts'
import type { DomainEvent } from '../../src/events/catalogue.ts'
import { SecretBox } from '../../src/security/secret-box.ts'
import { openDatabase } from '../../src/store/db.ts'
import { EventsRepository } from '../../src/store/events.repository.ts'
import { createWebhookModule } from '../../src/webhooks/webhooks.module.ts'
import { CRASH_TUNING } from './crash-tuning.ts'

const [dataDir, organizationId, keyHex, count] = process.argv.slice(2)
if (!dataDir || !organizationId || !keyHex || !count)
  throw new Error('usage: dataDir organizationId key count')

const database = await openDatabase({ dataDir })
const module = createWebhookModule({
  database,
  secretBox: new SecretBox(Buffer.from(keyHex, 'hex')),
  newId,
  allowPrivateTargets: true,
  ...CRASH_TUNING,
})
const events = new EventsRepository(database.db)
const session = { id: newId('session'), name: 'burst', metadata: {} }
module.worker.start()

for (let i = 0; i < Number(count); i++) {
  const event = {
    id: newId('event'),
    type: 'message.received',
    organizationId,
    session,
    timestamp: Date.now(),
    data: { i },
  } as unknown as DomainEvent
  await database.db.transaction().execute(async (trx) => {
    await events.append(
      [
        {
          id: event.id,
          organizationId,
          sessionId: session.id,
          type: event.type,
          payload: { session, data: event.data },
          createdAt: event.timestamp,
        },
      ],
      trx,
    )
    await module.outbox.enqueueDeliveries(event, [], trx)
  })
  // As the gateway's event bus does once an event is committed.
  module.outbox.published(event)
  await new Promise((resolve) => setTimeout(resolve, 2))
}
process.stdout.write('burst emitted\n')
// Stay up (delivering) until killed.
setInterval(() => {}, 60_000)
