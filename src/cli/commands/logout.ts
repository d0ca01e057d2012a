/**
 * `kimi-auth logout`: removes the stored tokens (the device id is kept) and
 * OpenCode's copy of the Kimi device login, fingerprinting both so that no
 * leftover copy is used again. What it says is `logoutText`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command } from "effect/cli"
import * as fs from "node:fs"
import { KimiAuthConfig } from "../../config/KimiAuthConfig.js"
import { logoutMarkerPath, recordLoggedOut } from "../../storage/Notes.js"
import { TokenManager } from "../../tokens/TokenManager.js"
import { TokenStore } from "../../storage/TokenStore.js"
import { forgetAccount } from "../../accounts/Accounts.js"
import { accountLabel, readAccountsSync } from "../../light/AccountChoice.js"
import { accountFlag, debugFlag } from "../CommonFlags.js"
import { KIMI_PROVIDER_IDS, openCodeAuthPath, type OpenCodeLogout, openCodeProvidersOf, removeKimiEntries } from "../OpenCodeAuth.js"
import { out } from "../Output.js"
import { run } from "../RunCommand.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

/** What logout says about OpenCode's copy, one line. */
export const openCodeLine = (r: OpenCodeLogout, recorded: boolean): string => {
  switch (r._tag) {
    case "NoFile":
      return `OpenCode holds no Kimi login (no ${r.file}).`
    case "Done": {
      const keys = r.apiKeys.length > 0
        ? ` OpenCode still holds a Kimi API key for ${r.apiKeys.join(", ")} there (not a device login; ` +
          `\`opencode auth logout\` removes it).`
        : ""
      return (r.removed.length > 0
        ? `Removed OpenCode's copy of the login (${r.removed.join(", ")}) from ${r.file}; its other entries are unchanged.`
        : `OpenCode holds no Kimi device login in ${r.file}.`) + keys
    }
    case "Kept":
      return `OpenCode 1.18's Kimi logins in ${r.file} were left as they are: each region's provider uses that region's ` +
        "active account, and this account is active in neither."
    case "Untouched":
      return `OpenCode's ${r.file} was left unchanged: ${r.reason}. ` +
        (recorded ? "Its copy of this login is never used again by this plugin; " : "") +
        "to remove Kimi's entries from it, run `opencode auth logout`."
  }
}

/** What logout did, as the three facts its text is made of. */
export interface LogoutOutcome {
  /** Whether the stored token file was removed (false: there was none). */
  readonly removed: boolean
  /** What became of OpenCode's copy. */
  readonly opencode: OpenCodeLogout
  /** Whether the fingerprints of OpenCode's copy were recorded. */
  readonly recorded: boolean
}

/** The text logout prints on stdout: the token file, OpenCode's copy, and whether the login is gone for good. */
export const logoutText = (outcome: LogoutOutcome, tokenFilePath: string): string => {
  const { opencode, recorded, removed } = outcome
  const copyRemoved = opencode._tag === "Done" && opencode.removed.length > 0
  return (removed
    ? `Logged out: removed ${tokenFilePath}. The device id is kept.\n`
    : `Not logged in here; nothing to remove at ${tokenFilePath}.\n`) +
    `${openCodeLine(opencode, recorded)}\n` +
    (removed || copyRemoved ? "Nothing uses this login again; `kimi-auth login` makes a new one.\n" : "")
}

/**
 * Removes the Kimi OAuth entries of OpenCode's auth.json and records their
 * fingerprints in `storageDir`, so no copy is ever adopted back. Run under the
 * store's lock. A failure to record leaves `recorded` false.
 */
export const forgetOpenCodeCopy = (
  storageDir: string,
  env: NodeJS.ProcessEnv,
  providers: ReadonlyArray<string> = KIMI_PROVIDER_IDS
): { readonly opencode: OpenCodeLogout; readonly recorded: boolean } => {
  if (providers.length === 0) return { opencode: { _tag: "Kept", file: openCodeAuthPath(env) }, recorded: false }
  const r = removeKimiEntries(openCodeAuthPath(env), providers)
  const secrets = r._tag === "NoFile" || r._tag === "Kept" ? [] : r.secrets
  try {
    if (secrets.length > 0) fs.mkdirSync(storageDir, { recursive: true, mode: 0o700 })
    recordLoggedOut(storageDir, secrets)
    return { opencode: r, recorded: secrets.length > 0 }
  } catch {
    return { opencode: r, recorded: false }
  }
}

/** `kimi-auth logout`. */
export const logoutCommand = Command.make("logout", { account: accountFlag, debug: debugFlag }, (flags) =>
  run(
    "logout",
    flags,
    Effect.gen(function*() {
      const settings = yield* KimiAuthConfig
      const manager = yield* TokenManager
      const store = yield* TokenStore
      // Which OpenCode 1.18 providers use this account (their region's active one), read before anything changes.
      const providers = openCodeProvidersOf(settings.account, readAccountsSync(settings.storageDir))
      // Records the login's fingerprints (logged-out.json), then removes the file, under the lock.
      const removed = yield* manager.clear
      // OpenCode's copy: those providers' Kimi OAuth entries go too, and are fingerprinted, so no copy is ever
      // adopted back; a provider that uses another account keeps its login.
      const { opencode, recorded } = yield* store.withLock(
        Effect.sync(() => forgetOpenCodeCopy(settings.storageDir, process.env, providers))
      )
      yield* Effect.logDebug(
        `logout: ${removed ? "removed" : "found no"} ${settings.tokenFilePath}; kept the device id in ${settings.deviceIdPath}; ` +
          `OpenCode: ${opencode._tag}; fingerprints in ${logoutMarkerPath(settings.storageDir)}`
      )
      // The account goes from the account list too: its region falls back to its other accounts.
      const account = settings.account?.registered ? settings.account : undefined
      if (account !== undefined) yield* forgetAccount(account.file)
      yield* out(
        logoutText({ removed, opencode, recorded }, settings.tokenFilePath) +
          (account === undefined ? "" : `  account: ${accountLabel(account)} is no longer in the account list.\n`)
      )
    }),
    { account: Option.getOrUndefined(flags.account) }
  )).pipe(
    Command.withDescription(
      "Log out: remove the stored tokens (the device id is kept) and OpenCode 1.18's copy of the Kimi device login " +
        "(the OAuth entries of its auth.json for kimi-code-plan-cn / kimi-code-plan-global where this account is the " +
        "region's active one, or both for the last account; other entries are untouched). " +
        "The login's fingerprints are kept in logged-out.json so that no leftover copy is ever used again."
    ),
    Command.withShortDescription(summaryOf("logout")),
    Command.withExamples(examplesOf("logout"))
  )
