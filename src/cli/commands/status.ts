/**
 * `kimi-auth status [--json]`: whether you are logged in and until when,
 * never a secret and no request. What it says for each login state is a pure
 * function of the `LoginStatus` (`statusState`, `statusJson`, `statusText`).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command } from "effect/cli"
import { loginStatus, type LoginStatus } from "../../oauth/LoginStatus.js"
import { KimiAuthConfig } from "../../config/KimiAuthConfig.js"
import { accountLabel } from "../../light/AccountChoice.js"
import { accountFlag, debugFlag, jsonFlag } from "../CommonFlags.js"
import { ExitCode } from "../ExitCode.js"
import { bold, dim, green, humanDuration, isoSeconds, out, red } from "../Output.js"
import { cliLoginCommand, type CliInvoker } from "../../edge/HintWords.js"
import { currentInvoker } from "../Invoker.js"
import { run } from "../RunCommand.js"

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

/** `kimi-auth status`. */
export const statusCommand = Command.make("status", { account: accountFlag, json: jsonFlag, debug: debugFlag }, (flags) =>
  run(
    "status",
    flags,
    Effect.gen(function*() {
      const status = yield* loginStatus
      // Which account, once there are accounts (a lone oauth.json from before them prints as it always did).
      const account = (yield* KimiAuthConfig).account
      const named = account?.registered ? account : undefined
      yield* Effect.logDebug(statusDebugLine(status))
      yield* out(
        flags.json
          ? JSON.stringify({
            ...statusJson(status),
            ...(named ? { account: { label: accountLabel(named), user_id: named.userId ?? null } } : {})
          }) + "\n"
          : statusText(status, { bold, dim, red, green }, currentInvoker()) + (named ? `  account:      ${accountLabel(named)}\n` : "")
      )
      return statusExitCode(statusState(status))
    }),
    { account: Option.getOrUndefined(flags.account) }
  )).pipe(
    Command.withDescription("Show whether you are logged in, when the access token expires, the device id and the token file. Never prints a secret and makes no request. Exit code 7 when not logged in (or when Kimi refused the last refresh)."),
    Command.withShortDescription("Show whether you are logged in and until when; never a secret"),
    Command.withExamples([
      { command: "kimi-auth status", description: "Human-readable status" },
      { command: "kimi-auth status --json", description: "For scripts" }
    ])
  )
