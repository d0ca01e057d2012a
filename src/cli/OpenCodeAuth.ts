/**
 * OpenCode's copy of the Kimi login, for `kimi-auth logout`: the OAuth
 * entries of `kimi-code-plan-cn` and `kimi-code-plan-global` in OpenCode's
 * `auth.json` (`$XDG_DATA_HOME/opencode/auth.json`, by default
 * `~/.local/share/opencode/auth.json`), removed with care:
 *
 * - only those two providers' `"type": "oauth"` entries go; an API key stored
 *   for them and every other provider's entry stay exactly as they were;
 * - a file that is not a JSON object, is a symbolic link or is huge is left
 *   untouched (and said so);
 * - the new text goes to a temporary file in the same folder with the old
 *   file's mode, is fsynced, and is renamed over `auth.json` only if the file
 *   did not change since it was read (OpenCode has no lock; a change means
 *   read again, up to three times).
 *
 * Synchronous `node:fs`; never throws (an I/O failure is a result).
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Account, chooseAccount, type StoredAccounts } from "../light/AccountChoice.js"
import { type KimiRegion, REGIONS } from "../light/Region.js"

/** The provider ids whose OAuth entries are Kimi logins made by this plugin. */
export const KIMI_PROVIDER_IDS: ReadonlyArray<string> = Object.values(REGIONS).map((r) => r.providerId)

const MAX_AUTH_BYTES = 4 * 1024 * 1024

/** OpenCode's `auth.json` for an environment: `$XDG_DATA_HOME/opencode/auth.json` (absolute only), else below the home. */
export const openCodeAuthPath = (env: Readonly<Record<string, string | undefined>>): string => {
  const xdg = env["XDG_DATA_HOME"]
  const data = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), ".local", "share")
  return path.join(data, "opencode", "auth.json")
}

/** What happened to OpenCode's copy. */
export type OpenCodeLogout =
  | { readonly _tag: "NoFile"; readonly file: string }
  | {
    readonly _tag: "Done"
    readonly file: string
    /** Providers whose OAuth entry was removed. */
    readonly removed: ReadonlyArray<string>
    /** The removed entries' refresh and access tokens (to fingerprint; never printed). */
    readonly secrets: ReadonlyArray<string>
    /** Providers that keep an API key (not an OAuth login). */
    readonly apiKeys: ReadonlyArray<string>
  }
  | { readonly _tag: "Untouched"; readonly file: string; readonly reason: string; readonly secrets: ReadonlyArray<string> }
  /** Not looked at: the account logged out is no region's active account, so no OpenCode 1.18 provider uses it. */
  | { readonly _tag: "Kept"; readonly file: string }

/**
 * The providers whose OpenCode 1.18 copy goes with logging `account` out. Each region's provider uses that
 * region's active account (`stored`, read before the logout), so: the providers of the regions where it is
 * active; both when no other account remains (nothing is left for them to use) or when there is no account
 * (an explicit token file, as before accounts). Pure.
 */
export const openCodeProvidersOf = (
  account: Pick<Account, "file"> | undefined,
  stored: Pick<StoredAccounts, "registry" | "accounts">
): ReadonlyArray<string> => {
  if (account === undefined || stored.accounts.every((a) => a.file === account.file)) return KIMI_PROVIDER_IDS
  return (Object.keys(REGIONS) as Array<KimiRegion>)
    .filter((region) => {
      const chosen = chooseAccount(stored.accounts, stored.registry, { region })
      return chosen._tag === "Account" && chosen.account.file === account.file
    })
    .map((region) => REGIONS[region].providerId)
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const stringsOf = (entry: Record<string, unknown>) =>
  [entry["refresh"], entry["access"]].filter((v): v is string => typeof v === "string" && v !== "")

/** Renames `tmp` over `file` unless `file` no longer holds `expected`. */
const replaceIfUnchanged = (file: string, tmp: string, expected: string): boolean => {
  const now = fs.readFileSync(file, "utf8")
  if (now !== expected) return false
  fs.renameSync(tmp, file)
  return true
}

/**
 * Removes the Kimi OAuth entries of `providers` (by default both Kimi providers) from OpenCode's
 * `auth.json` at `file` (see the module comment).
 */
export const removeKimiEntries = (file: string, providers: ReadonlyArray<string> = KIMI_PROVIDER_IDS): OpenCodeLogout => {
  let seen: ReadonlyArray<string> = []
  for (let attempt = 0; attempt < 3; attempt++) {
    let st: fs.Stats
    try {
      st = fs.lstatSync(file)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "NoFile", file }
      return { _tag: "Untouched", file, reason: `it cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`, secrets: [] }
    }
    if (st.isSymbolicLink()) return { _tag: "Untouched", file, reason: "it is a symbolic link", secrets: [] }
    if (!st.isFile()) return { _tag: "Untouched", file, reason: "it is not a regular file", secrets: [] }
    if (st.size > MAX_AUTH_BYTES) return { _tag: "Untouched", file, reason: "it is larger than 4 MiB", secrets: [] }
    let text: string
    try {
      text = fs.readFileSync(file, "utf8")
    } catch (e) {
      return { _tag: "Untouched", file, reason: `it cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`, secrets: [] }
    }
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch {
      return { _tag: "Untouched", file, reason: "it is not valid JSON", secrets: [] }
    }
    if (!isObject(data)) return { _tag: "Untouched", file, reason: "it is not a JSON object", secrets: [] }
    const removed: Array<string> = []
    const apiKeys: Array<string> = []
    const secrets: Array<string> = []
    const kept: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(data)) {
      if (providers.includes(key) && isObject(value) && value["type"] === "oauth") {
        removed.push(key)
        secrets.push(...stringsOf(value))
        continue
      }
      if (providers.includes(key) && isObject(value) && value["type"] === "api") apiKeys.push(key)
      kept[key] = value
    }
    seen = secrets
    if (removed.length === 0) return { _tag: "Done", file, removed, secrets, apiKeys }
    const next = JSON.stringify(kept, null, 2)
    const tmp = path.join(path.dirname(file), `.auth.json.kimi-auth.${process.pid}.${crypto.randomBytes(6).toString("hex")}.tmp`)
    try {
      const fd = fs.openSync(tmp, "wx", st.mode & 0o777)
      try {
        fs.writeFileSync(fd, next)
        fs.fsyncSync(fd)
      } finally {
        fs.closeSync(fd)
      }
      if (process.platform !== "win32") fs.chmodSync(tmp, st.mode & 0o777)
      if (replaceIfUnchanged(file, tmp, text)) return { _tag: "Done", file, removed, secrets, apiKeys }
      fs.rmSync(tmp, { force: true })
    } catch (e) {
      fs.rmSync(tmp, { force: true })
      return { _tag: "Untouched", file, reason: `it could not be rewritten (${(e as NodeJS.ErrnoException).code ?? "error"})`, secrets }
    }
  }
  return { _tag: "Untouched", file, reason: "it kept changing while it was edited (is OpenCode writing it?)", secrets: seen }
}
