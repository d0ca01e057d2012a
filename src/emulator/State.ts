/**
 * The in-memory state of the Kimi emulator: device codes, token families,
 * counters, and the OAuth rules applied to them.
 *
 * Every function here is synchronous and reads the time from the injected
 * `now()` (epoch milliseconds), so the rules can be driven by a TestClock or a
 * fake clock. Answers are plain `{ status, body }` values; the HTTP layer in
 * `KimiEmulator.ts` only serialises them.
 *
 * Rules, with their sources:
 * - RFC 8628 3.2 device authorization response; 3.5 polling errors
 *   (`authorization_pending`, `slow_down` adding 5 s to the interval for this
 *   and every later poll, `access_denied`, `expired_token`).
 * - RFC 6749 5.1 / 5.2 token and error responses; 6 refresh.
 * - RFC 9700 4.14.2 refresh-token rotation with reuse detection: replaying a
 *   spent refresh token revokes the whole token family.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"

/** RFC 8628 device-code grant type. */
export const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

/** A JSON answer: HTTP status and body. */
export interface Answer {
  readonly status: number
  readonly body: Record<string, unknown>
}

/** The status of a device authorization request. */
export type DeviceCodeStatus = "pending" | "approved" | "denied" | "consumed"

/** A device authorization request as tests see it (a snapshot). */
export interface DeviceCodeInfo {
  readonly deviceCode: string
  readonly userCode: string
  readonly clientId: string
  readonly status: DeviceCodeStatus
  /** Current polling interval in seconds (grows by 5 on each `slow_down`). */
  readonly interval: number
  readonly issuedAt: number
  readonly expiresAt: number
  readonly polls: number
}

/** Counters kept by the emulator. */
export interface EmulatorStats {
  /** Successful `POST /api/oauth/device_authorization` answers. */
  readonly deviceAuthorizations: number
  /** Device-code grant requests that reached the token endpoint logic. */
  readonly tokenPolls: number
  /** `authorization_pending` answers. */
  readonly pendingAnswers: number
  /** `slow_down` answers. */
  readonly slowDowns: number
  /** Token pairs issued by the device-code grant. */
  readonly deviceGrants: number
  /** Refresh-token grant requests that reached the logic. */
  readonly refreshAttempts: number
  /** Successful refreshes (rotations). */
  readonly refreshes: number
  /** Replays of an already spent refresh token (each revoked its family). */
  readonly spentTokenReplays: number
  /** Token families revoked, by reuse detection or `revokeAll()`. */
  readonly familiesRevoked: number
  /** Requests to `/coding/v1/*`. */
  readonly apiRequests: number
  /** Of those, answered 401. */
  readonly apiUnauthorized: number
}

/** A freshly minted token pair. */
export interface IssuedTokens {
  readonly accessToken: string
  readonly refreshToken: string
  /** Access-token lifetime in seconds. */
  readonly expiresIn: number
}

/** Why an access token was refused, or `ok`. */
export type AccessCheck =
  | { readonly _tag: "ok"; readonly familyId: number; readonly userId: string }
  | { readonly _tag: "unknown" | "expired" | "revoked" }

/** Settings of {@link EmulatorState}. */
export interface StateSettings {
  /** Client ids accepted by the OAuth endpoints. */
  readonly clientIds: ReadonlyArray<string>
  /** Base URL of the emulator, for `verification_uri`. */
  readonly baseUrl: string
  readonly accessTokenTtlSeconds: number
  /** `undefined`: refresh tokens do not expire. */
  readonly refreshTokenTtlSeconds: number | undefined
  readonly deviceCodeTtlSeconds: number
  /** Initial polling interval in seconds. */
  readonly interval: number
  /** Approve a device code this long after it was issued; `undefined`: never by itself. */
  readonly autoApproveAfterMillis: number | undefined
  /** A poll this much earlier than the interval allows is still accepted (jitter). */
  readonly pollToleranceMillis: number
  /** Epoch milliseconds. */
  readonly now: () => number
  /** The user a device login is approved as when none is chosen (and by auto-approval). Default `emu-user-1`. */
  readonly defaultUserId?: string | undefined
}

/** The user id of the emulator's single default user. */
export const DEFAULT_USER_ID = "emu-user-1"

