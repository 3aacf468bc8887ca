import { type RawBuilder, type SqlBool, sql } from 'kysely'

/*
 * Everything that differs between SQLite and Postgres, in one place. The queries
 * themselves are portable (Kysely compiles `on conflict`, `returning` and row counts the
 * same way for both); what differs is how each driver reports errors, and how LIKE treats
 * letter case.
 */

/** SQLite extended result codes for constraint failures (https://sqlite.org/rescode.html). */
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555
const SQLITE_CONSTRAINT_UNIQUE = 2067
/** Postgres SQLSTATE unique_violation. */
const PG_UNIQUE_VIOLATION = '23505'

/** True when a write failed because a unique index or primary key already holds the value. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { code, errcode } = error as { code?: unknown; errcode?: unknown }
  // node:sqlite reports code 'ERR_SQLITE_ERROR' plus the extended code in `errcode`.
  if (errcode === SQLITE_CONSTRAINT_UNIQUE || errcode === SQLITE_CONSTRAINT_PRIMARYKEY) return true
  return code === PG_UNIQUE_VIOLATION
}

/** True for a `postgres://` or `postgresql://` URL; anything else means the embedded SQLite file. */
export const isPostgresUrl = (url: string | undefined): url is string =>
  url !== undefined && /^postgres(ql)?:\/\//i.test(url)

/** Postgres type id of int8/bigint, which `pg` returns as a string unless told otherwise. */
export const PG_INT8_OID = 20

/**
 * A case-insensitive "contains" that means the same on both dialects. Postgres' LIKE is
 * case-sensitive and SQLite's is not, and SQLite has no ILIKE, so both sides are lowered
 * instead; SQLite has no default LIKE escape, so the escape character is named. (SQLite's
 * lower() folds ASCII only: non-ASCII letters match case-sensitively there.)
 */
export function containsIgnoringCase(column: string, text: string): RawBuilder<SqlBool> {
  const pattern = `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  return sql<SqlBool>`lower(${sql.ref(column)}) like lower(${pattern}) escape '\\'`
}
