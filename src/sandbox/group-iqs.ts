import { randomBytes } from 'node:crypto'
import { type BinaryNode, getBinaryNodeChild, getBinaryNodeChildren } from '@whiskeysockets/baileys'
import { addressOf, type GroupChanges, PARTICIPANT_ACTIONS, type ParticipantAction } from './group-changes.ts'
import { type IqContext, IqFailure, type IqRouter } from './iq-router.ts'
import type { SandboxNetwork, SimGroup, SimUser } from './network.ts'

const GROUP_NS = 'w:g2'

/** A group as WhatsApp describes it in `<group>`: LID-addressed members carry their phone JID. */
export function groupNode(network: SandboxNetwork, group: SimGroup): BinaryNode {
  const participants: BinaryNode[] = []
  for (const [phoneNumber, role] of group.participants) {
    const member = network.findUser(phoneNumber)
    if (!member) continue
    const attrs: Record<string, string> =
      group.addressing === 'lid'
        ? { jid: member.lidJid, phone_number: member.jid }
        : { jid: member.jid, lid: member.lidJid }
    if (role !== 'member') attrs.type = role
    participants.push({ tag: 'participant', attrs })
  }
  const creator = network.findUser(group.creator)
  const content: BinaryNode[] = [...participants]
  if (group.description) {
    content.push({
      tag: 'description',
      attrs: { id: group.descriptionId, t: String(group.createdAt) },
      content: [{ tag: 'body', attrs: {}, content: Buffer.from(group.description) }],
    })
  }
  if (group.announce) content.push({ tag: 'announcement', attrs: {} })
  if (group.restrict) content.push({ tag: 'locked', attrs: {} })
  return {
    tag: 'group',
    attrs: {
      id: group.id,
      subject: group.subject,
      s_t: String(group.subjectTime),
      s_o: creator ? addressOf(group, creator) : '',
      creation: String(group.createdAt),
      creator: creator ? addressOf(group, creator) : '',
      addressing_mode: group.addressing,
      size: String(group.participants.size),
    },
    content,
  }
}

/**
 * Group management as WhatsApp's server does it: every change answers the acting client
 * and notifies the other members' devices with a `w:gp2` notification (group-changes.ts),
 * and the metadata answer stays consistent (Baileys asks for it before every group send).
 */
export function registerGroupIqs(router: IqRouter, network: SandboxNetwork, changes: GroupChanges): void {
  const actor = (context: IqContext): SimUser => {
    if (!context.user) throw new IqFailure(401, 'not-authorized')
    return context.user
  }
  const groupOf = (context: IqContext): SimGroup => {
    const group = network.findGroup(context.iq.attrs.to ?? '')
    if (!group) throw new IqFailure(404, 'item-not-found')
    return group
  }
  const requireAdmin = (group: SimGroup, user: SimUser) => {
    const role = group.participants.get(user.phoneNumber)
    if (!role) throw new IqFailure(403, 'forbidden')
    if (role === 'member') throw new IqFailure(401, 'not-authorized')
  }

  router
    .register(GROUP_NS, 'get', 'query', (context) => [groupNode(network, groupOf(context))])
    .register(GROUP_NS, 'get', 'participating', (context) => {
      const user = actor(context)
      return [{ tag: 'groups', attrs: {}, content: network.groupsOf(user).map((g) => groupNode(network, g)) }]
    })
    .register(GROUP_NS, 'set', 'create', (context) => {
      const user = actor(context)
      const create = context.child as BinaryNode
      const invited = getBinaryNodeChildren(create, 'participant')
        .map((p) => network.findUser(p.attrs.jid ?? ''))
        .filter((u) => u !== undefined)
      const group = network.createGroup({
        subject: create.attrs.subject ?? '',
        creator: user,
        participants: invited,
      })
      changes.notify(group, user, { tag: 'create', attrs: {}, content: [groupNode(network, group)] })
      return [groupNode(network, group)]
    })
    .register(GROUP_NS, 'set', 'subject', (context) => {
      const user = actor(context)
      const group = groupOf(context)
      if (!group.participants.has(user.phoneNumber)) throw new IqFailure(403, 'forbidden')
      const content = context.child?.content
      changes.setSubject(
        group,
        user,
        content instanceof Uint8Array ? Buffer.from(content).toString() : String(content ?? ''),
      )
      return undefined
    })
    .register(GROUP_NS, 'set', 'description', (context) => {
      const user = actor(context)
      const group = groupOf(context)
      if (!group.participants.has(user.phoneNumber)) throw new IqFailure(403, 'forbidden')
      const description = context.child as BinaryNode
      const body = getBinaryNodeChild(description, 'body')?.content
      const text =
        description.attrs.delete === 'true'
          ? ''
          : body instanceof Uint8Array
            ? Buffer.from(body).toString()
            : String(body ?? '')
      changes.setDescription(group, user, text, description.attrs.id)
      return undefined
    })
    .register(GROUP_NS, 'get', 'invite', (context) => {
      const group = groupOf(context)
      requireAdmin(group, actor(context))
      return [{ tag: 'invite', attrs: { code: group.inviteCode } }]
    })
    .register(GROUP_NS, 'set', 'invite', (context) => {
      const user = actor(context)
      const group = groupOf(context)
      requireAdmin(group, user)
      group.inviteCode = randomBytes(16).toString('base64url').slice(0, 22)
      changes.notify(group, user, { tag: 'invite', attrs: { code: group.inviteCode } })
      return [{ tag: 'invite', attrs: { code: group.inviteCode } }]
    })
    .register(GROUP_NS, 'set', 'leave', (context) => {
      const user = actor(context)
      const groups = getBinaryNodeChildren(context.child, 'group')
        .map((ref) => network.findGroup(ref.attrs.id ?? ''))
        .filter((g) => g !== undefined)
      const left = changes.leave(user, groups)
      return [{ tag: 'leave', attrs: {}, content: left.map((g) => ({ tag: 'group', attrs: { id: g.jid } })) }]
    })
  for (const action of PARTICIPANT_ACTIONS) {
    router.register(GROUP_NS, 'set', action, (context) => changeParticipants(context, action))
  }

  function changeParticipants(context: IqContext, action: ParticipantAction): BinaryNode[] {
    const user = actor(context)
    const group = groupOf(context)
    requireAdmin(group, user)
    const requested = getBinaryNodeChildren(context.child, 'participant').map((p) => {
      const jid = p.attrs.jid ?? ''
      return { jid, target: network.findUser(jid) }
    })
    const known = requested.flatMap(({ target }) => (target ? [target] : []))
    const codes = new Map(
      changes.changeParticipants(group, user, action, known).map(({ user: u, code }) => [u, code]),
    )
    const results = requested.map(({ jid, target }): BinaryNode => {
      if (!target) return { tag: 'participant', attrs: { jid, error: '404' } }
      const code = codes.get(target) ?? 404
      return changes.participantNode(group, target, code === 200 ? {} : { error: String(code) })
    })
    return [{ tag: action, attrs: {}, content: results }]
  }
}
