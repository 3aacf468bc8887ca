import { invalidRequest } from '../domain/errors.ts'

/*
 * Keyset cursors, shared by every paginated list: opaque to callers, they hold the sort
 * key of the last row a page showed.
 */

type CursorPart = 'number' | 'string'
type CursorValues<K extends readonly CursorPart[]> = {
  [I in keyof K]: K[I] extends 'number' ? number : string
}

/** A cursor is opaque to callers: the sort key of the last row a page showed. */
export const encodeCursor = (key: readonly (number | string)[]): string =>
  Buffer.from(JSON.stringify(key)).toString('base64url')

/** @throws AppError `invalid_request` naming `field` when the cursor is not one of ours */
export function decodeCursor<const K extends readonly CursorPart[]>(
  cursor: string,
  parts: K,
  field = 'cursor',
): CursorValues<K> {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString())
    const valid =
      Array.isArray(value) &&
      value.length === parts.length &&
      parts.every((part, i) =>
        part === 'number' ? Number.isSafeInteger(value[i]) : typeof value[i] === 'string',
      )
    if (valid) return value as CursorValues<K>
  } catch {}
  throw invalidRequest(`${field} is not valid`, [
    { path: `querystring.${field}`, message: 'not a cursor from a previous page' },
  ])
}
