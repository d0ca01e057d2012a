/**
 * Settings for an account: {@link resolveSettings}, with the token file of
 * the account chosen by `account` (or the active one) in the storage folder.
 * Effect-free, so the CLI's fast path, the OpenCode plugin's thin half and
 * the core (`KimiAuthConfig.resolve`) pick the same file.
 *
 * The configuration is where an account is chosen: the token store, the
 * lock and the notes are the same for every account, pointed at the file
 * chosen here. An explicit `tokenFilePath` is its own account (nothing is
 * chosen); giving it together with `account` is refused.
 *
 * @since 0.2.0
 */
import * as path from "node:path"
import { type Account, accountChoiceMessage, chooseAccount, readAccountsSync } from "./AccountChoice.js"
import { type Env, type PlainSettings, type Resolved, resolveSettings, type SettingsOptions } from "./ResolveSettings.js"

/** Settings options plus the account to use. */
export interface AccountSettingsOptions extends SettingsOptions {
  /**
   * The Kimi account to use: its user id, email, nickname, label, or a
   * unique prefix (`kimi-auth accounts` lists them). Default: the active
   * account of `region`, or (no region either) the account last logged in or
   * switched to.
   */
  readonly account?: string | undefined
}

/** Settings with the account they were resolved for (`undefined`: an explicit token file, or no account yet). */
export interface AccountPlainSettings extends PlainSettings {
  readonly account: Account | undefined
}

const blank = (s: string | undefined) => s === undefined || s.trim() === ""

/**
 * Resolves settings and the account's token file: the storage folder's
 * registry is read (capped, never throws) unless a `tokenFilePath` is given.
 * A region named in the options still picks the endpoints; a chosen account
 * brings its own region otherwise. Fails with a message for an unknown or
 * ambiguous account.
 */
export const resolveAccountSettings = (
  options: AccountSettingsOptions = {},
  env: Env = {}
): Resolved<AccountPlainSettings> => {
  const { account: wanted, ...rest } = options
  const base = resolveSettings(rest, env)
  if (!base.ok) return base
  if (!blank(rest.tokenFilePath)) {
    if (!blank(wanted)) {
      return {
        ok: false,
        message: `Give either an account ("${wanted}") or a token file path (${rest.tokenFilePath}), not both: ` +
          `an account names its own token file.`
      }
    }
    return { ok: true, value: { ...base.value, account: undefined } }
  }
  const stored = readAccountsSync(base.value.storageDir)
  const choice = chooseAccount(stored.accounts, stored.registry, { account: wanted, region: rest.region })
  if (choice._tag === "Unknown" || choice._tag === "Ambiguous") return { ok: false, message: accountChoiceMessage(choice) }
  if (choice._tag === "NoAccount") return { ok: true, value: { ...base.value, account: undefined } }
  const account = choice.account
  const again = resolveSettings(
    { ...rest, region: account.region, tokenFilePath: path.join(base.value.storageDir, account.file) },
    env
  )
  return again.ok ? { ok: true, value: { ...again.value, account } } : again
}
