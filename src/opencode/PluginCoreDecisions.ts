/**
 * The plugin core's decisions: pure, named, each tested directly as a table
 * (test/opencode-unit/PluginCore.decisions.test.ts). `PluginCore.ts` wires
 * them to the runtime, the token source and OpenCode's client.
 *
 * - Words: a failure in OpenCode's words for this provider (its hint
 *   rendered by `openCodeHintWords`, never a patched message), the
 *   other-region message, the rejected-token message.
 * - The fast path of the request `fetch`, the logout presence check,
 *   adopting OpenCode's stored copy, mirroring into `auth.json`.
 * - The shapes OpenCode's hooks expect (login start and success, the quota answer).
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { messageIn, type NextStep } from "../Errors.js"
import { type OpenCodeLine, openCodeHintWords, openCodeLogin } from "../edge/HintWords.js"
import { type KimiRegion, REGIONS } from "../light/Region.js"
import type { DeviceAuthorization } from "../oauth/OAuthClient.js"
import { ERROR_HEADER } from "../request/AuthorizingFetch.js"
import type { TokenResult } from "../request/Authorize.js"
import type { TokenFailure } from "../request/ManagedTokenSource.js"
import { removedByLogout } from "../storage/Notes.js"
import { isDue, PRESENCE_CHECK_MILLIS } from "../tokens/TokenManagerDecisions.js"
import { otherRegionDetail } from "../tokens/RegionGuard.js"
import { TokenSet } from "../tokens/TokenSet.js"
import type { DeviceLoginStart } from "./PluginCore.js"
import type { OAuthEntry } from "./Adoption.js"

export type { OpenCodeLine } from "../edge/HintWords.js"

/** The error code of the quota answer the OpenCode 2 hooks hand on (OpenCode 2 reads it as "quota", never retried). */
export const QUOTA_ERROR_TYPE = "insufficient_quota"

/** A failed run as the plugin reads it: the typed error's tag, message and advice. */
export interface RunFailure {
  readonly _tag: string
  readonly message: string
  readonly detail?: string | undefined
  readonly hint?: NextStep | undefined
  readonly reason?: string | undefined
  readonly loginRegion?: KimiRegion | undefined
}

/** The failure of a run: its typed error, an interruption, or a defect's message. */
export const failureOf = (cause: Cause.Cause<unknown>): RunFailure => {
  const e = Cause.findErrorOption(cause)
  if (Option.isSome(e)) {
    const v = e.value as Partial<RunFailure>
    return { ...v, _tag: v._tag ?? "Unknown", message: v.message ?? String(v) }
  }
  if (Cause.hasInterruptsOnly(cause)) return { _tag: "Interrupted", message: "The request was cancelled." }
  const d = Cause.squash(cause)
  return { _tag: "Defect", message: d instanceof Error ? d.message : String(d) }
}