interface DeviceGrant {
  readonly deviceCode: string
  readonly userCode: string
  readonly clientId: string
  readonly issuedAt: number
  readonly expiresAt: number
  status: DeviceCodeStatus
  /** The user who approved it. */
  userId: string | undefined
  interval: number
  lastPollAt: number | undefined
  polls: number
}

interface Family {
  readonly id: number
  readonly clientId: string
  readonly userId: string
  revoked: boolean
}

interface AccessRecord {
  readonly family: Family
  expiresAt: number
}

interface RefreshRecord {
  readonly family: Family
  readonly expiresAt: number | undefined
  spent: boolean
}

const USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ" // RFC 8628 6.1: no vowels, no look-alikes

const random = (bytes: number) => crypto.randomBytes(bytes).toString("base64url")

/** Canonical form of a user code: upper case, no separators. */
export const normalizeUserCode = (code: string): string => code.toUpperCase().replace(/[^A-Z0-9]/g, "")

const oauthError = (status: number, error: string, description: string): Answer => ({
  status,
  body: { error, error_description: description }
})

/**
 * The emulator's state and OAuth rules. Not thread-safe in any sense that
 * matters: JavaScript runs each call to completion.
 */
export class EmulatorState {
  private readonly devices = new Map<string, DeviceGrant>()
  private readonly byUserCode = new Map<string, DeviceGrant>()
  private readonly families: Array<Family> = []
  private readonly accessTokens = new Map<string, AccessRecord>()
  private readonly refreshTokens = new Map<string, RefreshRecord>()
  private counters = {
    deviceAuthorizations: 0,
    tokenPolls: 0,
    pendingAnswers: 0,
    slowDowns: 0,
    deviceGrants: 0,
    refreshAttempts: 0,
    refreshes: 0,
    spentTokenReplays: 0,
    familiesRevoked: 0,
    apiRequests: 0,
    apiUnauthorized: 0
  }

  constructor(readonly settings: StateSettings) {}

  /** A copy of the counters. */
  stats(): EmulatorStats {
    return { ...this.counters }
  }

  /** Counts an API request and whether it was refused. */
  countApi(unauthorized: boolean): void {
    this.counters.apiRequests++
    if (unauthorized) this.counters.apiUnauthorized++
  }

  /** Checks a client id: `undefined` when accepted, else the RFC 6749 5.2 `invalid_client` answer. */
  checkClient(clientId: string | undefined): Answer | undefined {
    if (clientId === undefined || clientId === "") {
      return oauthError(401, "invalid_client", "Client authentication failed: client_id is missing.")
    }
    if (!this.settings.clientIds.includes(clientId)) {
      return oauthError(401, "invalid_client", "Client authentication failed: unknown client_id.")
    }
    return undefined
  }

  /** RFC 8628 3.1 / 3.2: `POST /api/oauth/device_authorization`. */
  deviceAuthorization(form: Readonly<Record<string, string>>): Answer {
    const bad = this.checkClient(form["client_id"])
    if (bad) return bad
    const now = this.settings.now()
    let userCode: string
    do {
      const bytes = crypto.randomBytes(8)
      const letters = Array.from(bytes, (b) => USER_CODE_ALPHABET[b % USER_CODE_ALPHABET.length]).join("")
      userCode = `${letters.slice(0, 4)}-${letters.slice(4)}`
    } while (this.byUserCode.has(normalizeUserCode(userCode)))
    const grant: DeviceGrant = {
      deviceCode: `emu_dc_${random(24)}`,
      userCode,
      clientId: form["client_id"]!,
      issuedAt: now,
      expiresAt: now + this.settings.deviceCodeTtlSeconds * 1000,
      status: "pending",
      userId: undefined,
      interval: this.settings.interval,
      lastPollAt: undefined,
      polls: 0
    }
    this.devices.set(grant.deviceCode, grant)
    this.byUserCode.set(normalizeUserCode(userCode), grant)
    this.counters.deviceAuthorizations++
    const verificationUri = `${this.settings.baseUrl}/device`
    return {
      status: 200,
      body: {
        device_code: grant.deviceCode,
        user_code: userCode,
        verification_uri: verificationUri,
        verification_uri_complete: `${verificationUri}?user_code=${encodeURIComponent(userCode)}`,
        expires_in: this.settings.deviceCodeTtlSeconds,
        interval: this.settings.interval
      }
    }
  }

