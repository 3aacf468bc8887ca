import { randomBytes } from 'node:crypto'
import { type BinaryNode, getBinaryNodeChild, getBinaryNodeChildren } from '@whiskeysockets/baileys'
import { type IqContext, IqFailure, type IqRouter } from './iq-router.ts'
import type { MessageRouter } from './message-router.ts'
import {
  nowSeconds,
  type ParticipantRole,
  type SandboxNetwork,
  type SimGroup,
  type SimUser,
} from './network.ts'

const GROUP_NS = 'w:g2'
const ACTIONS = ['add', 'remove', 'promote', 'demote'] as const
type ParticipantAction = (typeof ACTIONS)[number]

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

const addressOf = (group: SimGroup, user: SimUser): string =>
  group.addressing === 'lid' ? user.lidJid : user.jid

/**
 * Group management as WhatsApp's server does it: every change answers the acting client
 * and notifies the other members' devices with a `w:gp2` notification, and the metadata
 * answer stays consistent (Baileys asks for it before every group send).
 */
export function registerGroupIqs(router: IqRouter, network: SandboxNetwork, messages: MessageRouter): void {
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
  const notify = (group: SimGroup, by: SimUser, child: BinaryNode, alsoTo: SimUser[] = []) => {
    const node: BinaryNode = {
      tag: 'notification',
      attrs: {
        from: group.jid,
        type: 'w:gp2',
        id: randomBytes(8).toString('hex'),
        participant: addressOf(group, by),
        ...(group.addressing === 'lid' ? { participant_pn: by.jid } : {}),
        addressing_mode: group.addressing,
        t: String(nowSeconds()),
      },
      content: [child],
    }
    const members = [...group.participants.keys()]
      .map((p) => network.findUser(p))
      .filter((u) => u !== undefined)
    for (const member of new Set([...members, ...alsoTo])) {
      if (member !== by && member.devices.size > 0) messages.sendRaw(member, node)
    }
  }
  const participantNode = (
    group: SimGroup,
    user: SimUser,
    extra: Record<string, string> = {},
  ): BinaryNode => ({
    tag: 'participant',
    attrs: {
      jid: addressOf(group, user),
      ...(group.addressing === 'lid' ? { phone_number: user.jid } : {}),
      ...extra,
    },
  })

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
      notify(group, user, { tag: 'create', attrs: {}, content: [groupNode(network, group)] })
      return [groupNode(network, group)]
    })
    .register(GROUP_NS, 'set', 'subject', (context) => {
      const user = actor(context)
      const group = groupOf(context)
      if (!group.participants.has(user.phoneNumber)) throw new IqFailure(403, 'forbidden')
      const content = context.child?.content
      group.subject = content instanceof Uint8Array ? Buffer.from(content).toString() : String(content ?? '')
      group.subjectTime = nowSeconds()
      notify(group, user, {
        tag: 'subject',
        attrs: { subject: group.subject, s_o: addressOf(group, user), s_t: String(group.subjectTime) },
      })
      return undefined
    })
    .register(GROUP_NS, 'set', 'description', (context) => {
      const user = actor(context)
      const group = groupOf(context)
      if (!group.participants.has(user.phoneNumber)) throw new IqFailure(403, 'forbidden')
      const description = context.child as BinaryNode
      const body = getBinaryNodeChild(description, 'body')?.content
      group.description =
        description.attrs.delete === 'true'
          ? ''
          : body instanceof Uint8Array
            ? Buffer.from(body).toString()
            : String(body ?? '')
      group.descriptionId = description.attrs.id ?? randomBytes(8).toString('hex')
      notify(group, user, {
        tag: 'description',
        attrs: { id: group.descriptionId },
        content: [{ tag: 'body', attrs: {}, content: Buffer.from(group.description) }],
      })
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
      notify(group, user, { tag: 'invite', attrs: { code: group.inviteCode } })
      return [{ tag: 'invite', attrs: { code: group.inviteCode } }]
    })
    .register(GROUP_NS, 'set', 'leave', (context) => {
      const user = actor(context)
      const left: SimGroup[] = []
      for (const ref of getBinaryNodeChildren(context.child, 'group')) {
        const group = network.findGroup(ref.attrs.id ?? '')
        if (!group?.participants.delete(user.phoneNumber)) continue
        left.push(group)
        notify(group, user, { tag: 'leave', attrs: {}, content: [participantNode(group, user)] })
      }
      return [{ tag: 'leave', attrs: {}, content: left.map((g) => ({ tag: 'group', attrs: { id: g.jid } })) }]
    })
  for (const action of ACTIONS) {
    router.register(GROUP_NS, 'set', action, (context) => changeParticipants(context, action))
  }

  function changeParticipants(context: IqContext, action: ParticipantAction): BinaryNode[] {
    const user = actor(context)
    const group = groupOf(context)
    requireAdmin(group, user)
    const results: BinaryNode[] = []
    const changed: SimUser[] = []
    for (const requested of getBinaryNodeChildren(context.child, 'participant')) {
      const jid = requested.attrs.jid ?? ''
      const target = network.findUser(jid)
      if (!target) {
        results.push({ tag: 'participant', attrs: { jid, error: '404' } })
        continue
      }
      const role = group.participants.get(target.phoneNumber)
      const error = participantError(action, role)
      if (error) {
        results.push(participantNode(group, target, { error }))
        continue
      }
      if (action === 'add') group.participants.set(target.phoneNumber, 'member')
      if (action === 'remove') group.participants.delete(target.phoneNumber)
      if (action === 'promote') group.participants.set(target.phoneNumber, 'admin')
      if (action === 'demote') group.participants.set(target.phoneNumber, 'member')
      changed.push(target)
      results.push(participantNode(group, target))
    }
    if (changed.length) {
      const child: BinaryNode = {
        tag: action,
        attrs: {},
        content: changed.map((u) => participantNode(group, u, action === 'promote' ? { type: 'admin' } : {})),
      }
      notify(group, user, child, action === 'remove' ? changed : [])
    }
    return [{ tag: action, attrs: {}, content: results }]
  }
}

/** WhatsApp's per-participant errors: 409 already a member, 404 not one, 406 the creator. */
function participantError(action: ParticipantAction, role: ParticipantRole | undefined): string | undefined {
  if (action === 'add') return role ? '409' : undefined
  if (!role) return '404'
  if (role === 'superadmin' && action !== 'promote') return '406'
  return undefined
}
