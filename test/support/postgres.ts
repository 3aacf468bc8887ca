import { randomBytes } from 'node:crypto'
import pg from 'pg'

export interface TestPostgresDatabase {
  /** connection URL of a database that exists only for this test file */
  url: string
  name: string
  drop(): Promise<void>
}

const ENABLE_HINT =
  'set WAGATE_TEST_DATABASE_URL to an admin URL, e.g. postgres://wagate:wagate@127.0.0.1:5432/postgres ' +
  '(.ci/run shows how to install and start PostgreSQL)'

/**
 * A fresh, uniquely named Postgres database for one test file, created through the admin
 * URL in WAGATE_TEST_DATABASE_URL. Without that variable: CI fails (a dialect must never be
 * skipped there), and a local run gets undefined plus a loud warning, so the skip is seen.
 */
export async function freshPostgresDatabase(label: string): Promise<TestPostgresDatabase | undefined> {
  const adminUrl = process.env['WAGATE_TEST_DATABASE_URL']
  if (!adminUrl) {
    if (process.env['CI'] === 'true')
      throw new Error(`Postgres tests cannot be skipped in CI: ${ENABLE_HINT}`)
    console.warn(`\n!!! SKIPPING the Postgres tests of ${label}: ${ENABLE_HINT} !!!\n`)
    return undefined
  }
  const name = `wagate_test_${label.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`
    .toLowerCase()
    .slice(0, 63)
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  await admin(`create database "${name}"`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    name,
    // FORCE ends connections a failed test may have leaked, so the drop cannot hang.
    drop: () => admin(`drop database if exists "${name}" with (force)`),
  }
}
