import { invalidRequest } from '../domain/errors.ts'

/** Finds the organization's session an id or a name stands for (SessionsService). */
export interface SessionResolver {
  find(organizationId: string, idOrName: string): Promise<{ id: string } | undefined>
}

/**
 * The ids of the sessions `idsOrNames` (the body field `field`) stand for, each once. One
 * that is not the organization's is refused, naming it: a filter or a scope naming it would
 * silently match nothing.
 */
export async function resolveSessionIds(
  sessions: SessionResolver,
  organizationId: string,
  idsOrNames: readonly string[],
  field: string,
): Promise<string[]> {
  const found = await Promise.all(idsOrNames.map((idOrName) => sessions.find(organizationId, idOrName)))
  const unknown = idsOrNames.flatMap((idOrName, index) => (found[index] ? [] : [{ idOrName, index }]))
  if (unknown.length > 0) {
    throw invalidRequest(
      unknown
        .map((one) => `${field}.${one.index}: no session ${one.idOrName} in this organization`)
        .join('; '),
      unknown.map(({ index }) => ({ path: `${field}.${index}`, message: 'no session with this id or name' })),
    )
  }
  return [...new Set(found.flatMap((session) => (session ? [session.id] : [])))]
}
