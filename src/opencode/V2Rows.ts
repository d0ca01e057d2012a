/**
 * OpenCode 2.1's credential rows as the plugin reads them, and the
 * decisions made on them, as pure named functions (test/opencode-unit/
 * V2Rows.test.ts): which login a request through the host carries, whether
 * the host retries an answer, and the messages a user reads.
 *
 * In 2.1 the host picks a provider's active row per request
 * (`ctx.integration.connection.active(<provider>)`: a credential row, the
 * `KIMI_API_KEY` environment variable, or nothing) and puts the row's access
 * token on the wire; the plugin's `http.request` hook replaces it with the
 * package's current token when the row is the plugin's own login
 * (test/opencode/NOTES.md, "OpenCode 2.1").
 *
 * @since 0.2.0
 */
import { REGIONS, type KimiRegion } from "../light/Region.js"
import { isQuotaFailure, V2_METHOD_ID } from "./V2PluginDecisions.js"

/**
 * What a request through a provider carries:
 * - `"package"`: the package's login (the row is ours, or the host has no row API: older V2 hosts);
 * - `"own-key"`: the row's own key (an API key row or `KIMI_API_KEY`), kept; only the identity headers are added;
 * - `"none"`: the host has no Kimi row for the provider: no Kimi login is sent through it.
 */
export type RowUse = "package" | "own-key" | "none"

/**
 * The decision on `ctx.integration.connection.active(<provider>)`'s answer.
 * `hasRowApi` is false on hosts without it (the 2.0 previews): they keep the
 * package's login, as before.
 */
export const rowUse = (active: unknown, hasRowApi: boolean): RowUse => {
  if (!hasRowApi) return "package"
  if (typeof active !== "object" || active === null) return "none"
  const a = active as { type?: unknown; method?: unknown }
  return a.type === "credential" && a.method === "oauth" ? "package" : "own-key"
}

/** The login command inside OpenCode 2.1 for a provider. */
export const v2LoginCommand = (providerId: string): string => `opencode auth login ${providerId} --method ${V2_METHOD_ID}`

/** The message when the host has no Kimi row for the provider (nothing is sent). */
export const noRowMessage = (providerId: string, region: KimiRegion): string =>
  `Kimi login required: this OpenCode has no Kimi account connected on ${providerId} (${REGIONS[region].label}), ` +
  `so no Kimi login is sent through it (a login made with \`kimi-auth login\` or removed with \`opencode auth logout\` is not used here). ` +
  `Log in: run \`${v2LoginCommand(providerId)}\`, or use \`/connect\` in OpenCode.`

/**
 * The message when the active row is the plugin's but this machine's store has no login for it:
 * logged out with `kimi-auth logout`, or a row copied from another machine with `opencode auth import`.
 */
export const rowWithoutLoginMessage = (providerId: string): string =>
  `Kimi login required: the Kimi account connected on ${providerId} has no login on this machine. ` +
  `Either it was logged out (\`kimi-auth logout\`), or the row came from another machine (\`opencode auth export\`/\`import\`): ` +
  `a Kimi login rotates its refresh token at every use, so it cannot be copied between machines, and OpenCode's row holds only a marker. ` +
  `Log in on this machine: run \`${v2LoginCommand(providerId)}\` (then remove the old row with \`opencode auth logout ${providerId} <its label or id>\`).`

/** Error codes of answers the host must not retry beside a used-up quota ({@link isQuotaFailure}): Kimi's raw quota code, every login failure. */
const NO_RETRY = /exceeded_current_quota_error|kimi_login_required|kimi_region_mismatch|invalid_authentication_error|kimi_config/

/**
 * Whether the host's retry of a failed call should be stopped: a used-up quota or a login
 * failure never heals by waiting. Reads 2.1's `{ error: { type, message, status, response: { body } } }`
 * and the older events' `error` / `cause`.
 */
export const stopRetry = (event: unknown): boolean => {
  if (typeof event !== "object" || event === null) return false
  const e = event as { error?: unknown; cause?: unknown }
  const error = e.error ?? e.cause
  if (typeof error === "object" && error !== null && (error as { type?: unknown }).type === "provider.auth") return true
  let text: string
  try {
    text = typeof error === "string" ? error : JSON.stringify(error ?? "")
  } catch {
    return false
  }
  return NO_RETRY.test(text) || isQuotaFailure(text)
}

/** Applies {@link stopRetry} to a host's retry event, in every shape the V2 hosts use. */
export const applyRetryDecision = (event: Record<string, unknown>): void => {
  if (!stopRetry(event)) return
  event["decision"] = { retry: false }
  if ("retry" in event) event["retry"] = false
  if ("retryable" in event) event["retryable"] = false
}

/** What a row's `metadata` says of the account (written at login by {@link accountMetadata}). */
export interface RowAccount {
  /** The account's token file, a bare `oauth….json` name in the package's storage folder. */
  readonly account: string
  readonly label: string
}

/** The metadata a login's row carries: which account (never a secret), and its label. */
export const accountMetadata = (account: RowAccount): Record<string, unknown> => ({ account: account.account, label: account.label })

/** The account file a credential's `metadata` names, if any (a bare `oauth….json` name only). */
export const accountOfCredential = (credential: unknown): string | undefined => {
  const m = (credential as { metadata?: unknown } | null | undefined)?.metadata
  const file = typeof m === "object" && m !== null ? (m as { account?: unknown }).account : undefined
  return typeof file === "string" && /^oauth(\.[A-Za-z0-9_-]{1,80}){0,2}\.json$/.test(file) ? file : undefined
}

/** The row's label: the account's name and region, as the login recorded it; `undefined` leaves the host's default. */
export const labelOfCredential = (credential: unknown): string | undefined => {
  const m = (credential as { metadata?: unknown } | null | undefined)?.metadata
  const label = typeof m === "object" && m !== null ? (m as { label?: unknown }).label : undefined
  return typeof label === "string" && label.trim() !== "" ? `Kimi ${label}` : undefined
}
