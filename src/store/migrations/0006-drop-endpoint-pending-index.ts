import { type Kysely, sql } from 'kysely'

/*
 * The pending-per-endpoint index goes. Only a 410 Gone used it (giving up what is queued
 * for that endpoint, a rare event that may as well read the pending rows through the claim
 * index), yet every delivery settled removed its entry, and the entries of one claim's
 * deliveries (many endpoints, one event after another) sit on as many different pages: with
 * 50 endpoints, each worker step rewrote ~30 index pages in the write-ahead log, and the
 * worker spent a quarter more CPU per delivery than without it (2026-12-05: 61–66 → 47–51 µs).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('webhook_deliveries_endpoint_pending_idx').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('webhook_deliveries_endpoint_pending_idx')
    .on('webhook_deliveries')
    .column('endpoint_key')
    .where(sql.ref('status'), '=', 'pending')
    .execute()
}