/** A failure's message in OpenCode's words for this provider: its hint names OpenCode's login first. */
export const openCodeMessage = (failure: RunFailure, providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string =>
  messageIn(failure, openCodeHintWords(providerId, region, line))

/** The message for a login made at the other region. */
export const regionMismatch = (stored: KimiRegion, providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string =>
  `${otherRegionDetail(stored, region, providerId)}. ` +
  `To use ${providerId}, ${openCodeLogin(providerId, region, line)}; or pick ${REGIONS[stored].providerId}'s models.`

/**
 * The plugin's failure mapping of a token run: an HTTP-ish status and a
 * message for the AI SDK to show, naming OpenCode's login command for this
 * provider. A login of the other region (the core's `other-region` refusal)
 * is `kimi_region_mismatch`.
 */
export const pluginTokenFailure = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1") => (cause: Cause.Cause<unknown>): TokenFailure => {
  const f = failureOf(cause)
  const message = openCodeMessage(f, providerId, region, line)
  switch (f._tag) {
    case "NotLoggedInError":
      if (f.reason === "other-region" && f.loginRegion !== undefined) {
        return { ok: false, status: 401, code: "kimi_region_mismatch", message: regionMismatch(f.loginRegion, providerId, region, line) }
      }
      return { ok: false, status: 401, code: "kimi_login_required", message: `Kimi login required: ${message}` }
    case "CorruptTokenFileError":
      return { ok: false, status: 401, code: "kimi_login_required", message: `Kimi login required: ${message}` }
    case "NetworkError":
    case "ServerError":
      return { ok: false, status: 503, code: "kimi_auth_unavailable", message: `Could not refresh the Kimi token: ${message}` }
    case "TokenStoreError":
    case "LockTimeoutError":
      return { ok: false, status: 500, code: "kimi_token_storage", message }
    case "ConfigError":
      return { ok: false, status: 500, code: "kimi_config", message }
    default:
      return { ok: false, status: 502, code: "kimi_auth_error", message: `${message} If it persists, ${openCodeLogin(providerId, region, line)}.` }
  }
}

// ---------------------------------------------------------------------------
// The fast path, adoption, mirroring and the answers' shapes.

/** The last token set the manager handed out, with its access token read once. */
export interface FastToken {
  readonly tokens: TokenSet
  readonly access: string
}

/**
 * The fast-path serve rule of the request `fetch`: `"serve"` the remembered
 * token without entering the Effect runtime, `"check"` first that a logout
 * elsewhere has not removed it (at most every `PRESENCE_CHECK_MILLIS`), or
 * `"slow"` (none remembered, a cancelled request, or the token is due).
 * Allocates nothing.
 */
export const fastPathRule = (
  fast: FastToken | undefined,
  nowMillis: number,
  windowSeconds: number,
  checkedAtMillis: number,
  aborted: boolean
): "serve" | "check" | "slow" =>
  fast === undefined || aborted || isDue(fast.tokens, nowMillis / 1000, windowSeconds)
    ? "slow"
    : nowMillis - checkedAtMillis < PRESENCE_CHECK_MILLIS
    ? "serve"
    : "check"

/**
 * The logout presence check: a login is still stored unless its token file is
 * gone and `logged-out.json` records it. `loggedOut` is asked only when the
 * file is missing (it reads a file); a failing check counts as stored.
 */
export const stillStoredRule = (fileExists: () => boolean, loggedOut: () => boolean): boolean => {
  try {
    return !removedByLogout(!fileExists(), loggedOut)
  } catch {
    return true
  }
}

/** The mirror-once rule: mirror into OpenCode's auth store only with a host client, and once per access token. */
export const shouldMirror = (access: string, mirrored: string | undefined, canMirror: boolean): boolean =>
  canMirror && access !== mirrored

/** A token set as OpenCode's `auth.json` OAuth entry (expiry in epoch milliseconds). */
export const oauthEntryOf = (tokens: TokenSet): OAuthEntry => ({
  type: "oauth",
  refresh: Redacted.value(tokens.refreshToken),
  access: Redacted.value(tokens.accessToken),
  expires: tokens.expiresAt * 1000
})

/** Whether an answer is a refusal the plugin reads (`403`, `429`); every other answer passes untouched. */
export const isRefusalStatus = (status: number): boolean => status === 403 || status === 429

/** The answer a quota refusal becomes: a `403` with the message, coded so hosts do not retry it. */
export const quotaResponse = (message: string): Response =>
  new Response(JSON.stringify({ error: { message, type: QUOTA_ERROR_TYPE, code: QUOTA_ERROR_TYPE } }), {
    status: 403,
    headers: { "content-type": "application/json", [ERROR_HEADER]: "kimi_quota_exceeded" }
  })

/** The login start mapping: a device authorization as OpenCode's `authorize()` answer, around its `callback`. */
export const loginStartOf = (
  authorization: DeviceAuthorization,
  nowMillis: number,
  callback: DeviceLoginStart["callback"]
): DeviceLoginStart => {
  const minutes = Math.max(1, Math.round(authorization.expiresIn / 60))
  return {
    url: authorization.verificationUriComplete ?? authorization.verificationUri,
    expiresAt: nowMillis + authorization.expiresIn * 1000,
    instructions: `Enter code: ${authorization.userCode} (confirm it matches the page; it expires in ${minutes} min)`,
    method: "auto",
    callback
  }
}

/** The login callback mapping: the stored login's tokens as OpenCode's success answer. */
export const loginSuccessOf = (tokens: TokenSet): Awaited<ReturnType<DeviceLoginStart["callback"]>> => ({
  type: "success",
  refresh: Redacted.value(tokens.refreshToken),
  access: Redacted.value(tokens.accessToken),
  expires: tokens.expiresAt * 1000
})

/** What the api-key fetch adds: the request's own headers, with the identity headers set over them. */
export const withIdentityHeaders = (init: RequestInit | undefined, identity: Readonly<Record<string, string>>): RequestInit => {
  const headers = new Headers(init?.headers)
  for (const [k, v] of Object.entries(identity)) headers.set(k, v)
  return { ...init, headers }
}

/** The message for a rejected token no refresh could replace, naming this provider's login command. */
export const rejectedMessageFor = (login: string): string =>
  `Kimi rejected the access token and no new one could be obtained (a token refreshed moments ago ` +
  `is not refreshed again); check the provider's region and base URL, or log in again: ${login}.`

/** The resend rule: the retry goes out only with a token other than the rejected one. */
export const resendTokenRule = (result: TokenResult, rejected: string, rejectedMessage: string): TokenResult =>
  result.ok && result.token === rejected
    ? { ok: false, status: 401, code: "invalid_authentication_error", message: rejectedMessage }
    : result
