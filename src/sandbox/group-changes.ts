import { randomBytes } from 'node:crypto'
import type { BinaryNode } from '@whiskeysockets/baileys'
import type { MessageRouter } from './message-router.ts'
import {
  nowSeconds,
  type ParticipantRole,
  type SandboxNetwork,
  type SimGroup,
  type SimUser,
} from './network.ts'

export const PARTICIPANT_ACTIONS = ['add', 'remove', 'promote', 'demote'] as const
export type ParticipantAction = (typeof PARTICIPANT_ACTIONS)[number]

/** How one person fared in a participant change: WhatsApp's per-member code, 200 when done. */
export interface ParticipantResult {
  user: SimUser
  /** 200 done, 409 already a member, 404 not a member, 406 the creator cannot be changed */
  code: number
}

/** A member as the group addresses them: their LID in LID-addressed groups, else their phone JID. */
export const addressOf = (group: SimGroup, user: SimUser): string =>
  group.addressing === 'lid' ? user.lidJid : user.jid

/** WhatsApp's per-participant errors: 409 already a member, 404 not one, 406 the creator. */
function participantError(action: ParticipantAction, role: ParticipantRole | undefined): number | undefined {
  if (action === 'add') return role ? 409 : undefined
  if (!role) return 404
  if (role === 'superadmin' && action !== 'promote') return 406
  return undefined
}

/**
 * Changes to groups and the `w:gp2` notifications WhatsApp sends every other member's
 * devices about them. The group iqs (a linked client changing a group) and the control API
 * (a simulated member changing it) both go through here, so clients see the same stanzas
 * whoever made the change. Who may do what is the caller's check.
 */
export class GroupChanges {
  private readonly network: SandboxNetwork
  private readonly router: MessageRouter

  constructor(network: SandboxNetwork, router: MessageRouter) {
    this.network = network
    this.router = router
  }

  /** Sends `child` as a `w:gp2` notification by `by` to every member's devices (and `alsoTo`), not `by`'s own. */
  notify(group: SimGroup, by: SimUser, child: BinaryNode, alsoTo: SimUser[] = []): void {
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
      .map((p) => this.network.findUser(p))
      .filter((u) => u !== undefined)
    for (const member of new Set([...members, ...alsoTo])) {
      if (member !== by && member.devices.size > 0) this.router.sendRaw(member, node)
    }
  }

  participantNode(group: SimGroup, user: SimUser, extra: Record<string, string> = {}): BinaryNode {
    return {
      tag: 'participant',
      attrs: {
        jid: addressOf(group, user),
        ...(group.addressing === 'lid' ? { phone_number: user.jid } : {}),
        ...extra,
      },
    }
  }

  setSubject(group: SimGroup, by: SimUser, subject: string): void {
    group.subject = subject
    group.subjectTime = nowSeconds()
    this.notify(group, by, {
      tag: 'subject',
      attrs: { subject: group.subject, s_o: addressOf(group, by), s_t: String(group.subjectTime) },
    })
  }

  /** An empty description deletes it. */
  setDescription(group: SimGroup, by: SimUser, description: string, id?: string): void {
    group.description = description
    group.descriptionId = id ?? randomBytes(8).toString('hex')
    this.notify(group, by, {
      tag: 'description',
      attrs: { id: group.descriptionId },
      content: [{ tag: 'body', attrs: {}, content: Buffer.from(group.description) }],
    })
  }

  /** Only admins send (`announce`) and only admins edit the group's info (`restrict`). */
  setSettings(group: SimGroup, by: SimUser, settings: { announce?: boolean; restrict?: boolean }): void {
    if (settings.announce !== undefined && settings.announce !== group.announce) {
      group.announce = settings.announce
      this.notify(group, by, { tag: settings.announce ? 'announcement' : 'not_announcement', attrs: {} })
    }
    if (settings.restrict !== undefined && settings.restrict !== group.restrict) {
      group.restrict = settings.restrict
      this.notify(group, by, { tag: settings.restrict ? 'locked' : 'unlocked', attrs: {} })
    }
  }

  /** Applies `action` to each person it can, and notifies the members of those it changed. */
  changeParticipants(
    group: SimGroup,
    by: SimUser,
    action: ParticipantAction,
    people: SimUser[],
  ): ParticipantResult[] {
    const results: ParticipantResult[] = []
    const changed: SimUser[] = []
    for (const target of people) {
      const error = participantError(action, group.participants.get(target.phoneNumber))
      if (error) {
        results.push({ user: target, code: error })
        continue
      }
      if (action === 'add') group.participants.set(target.phoneNumber, 'member')
      if (action === 'remove') {
        group.participants.delete(target.phoneNumber)
        group.memberNames.delete(target.phoneNumber)
      }
      if (action === 'promote') group.participants.set(target.phoneNumber, 'admin')
      if (action === 'demote') group.participants.set(target.phoneNumber, 'member')
      changed.push(target)
      results.push({ user: target, code: 200 })
    }
    if (changed.length) {
      const child: BinaryNode = {
        tag: action,
        attrs: {},
        content: changed.map((u) =>
          this.participantNode(group, u, action === 'promote' ? { type: 'admin' } : {}),
        ),
      }
      // Removed people are told too: it is how they learn they are out.
      this.notify(group, by, child, action === 'remove' ? changed : [])
    }
    return results
  }

  /** `user` leaves each of these groups they are in; returns the ones they left. */
  leave(user: SimUser, groups: SimGroup[]): SimGroup[] {
    const left: SimGroup[] = []
    for (const group of groups) {
      if (!group.participants.delete(user.phoneNumber)) continue
      group.memberNames.delete(user.phoneNumber)
      left.push(group)
      this.notify(group, user, { tag: 'leave', attrs: {}, content: [this.participantNode(group, user)] })
    }
    return left
  }
}
