import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DatabaseSync, type SQLInputValue } from 'node:sqlite'
import { hashApiKey } from '../../src/accounts/api-keys.service.ts'
import { newId } from '../../src/domain/ids.ts'

/** The gateway's SQLite file in a data directory. */
export const databaseFile = (dataDir: string): string => join(dataDir, 'wagate.db')

/**
 * Runs `query` on a read-only connection of its own to the gateway's SQLite file: what is
 * really on disk, not what a repository chooses to return.
 */
export function queryFile<Row>(dataDir: string, query: string, ...parameters: SQLInputValue[]): Row[] {
  const database = new DatabaseSync(databaseFile(dataDir), { readOnly: true })
  try {
    return database.prepare(query).all(...parameters) as Row[]
  } finally {
    database.close()
  }
}

/** The bytes of the database file and its write-ahead log, where recent writes still sit. */
export async function databaseBytes(dataDir: string): Promise<Buffer> {
  const file = databaseFile(dataDir)
  const wal = await readFile(`${file}-wal`).catch(() => Buffer.alloc(0))
  return Buffer.concat([await readFile(file), wal])
}

/**
 * A second tenant, as another organization's first start would leave it: the organization
 * and an admin key of its own. Written straight into the file because the API (rightly)
 * has no way for one organization to create another.
 */
export function seedOrganization(dataDir: string): { organizationId: string; key: string } {
  const organizationId = newId('organization')
  const key = `wag_${randomBytes(30).toString('base64url')}`
  const database = new DatabaseSync(databaseFile(dataDir))
  try {
    database.exec('PRAGMA busy_timeout = 5000')
    const now = Date.now()
    database
      .prepare('INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)')
      .run(organizationId, 'Other tenant', now)
    database
      .prepare(
        `INSERT INTO api_keys (id, organization_id, name, prefix, hash, role, session_ids, expires_at,
           last_used_at, created_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, 'admin', NULL, NULL, NULL, ?, NULL)`,
      )
      .run(newId('apiKey'), organizationId, 'other tenant admin', key.slice(0, 12), hashApiKey(key), now)
  } finally {
    database.close()
  }
  return { organizationId, key }
}
