import type {
  Account,
  Activity,
  AddressBookInput,
  AppStateApplied,
  CallInput,
  CallStarted,
  ChatStateInput,
  Contact,
  ControlErrorBody,
  CreateAccountInput,
  CreateContactInput,
  CreateGroupInput,
  FaultInput,
  FaultResult,
  Group,
  GroupParticipantsInput,
  InboxMessage,
  Linked,
  ParticipantsResult,
  PresenceInput,
  ReceiptInput,
  SandboxInfo,
  SendMessageInput,
  Sent,
  Settings,
  SettingsUpdate,
  UpdateContactInput,
  UpdateGroupInput,
} from './control-schemas.ts'

/** A non-2xx answer of the control API, with the envelope's code, message and details. */
export class SandboxControlError extends Error {
  readonly status: number
  readonly code: string
  readonly details: { path: string; message: string }[]
  /** the server's id for the failed request, to find it in its log */
  readonly requestId: string | undefined

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: { path: string; message: string }[]; requestId?: string } = {},
  ) {
    super(message)
    this.name = 'SandboxControlError'
    this.status = status
    this.code = code
    this.details = options.details ?? []
    this.requestId = options.requestId
  }
}

export interface SandboxControlClientOptions {
  /** per request; entering a pairing code waits for the client, so keep it above ~12 s */
  timeoutMs?: number
}

/**
 * A typed client for the sandbox control API (control-api.ts), one method per route.
 * `baseUrl` is where the routes are mounted: `http://127.0.0.1:7100` for the standalone
 * sandbox, `…/api/v1/sandbox` in the gateway.
 */
export class SandboxControlClient {
  private readonly baseUrl: string
  private readonly timeoutMs: number

  constructor(baseUrl: string, options: SandboxControlClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.timeoutMs = options.timeoutMs ?? 30_000
  }

  info(): Promise<SandboxInfo> {
    return this.request('GET', '/')
  }

  createAccount(input: CreateAccountInput = {}): Promise<Account> {
    return this.request('POST', '/accounts', input)
  }

  async listAccounts(): Promise<Account[]> {
    return (await this.request<{ accounts: Account[] }>('GET', '/accounts')).accounts
  }

  getAccount(phoneNumber: string): Promise<Account> {
    return this.request('GET', `/accounts/${segment(phoneNumber)}`)
  }

  createContact(input: CreateContactInput = {}): Promise<Contact> {
    return this.request('POST', '/contacts', input)
  }

  async listContacts(): Promise<Contact[]> {
    return (await this.request<{ contacts: Contact[] }>('GET', '/contacts')).contacts
  }

  getContact(phoneNumber: string): Promise<Contact> {
    return this.request('GET', `/contacts/${segment(phoneNumber)}`)
  }

  updateContact(phoneNumber: string, input: UpdateContactInput): Promise<Contact> {
    return this.request('PATCH', `/contacts/${segment(phoneNumber)}`, input)
  }

  createGroup(input: CreateGroupInput): Promise<Group> {
    return this.request('POST', '/groups', input)
  }

  async listGroups(): Promise<Group[]> {
    return (await this.request<{ groups: Group[] }>('GET', '/groups')).groups
  }

  getGroup(jid: string): Promise<Group> {
    return this.request('GET', `/groups/${segment(jid)}`)
  }

  /** A member (`by`) changes the group's subject, description or settings; members are notified. */
  updateGroup(jid: string, input: UpdateGroupInput): Promise<Group> {
    return this.request('PATCH', `/groups/${segment(jid)}`, input)
  }

  /** An admin (`by`) adds, removes, promotes or demotes members; members are notified. */
  changeParticipants(jid: string, input: GroupParticipantsInput): Promise<ParticipantsResult> {
    return this.request('POST', `/groups/${segment(jid)}/participants`, input)
  }

  /** The account's phone archives, pins, mutes or marks a chat read; its devices sync it. */
  changeChat(phoneNumber: string, chat: string, input: ChatStateInput): Promise<AppStateApplied> {
    return this.request('PATCH', `/accounts/${segment(phoneNumber)}/chats/${segment(chat)}`, input)
  }

  /** The account's phone saves a person in its address book; its devices sync the name. */
  saveToAddressBook(
    phoneNumber: string,
    contactNumber: string,
    input: AddressBookInput,
  ): Promise<AppStateApplied> {
    return this.request(
      'PUT',
      `/accounts/${segment(phoneNumber)}/address-book/${segment(contactNumber)}`,
      input,
    )
  }

  /** A simulated person calls an account: its linked devices get the offer. */
  call(phoneNumber: string, input: CallInput): Promise<CallStarted> {
    return this.request('POST', `/contacts/${segment(phoneNumber)}/call`, input)
  }

  async groupInbox(jid: string): Promise<InboxMessage[]> {
    return (await this.request<{ messages: InboxMessage[] }>('GET', `/groups/${segment(jid)}/inbox`)).messages
  }

  /** The phone of `phoneNumber` (created if new) scans the QR a client shows. */
  scan(qr: string, phoneNumber?: string): Promise<Linked> {
    return this.request('POST', '/scan', phoneNumber === undefined ? { qr } : { qr, phoneNumber })
  }

  /** The phone of `phoneNumber` types the pairing code a client shows. */
  enterPairingCode(phoneNumber: string, code: string): Promise<Linked> {
    return this.request('POST', '/pairing-code', { phoneNumber, code })
  }

  /** A simulated person sends one message (exactly one content field) to an account or group. */
  sendMessage(input: SendMessageInput): Promise<Sent> {
    return this.request('POST', '/messages', input)
  }

  /** What a simulated person received from linked clients, decrypted, newest last. */
  async inbox(phoneNumber: string): Promise<InboxMessage[]> {
    return (await this.request<{ messages: InboxMessage[] }>('GET', `/inbox/${segment(phoneNumber)}`))
      .messages
  }

  /** Receipts, chat states and presence linked clients sent to (or as) this person. */
  async activity(phoneNumber: string): Promise<Activity[]> {
    return (await this.request<{ activity: Activity[] }>('GET', `/activity/${segment(phoneNumber)}`)).activity
  }

  sendReceipt(input: ReceiptInput): Promise<void> {
    return this.request('POST', '/receipts', input)
  }

  sendPresence(input: PresenceInput): Promise<void> {
    return this.request('POST', '/presence', input)
  }

  injectFault(fault: FaultInput): Promise<FaultResult> {
    return this.request('POST', '/faults', fault)
  }

  getSettings(): Promise<Settings> {
    return this.request('GET', '/settings')
  }

  updateSettings(settings: SettingsUpdate): Promise<Settings> {
    return this.request('PUT', '/settings', settings)
  }

  reset(): Promise<void> {
    return this.request('POST', '/reset')
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      // no content type without a body: Fastify rejects an empty JSON body
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    })
    const text = await response.text()
    if (!response.ok) throw errorFrom(response.status, text)
    return (text ? JSON.parse(text) : undefined) as T
  }
}

function errorFrom(status: number, text: string): SandboxControlError {
  let body: Partial<ControlErrorBody> | undefined
  try {
    body = JSON.parse(text) as Partial<ControlErrorBody>
  } catch {
    // not our envelope (a proxy's page, say): keep the status, not the body
  }
  const error = body?.error
  return new SandboxControlError(
    status,
    error?.code ?? 'http_error',
    error?.message ?? `the sandbox control API answered HTTP ${status}`,
    { details: error?.details, requestId: error?.requestId },
  )
}

const segment = (value: string): string => encodeURIComponent(value)
