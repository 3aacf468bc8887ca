import type { Kysely } from 'kysely'
import type { Tables } from './schema.ts'

/** Settings of the installation as a whole (migration 0008), by name. */
export class InstanceSettingsRepository {
  private readonly db: Kysely<Tables>

  constructor(db: Kysely<Tables>) {
    this.db = db
  }

  async get(name: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('instance_settings')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst()
    return row?.value
  }

  /**
   * A value sealed with the encryption key — a session's credentials or a webhook's secret —
   * whichever is found first; none in a database that has stored neither.
   */
  async sealedSample(): Promise<string | undefined> {
    const creds = await this.db.selectFrom('auth_creds').select('creds').limit(1).executeTakeFirst()
    if (creds) return creds.creds
    const webhook = await this.db.selectFrom('webhooks').select('secret').limit(1).executeTakeFirst()
    return webhook?.secret
  }

  /** Stores `value` unless the setting exists; the value stored either way. */
  async setOnce(name: string, value: string, now: number): Promise<string> {
    await this.db
      .insertInto('instance_settings')
      .values({ name, value, created_at: now })
      .onConflict((conflict) => conflict.column('name').doNothing())
      .execute()
    return (await this.get(name)) ?? value
  }
}