  /** `POST /api/oauth/token`: dispatches on `grant_type` (RFC 6749 4.x / 6, RFC 8628 3.4). */
  token(form: Readonly<Record<string, string>>): Answer {
    const bad = this.checkClient(form["client_id"])
    if (bad) return bad
    const grantType = form["grant_type"]
    if (grantType === undefined || grantType === "") {
      return oauthError(400, "invalid_request", "The request is missing the grant_type parameter.")
    }
    if (grantType === DEVICE_CODE_GRANT) return this.pollDeviceCode(form["client_id"]!, form["device_code"])
    if (grantType === "refresh_token") return this.refresh(form["client_id"]!, form["refresh_token"])
    return oauthError(400, "unsupported_grant_type", `The grant type "${grantType}" is not supported.`)
  }

  private pollDeviceCode(clientId: string, deviceCode: string | undefined): Answer {
    if (deviceCode === undefined || deviceCode === "") {
      return oauthError(400, "invalid_request", "The request is missing the device_code parameter.")
    }
    this.counters.tokenPolls++
    const grant = this.devices.get(deviceCode)
    if (grant === undefined || grant.clientId !== clientId || grant.status === "consumed") {
      return oauthError(400, "invalid_grant", "The provided authorization grant is invalid")
    }
    grant.polls++
    const now = this.settings.now()
    if (now >= grant.expiresAt) {
      return oauthError(400, "expired_token", "The device code has expired. Start a new login.")
    }
    // RFC 8628 3.5: a poll sooner than the interval since the previous one is answered slow_down,
    // and the interval grows by 5 seconds for this and all later polls.
    const previous = grant.lastPollAt
    grant.lastPollAt = now
    if (previous !== undefined && now - previous < grant.interval * 1000 - this.settings.pollToleranceMillis) {
      grant.interval += 5
      this.counters.slowDowns++
      return {
        status: 400,
        body: {
          error: "slow_down",
          error_description: `Polling too fast; wait at least ${grant.interval} seconds between requests.`,
          interval: grant.interval
        }
      }
    }
    this.applyAutoApproval(grant, now)
    if (grant.status === "denied") {
      return oauthError(400, "access_denied", "The user denied the authorization request.")
    }
    if (grant.status === "pending") {
      this.counters.pendingAnswers++
      return oauthError(400, "authorization_pending", "The user has not yet approved the request.")
    }
    grant.status = "consumed"
    this.counters.deviceGrants++
    return { status: 200, body: this.tokenBody(this.mint(this.newFamily(clientId, grant.userId))) }
  }

  private refresh(clientId: string, refreshToken: string | undefined): Answer {
    if (refreshToken === undefined || refreshToken === "") {
      return oauthError(400, "invalid_request", "The request is missing the refresh_token parameter.")
    }
    this.counters.refreshAttempts++
    const invalid = oauthError(400, "invalid_grant", "The provided authorization grant is invalid")
    const record = this.refreshTokens.get(refreshToken)
    if (record === undefined || record.family.clientId !== clientId) return invalid
    if (record.spent) {
      // RFC 9700 4.14.2: reuse of a rotated refresh token revokes every token of the family.
      this.counters.spentTokenReplays++
      this.revokeFamily(record.family)
      return invalid
    }
    if (record.family.revoked) return invalid
    const now = this.settings.now()
    if (record.expiresAt !== undefined && now >= record.expiresAt) return invalid
    record.spent = true
    this.counters.refreshes++
    return { status: 200, body: this.tokenBody(this.mint(record.family)) }
  }

  /**
   * Approves a pending device code by user code, as `userId` (the default
   * user unless given). True when it was pending and is now approved.
   */
  approve(userCode: string, userId?: string): boolean {
    return this.decide(userCode, "approved", userId)
  }

  /** Denies a pending device code by user code. True when it was pending and is now denied. */
  deny(userCode: string): boolean {
    return this.decide(userCode, "denied")
  }

