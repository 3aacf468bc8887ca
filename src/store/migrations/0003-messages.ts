import type { Kysely } from 'kysely'

/*
 * What a session sees and sends: messages (with their outbound queue state), chats,
 * contacts, groups, the LID ↔ phone map, idempotency keys and downloaded media. Every row
 * belongs to a session and goes when the session is deleted (ON DELETE CASCADE).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('wa_id', 'text', (c) => c.notNull())
    .addColumn('chat_jid', 'text', (c) => c.notNull())
    .addColumn('chat_lid', 'text')
    .addColumn('from_me', 'integer', (c) => c.notNull())
    .addColumn('sender_jid', 'text')
    .addColumn('sender_lid', 'text')
    .addColumn('push_name', 'text')
    .addColumn('timestamp', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('text', 'text')
    .addColumn('media', 'text')
    .addColumn('quoted_id', 'text')
    .addColumn('mentions', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text')
    .addColumn('details', 'text')
    // outbound only: pending → sent → delivered → read / played, or failed
    .addColumn('status', 'text')
    .addColumn('failure_reason', 'text')
    // the WhatsApp message itself (base64 proto): Baileys asks for it on retries and poll votes
    .addColumn('raw', 'text')
    // outbound queue: what to send, and not before when
    .addColumn('send_request', 'text')
    .addColumn('send_after', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('messages_session_chat_wa_unique', ['session_id', 'chat_jid', 'wa_id'])
    .execute()
  await db.schema
    .createIndex('messages_chat_timeline_idx')
    .on('messages')
    .columns(['session_id', 'chat_jid', 'timestamp'])
    .execute()
  await db.schema.createIndex('messages_wa_idx').on('messages').columns(['session_id', 'wa_id']).execute()
  await db.schema
    .createIndex('messages_queue_idx')
    .on('messages')
    .columns(['session_id', 'status', 'send_after'])
    .execute()

  await db.schema
    .createTable('chats')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('jid', 'text', (c) => c.notNull())
    .addColumn('lid', 'text')
    .addColumn('name', 'text')
    .addColumn('last_message_at', 'bigint')
    .addColumn('last_message_id', 'text')
    .addColumn('unread_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('archived', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pinned', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('muted_until', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('chats_pk', ['session_id', 'jid'])
    .execute()
  await db.schema
    .createIndex('chats_activity_idx')
    .on('chats')
    .columns(['session_id', 'last_message_at'])
    .execute()

  await db.schema
    .createTable('contacts')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('jid', 'text', (c) => c.notNull())
    .addColumn('lid', 'text')
    .addColumn('phone', 'text')
    .addColumn('name', 'text')
    .addColumn('push_name', 'text')
    .addColumn('verified_name', 'text')
    .addColumn('is_business', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('contacts_pk', ['session_id', 'jid'])
    .execute()

  await db.schema
    .createTable('wa_groups')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('jid', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('owner', 'text')
    .addColumn('created_at', 'bigint')
    // JSON: [{ jid, lid, phone, role, name }]
    .addColumn('participants', 'text', (c) => c.notNull())
    .addColumn('announce', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('restrict', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('wa_groups_pk', ['session_id', 'jid'])
    .execute()

  await db.schema
    .createTable('lid_map')
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('lid', 'text', (c) => c.notNull())
    .addColumn('pn', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('lid_map_pk', ['session_id', 'lid'])
    .execute()
  await db.schema.createIndex('lid_map_pn_idx').on('lid_map').columns(['session_id', 'pn']).execute()

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('organization_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('response', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['organization_id', 'key'])
    .execute()

  await db.schema
    .createTable('media_files')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('message_id', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('mimetype', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'media_files',
    'idempotency_keys',
    'lid_map',
    'wa_groups',
    'contacts',
    'chats',
    'messages',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
