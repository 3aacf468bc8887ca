import { type Kysely, sql } from 'kysely'

/*
 * Deliveries of sessions' own webhooks (config.webhooks) have no webhook id: a session's
 * delivery log (GET /sessions/{id}/webhook-deliveries) is read by session, newest first.
 * Without this index, a page walked every session-webhook delivery of every organization.
 * Partial, so organization webhooks' deliveries carry no entry; and no entry changes when a
 * delivery settles (neither column does), so it costs one index write per session-webhook
 * delivery stored, none afterwards (see 0006 for what an entry rewritten per settle cost).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('webhook_deliveries_session_own_idx')
    .on('webhook_deliveries')
    .columns(['session_id', 'seq'])
    .where(sql.ref('webhook_id'), 'is', null)
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('webhook_deliveries_session_own_idx').execute()
}
