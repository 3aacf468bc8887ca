import { type Kysely, sql } from 'kysely'

/*
 * The claim index holds pending rows only. Every query that reads it asks for pending
 * rows (the claim, a 410 giving up what is queued), yet it also held every settled
 * delivery: settling moved a row's entry from the pending range to the delivered one, an
 * index write per delivery into an index that only grew. Partial, settling just removes
 * the entry, and the index stays as small as the queue.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('webhook_deliveries_pending_idx')
    .on('webhook_deliveries')
    .columns(['next_attempt_at', 'seq'])
    .where(sql.ref('status'), '=', 'pending')
    .execute()
  await db.schema.dropIndex('webhook_deliveries_claim_idx').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('webhook_deliveries_claim_idx')
    .on('webhook_deliveries')
    .columns(['status', 'next_attempt_at', 'seq'])
    .execute()
  await db.schema.dropIndex('webhook_deliveries_pending_idx').execute()
}
