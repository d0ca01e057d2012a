/**
 * What `kimi-auth status` prints for a login state, as pure functions of the
 * `LoginStatus` (`statusState`, `statusJson`, `statusText`, `statusOutput`).
 * Effect-free: the Effect command (`commands/status.ts`) and the fast path
 * (`FastStatus.ts`) print through {@link statusOutput}, byte for byte alike.
 *
 * @since 0.2.0
 */
import type { LoginStatus } from "../light/LoginState.js"
import { type Account, accountLabel } from "../light/AccountChoice.js"
import { type CliInvoker, cliLoginCommand } from "../light/CliWords.js"
import { ExitCode } from "./ExitCode.js"
import { humanDuration, isoSeconds } from "./Text.js"

/** The three things status can say: no login, a login Kimi refused to refresh (dead), a login. */
export type StatusState = "NotLoggedIn" | "RefreshRefused" | "LoggedIn"

/** Which state a status is in. A refused refresh wins over the access token's clock: that login is dead. */
export const statusState = (status: LoginStatus): StatusState =>
  status.tokens === undefined ? "NotLoggedIn" : status.refreshRefused !== undefined ? "RefreshRefused" : "LoggedIn"

/** The exit code of a state: 7 (not logged in) unless logged in. */
export const statusExitCode = (state: StatusState): ExitCode | undefined =>
  state === "LoggedIn" ? undefined : ExitCode.notLoggedIn

/** The command that logs in to the status's region again. */
export const loginCommandFor = (status: LoginStatus, invoker: CliInvoker = "kimi-auth"): string =>
  cliLoginCommand(status.region, invoker)

/** The device id as printed; none yet says who makes one. */
const deviceIdText = (status: LoginStatus): string =>
  status.deviceId === "" ? "(none yet: the first login or request creates it)" : status.deviceId

/** The `--debug` line: what was read, never a secret. */
export const statusDebugLine = (status: LoginStatus): string => {
  const tokens = status.tokens
  return tokens === undefined
    ? `status: no tokens at ${status.tokenFilePath}`
    : `status: read ${status.tokenFilePath}: access token valid until ${isoSeconds(tokens.expiresAt)}, ` +
      `refresh ${tokens.refreshDue ? "due" : "not due"} (window ${status.refreshWindowSeconds} s); ` +
      `device id from ${status.deviceIdPath}`
}

/** The `--json` object of a status (one line of stdout). */
export const statusJson = (status: LoginStatus): Record<string, unknown> => {
  const base = {
    token_file: status.tokenFilePath,
    device_id: status.deviceId,
    oauth_host: status.oauthHost,
    api_base_url: status.apiBaseUrl,
    region: status.region
  }
  const tokens = status.tokens
  const refused = status.refreshRefused
  if (tokens === undefined) return { logged_in: false, ...base }
  if (refused !== undefined) {
    return {
      logged_in: false,
      refresh_refused: true,
      refresh_refused_at: refused.at,
      refresh_refused_detail: refused.detail,
      expires_at: tokens.expiresAt,
      ...base
    }
  }
  const remaining = tokens.remainingSeconds
  return {
    logged_in: true,
    expires_at: tokens.expiresAt,
    expires_in_seconds: Math.floor(remaining),
    access_token_expired: remaining <= 0,
    refresh_due: tokens.refreshDue,
    scope: tokens.scope,
    ...base
  }
}

/** The styles the text uses (the terminal's colours, or none). */
export interface StatusStyle {
  readonly bold: (s: string) => string
  readonly dim: (s: string) => string
  readonly red: (s: string) => string
  readonly green: (s: string) => string
}

/** The text of a status, as printed on stdout (newline-terminated). */
export const statusText = (status: LoginStatus, style: StatusStyle, invoker: CliInvoker = "kimi-auth"): string => {
  const tokens = status.tokens
  const refused = status.refreshRefused
  const deviceId = deviceIdText(status)
  const loginText = loginCommandFor(status, invoker)
  if (tokens === undefined) {
    return `Not logged in to Kimi. Run ${style.bold(loginText)}.\n` +
      style.dim(`  token file: ${status.tokenFilePath}\n  device id:  ${deviceId}\n`)
  }
  if (refused !== undefined) {
    return `${style.red("✗")} Not logged in to Kimi: Kimi refused the last token refresh (${refused.at}).\n` +
      `  ${refused.detail}. The stored tokens were kept, but they no longer work; run ${style.bold(loginText)}.\n` +
      style.dim(`  token file:   ${status.tokenFilePath}\n  device id:    ${deviceId}\n`)
  }
  const remaining = tokens.remainingSeconds
  return `${style.green("✓")} Logged in to Kimi.\n` +
    `  access token: ${
      remaining > 0 ? `valid for ${humanDuration(remaining)}` : `expired ${humanDuration(-remaining)} ago`
    } (${isoSeconds(tokens.expiresAt)}); ${
      tokens.refreshDue
        ? "due for refresh: the next use refreshes it"
        : `refresh due in ${humanDuration(tokens.refreshInSeconds)}`
    }, with the stored refresh token\n` +
    `  token file:   ${status.tokenFilePath}\n  device id:    ${deviceId}\n` +
    `  region:       ${status.region}\n` +
    `  OAuth host:   ${status.oauthHost}\n  API base:     ${status.apiBaseUrl}\n`
}

/** The account a status names: a registered one (a lone `oauth.json` from before accounts prints as it always did). */
export const namedAccount = (account: Account | undefined): Account | undefined => account?.registered ? account : undefined

/** stdout of `kimi-auth status [--json]` for `status` of account `named` (see {@link namedAccount}). */
export const statusOutput = (
  status: LoginStatus,
  named: Account | undefined,
  json: boolean,
  style: StatusStyle,
  invoker: CliInvoker
): string =>
  json
    ? JSON.stringify({
      ...statusJson(status),
      ...(named ? { account: { label: accountLabel(named), user_id: named.userId ?? null } } : {})
    }) + "\n"
    : statusText(status, style, invoker) + (named ? `  account:      ${accountLabel(named)}\n` : "")
