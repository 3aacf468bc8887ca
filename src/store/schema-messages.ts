/* Row shapes of the messaging tables (migration 0003); conventions as in schema.ts. */

export interface MessagesTable {
  id: string
  session_id: string
  wa_id: string
  chat_jid: string
  chat_lid: string | null
  from_me: 0 | 1
  sender_jid: string | null
  sender_lid: string | null
  push_name: string | null
  timestamp: number
  type: string
  text: string | null
  /** JSON MediaDescriptor */
  media: string | null
  quoted_id: string | null
  /** JSON string[] */
  mentions: string
  target_id: string | null
  /** JSON */
  details: string | null
  status: string | null
  failure_reason: string | null
  /** base64 of the encoded proto.Message */
  raw: string | null
  /** JSON send request while the message waits in the outbound queue */
  send_request: string | null
  send_after: number | null
  created_at: number
  updated_at: number
}

export interface ChatsTable {
  session_id: string
  jid: string
  lid: string | null
  name: string | null
  last_message_at: number | null
  last_message_id: string | null
  unread_count: number
  archived: 0 | 1
  pinned: 0 | 1
  muted_until: number | null
  updated_at: number
}

export interface ContactsTable {
  session_id: string
  jid: string
  lid: string | null
  phone: string | null
  name: string | null
  push_name: string | null
  verified_name: string | null
  is_business: 0 | 1
  updated_at: number
}

export interface WaGroupsTable {
  session_id: string
  jid: string
  subject: string
  description: string | null
  owner: string | null
  created_at: number | null
  /** JSON [{ jid, lid, phone, role, name }] */
  participants: string
  announce: 0 | 1
  restrict: 0 | 1
  updated_at: number
}

export interface LidMapTable {
  session_id: string
  lid: string
  pn: string
}

export interface IdempotencyKeysTable {
  organization_id: string
  key: string
  request_hash: string
  /** JSON of the first response */
  response: string
  created_at: number
}

export interface MediaFilesTable {
  id: string
  session_id: string
  message_id: string
  path: string
  mimetype: string
  size: number
  sha256: string
  created_at: number
}

export interface MessagingTables {
  messages: MessagesTable
  chats: ChatsTable
  contacts: ContactsTable
  wa_groups: WaGroupsTable
  lid_map: LidMapTable
  idempotency_keys: IdempotencyKeysTable
  media_files: MediaFilesTable
}