  private decide(userCode: string, status: "approved" | "denied", userId?: string): boolean {
    const grant = this.byUserCode.get(normalizeUserCode(userCode))
    if (grant === undefined) return false
    const now = this.settings.now()
    this.applyAutoApproval(grant, now)
    if (grant.status !== "pending" || now >= grant.expiresAt) return false
    grant.status = status
    if (status === "approved") grant.userId = userId
    return true
  }

  /** Looks a device code up by user code (a snapshot), for the approval page. */
  findByUserCode(userCode: string): DeviceCodeInfo | undefined {
    const grant = this.byUserCode.get(normalizeUserCode(userCode))
    if (grant === undefined) return undefined
    this.applyAutoApproval(grant, this.settings.now())
    return this.info(grant)
  }

  /** Snapshots of every device code issued so far, oldest first. */
  deviceCodes(): ReadonlyArray<DeviceCodeInfo> {
    const now = this.settings.now()
    return Array.from(this.devices.values(), (g) => {
      this.applyAutoApproval(g, now)
      return this.info(g)
    })
  }

  private info(g: DeviceGrant): DeviceCodeInfo {
    return {
      deviceCode: g.deviceCode,
      userCode: g.userCode,
      clientId: g.clientId,
      status: g.status,
      interval: g.interval,
      issuedAt: g.issuedAt,
      expiresAt: g.expiresAt,
      polls: g.polls
    }
  }

  private applyAutoApproval(grant: DeviceGrant, now: number): void {
    const after = this.settings.autoApproveAfterMillis
    if (grant.status === "pending" && after !== undefined && now >= grant.issuedAt + after && now < grant.expiresAt) {
      grant.status = "approved"
    }
  }

  /** Checks a bearer access token. */
  checkAccessToken(token: string): AccessCheck {
    const record = this.accessTokens.get(token)
    if (record === undefined) return { _tag: "unknown" }
    if (record.family.revoked) return { _tag: "revoked" }
    if (this.settings.now() >= record.expiresAt) return { _tag: "expired" }
    return { _tag: "ok", familyId: record.family.id, userId: record.family.userId }
  }

  /** Mints a logged-in token pair in a new family (of `userId`, else the default user), as if a device login had just succeeded. */
  issueTokens(clientId: string = this.settings.clientIds[0] ?? "", userId?: string): IssuedTokens {
    return this.mint(this.newFamily(clientId, userId))
  }

  /** Makes every access token issued so far expired (refresh tokens stay usable). */
  expireAccessTokens(): void {
    const now = this.settings.now()
    for (const record of this.accessTokens.values()) record.expiresAt = Math.min(record.expiresAt, now)
  }

  /** Revokes every token family: all access and refresh tokens stop working. */
  revokeAll(): void {
    for (const family of this.families) this.revokeFamily(family)
  }

  private revokeFamily(family: Family): void {
    if (family.revoked) return
    family.revoked = true
    this.counters.familiesRevoked++
  }

  private newFamily(clientId: string, userId: string | undefined): Family {
    const family: Family = {
      id: this.families.length + 1,
      clientId,
      userId: userId ?? this.settings.defaultUserId ?? DEFAULT_USER_ID,
      revoked: false
    }
    this.families.push(family)
    return family
  }

  private mint(family: Family): IssuedTokens {
    const now = this.settings.now()
    const accessToken = `emu_at_${random(24)}`
    const refreshToken = `emu_rt_${random(24)}`
    const refreshTtl = this.settings.refreshTokenTtlSeconds
    this.accessTokens.set(accessToken, { family, expiresAt: now + this.settings.accessTokenTtlSeconds * 1000 })
    this.refreshTokens.set(refreshToken, {
      family,
      expiresAt: refreshTtl === undefined ? undefined : now + refreshTtl * 1000,
      spent: false
    })
    return { accessToken, refreshToken, expiresIn: this.settings.accessTokenTtlSeconds }
  }

  private tokenBody(tokens: IssuedTokens): Record<string, unknown> {
    return {
      access_token: tokens.accessToken,
      refresh_token: tokens.refreshToken,
      expires_in: tokens.expiresIn,
      token_type: "Bearer",
      scope: "kimi-code"
    }
  }
}
