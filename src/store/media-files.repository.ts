import type { Kysely, Selectable } from 'kysely'
import type { Executor, Tables } from './schema.ts'
import type { MediaFilesTable } from './schema-messages.ts'

/** A downloaded media file on disk, belonging to one message. */
export interface MediaFileRecord {
  /** `med_…` */
  id: string
  sessionId: string
  /** our message id (`msg_…`) */
  messageId: string
  path: string
  mimetype: string
  size: number
  /** hex */
  sha256: string
  createdAt: number
}

const toRecord = (row: Selectable<MediaFilesTable>): MediaFileRecord => ({
  id: row.id,
  sessionId: row.session_id,
  messageId: row.message_id,
  path: row.path,
  mimetype: row.mimetype,
  size: row.size,
  sha256: row.sha256,
  createdAt: row.created_at,
})

/** Where each downloaded file lives; the files themselves are the caller's to write and remove. */
export class MediaFilesRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  async create(record: MediaFileRecord, trx: Executor = this.db): Promise<void> {
    await trx
      .insertInto('media_files')
      .values({
        id: record.id,
        session_id: record.sessionId,
        message_id: record.messageId,
        path: record.path,
        mimetype: record.mimetype,
        size: record.size,
        sha256: record.sha256,
        created_at: record.createdAt,
      })
      .execute()
  }

  async get(sessionId: string, id: string, trx: Executor = this.db): Promise<MediaFileRecord | undefined> {
    const row = await trx
      .selectFrom('media_files')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('id', '=', id)
      .executeTakeFirst()
    return row && toRecord(row)
  }

  /** Oldest first. */
  async listByMessage(
    sessionId: string,
    messageId: string,
    trx: Executor = this.db,
  ): Promise<MediaFileRecord[]> {
    const rows = await trx
      .selectFrom('media_files')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('message_id', '=', messageId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
    return rows.map(toRecord)
  }

  /** Forgets the session's files and returns their paths, for the caller to remove from disk. */
  async deleteBySession(sessionId: string, trx: Executor = this.db): Promise<string[]> {
    const rows = await trx
      .deleteFrom('media_files')
      .where('session_id', '=', sessionId)
      .returning('path')
      .execute()
    return rows.map((row) => row.path)
  }
}
