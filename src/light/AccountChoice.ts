/**
 * Which account: the accounts as a person sees them (with the default
 * account an older release left in `oauth.json`), their names, finding one
 * by what a person types, and the account used when none is named.
 * Effect-free, so the CLI's fast path and the OpenCode plugin's thin half
 * choose exactly as the core does.
 *
 * The rules, first match wins (decided by {@link chooseAccount}):
 * 1. an account named (user id, email, nickname, its label, its file name,
 *    `default`, or a unique prefix of the id, email or nickname);
 * 2. a region named: that region's active account; else the default account
 *    when it is in that region; else the region's newest account; else no
 *    account (the default file, which holds no login of that region: the
 *    edge says "not logged in" or "the other region", as before accounts);
 * 3. neither: the account last logged in or switched to; else the default
 *    account; else the newest account.
 *
 * A name is what a person recognises: the nickname and the email when both
 * are known, else either, else the user id, else "default account"; then
 * the region ("Ada (ada@example.com), mainland-cn").
 *
 * @since 0.2.0
 */
import * as path from "node:path"
import {
  type AccountRecord,
  DEFAULT_TOKEN_FILE_NAME,
  type FileLogin,
  peekTokenFile,
  readRegistrySync,
  type Registry
} from "./AccountRegistry.js"
import { DEFAULT_REGION, type KimiRegion } from "./Region.js"

/** An account as the edges see it. */
export interface Account extends AccountRecord {
  /** Whether this is the default account (`oauth.json`). */
  readonly isDefault: boolean
  /** Whether the registry lists it (false: an `oauth.json` from before accounts, not yet recorded). */
  readonly registered: boolean
}

/**
 * The accounts of a registry, with the default account: an `oauth.json`
 * holding a login that the registry does not list is added first; the
 * region a token file records beats the registry's (an older release may
 * have logged in again there).
 */
export const accountsOf = (registry: Registry, defaultLogin: FileLogin): ReadonlyArray<Account> => {
  const out: Array<Account> = registry.accounts.map((a) => {
    const isDefault = a.file === DEFAULT_TOKEN_FILE_NAME
    const region = isDefault && defaultLogin._tag === "Login" && defaultLogin.region !== undefined ? defaultLogin.region : a.region
    return { ...a, region, isDefault, registered: true }
  })
  if (defaultLogin._tag === "Login" && !out.some((a) => a.isDefault)) {
    out.unshift({
      file: DEFAULT_TOKEN_FILE_NAME,
      userId: undefined,
      nickname: undefined,
      email: undefined,
      region: defaultLogin.region ?? DEFAULT_REGION,
      addedAt: undefined,
      isDefault: true,
      registered: false
    })
  }
  return out
}

/** Who the account is, without the region: "Ada (ada@example.com)", "ada@example.com", "user u1", "default account". */
export const accountName = (a: Pick<AccountRecord, "nickname" | "email" | "userId">): string =>
  a.nickname !== undefined && a.email !== undefined
    ? `${a.nickname} (${a.email})`
    : a.nickname ?? a.email ?? (a.userId !== undefined ? `user ${a.userId}` : "default account")

/** The account's label: its name, then its region ("Ada (ada@example.com), mainland-cn"). */
export const accountLabel = (a: Pick<AccountRecord, "nickname" | "email" | "userId" | "region">): string =>
  `${accountName(a)}, ${a.region}`

/** What {@link matchAccount} found. */
export type AccountMatch =
  | { readonly _tag: "Found"; readonly account: Account }
  | { readonly _tag: "None" }
  | { readonly _tag: "Ambiguous"; readonly candidates: ReadonlyArray<Account> }

const exactKeys = (a: Account): ReadonlyArray<string> =>
  [a.userId, a.email, a.nickname, accountLabel(a), a.file, a.isDefault ? "default" : undefined]
    .filter((k): k is string => k !== undefined)
    .map((k) => k.toLowerCase())

const prefixKeys = (a: Account): ReadonlyArray<string> =>
  [a.userId, a.email, a.nickname].filter((k): k is string => k !== undefined).map((k) => k.toLowerCase())

/**
 * Finds the account a person means: an exact match (case-insensitive) of the
 * user id, email, nickname, label, file name or `default`; else a unique
 * prefix of the user id, email or nickname. Several exact matches (the same
 * nickname in both regions) or prefixes are ambiguous.
 */
export const matchAccount = (accounts: ReadonlyArray<Account>, query: string): AccountMatch => {
  const q = query.trim().toLowerCase()
  if (q === "") return { _tag: "None" }
  const result = (found: ReadonlyArray<Account>): AccountMatch | undefined =>
    found.length === 1 ? { _tag: "Found", account: found[0]! } : found.length > 1 ? { _tag: "Ambiguous", candidates: found } : undefined
  return result(accounts.filter((a) => exactKeys(a).includes(q))) ??
    result(accounts.filter((a) => prefixKeys(a).some((k) => k.startsWith(q)))) ??
    { _tag: "None" }
}

/** What to choose by: an account a person named, a region, or neither. */
export interface AccountRequest {
  readonly account?: string | undefined
  readonly region?: KimiRegion | undefined
}

/** The account used, or none (the default file), or why the named one cannot be used. */
export type AccountChoice =
  | { readonly _tag: "Account"; readonly account: Account }
  | { readonly _tag: "NoAccount" }
  | { readonly _tag: "Unknown"; readonly query: string; readonly accounts: ReadonlyArray<Account> }
  | { readonly _tag: "Ambiguous"; readonly query: string; readonly candidates: ReadonlyArray<Account> }

const newest = (accounts: ReadonlyArray<Account>): Account | undefined => accounts[accounts.length - 1]

/** The account a request means (the rules are in the module comment). Pure. */
export const chooseAccount = (
  accounts: ReadonlyArray<Account>,
  registry: Pick<Registry, "active" | "current">,
  request: AccountRequest
): AccountChoice => {
  if (request.account !== undefined && request.account.trim() !== "") {
    const m = matchAccount(accounts, request.account)
    if (m._tag === "Found") {
      return { _tag: "Account", account: m.account }
    }
    return m._tag === "Ambiguous"
      ? { _tag: "Ambiguous", query: request.account, candidates: m.candidates }
      : { _tag: "Unknown", query: request.account, accounts }
  }
  const byFile = (file: string | undefined) => (file === undefined ? undefined : accounts.find((a) => a.file === file))
  const found = (a: Account | undefined): AccountChoice => (a === undefined ? { _tag: "NoAccount" } : { _tag: "Account", account: a })
  if (request.region !== undefined) {
    const region = request.region
    const inRegion = accounts.filter((a) => a.region === region)
    const active = byFile(registry.active[region])
    return found(
      (active?.region === region ? active : undefined) ?? inRegion.find((a) => a.isDefault) ?? newest(inRegion)
    )
  }
  return found(byFile(registry.current) ?? accounts.find((a) => a.isDefault) ?? newest(accounts))
}

/** The message of a named account that is not there, or is ambiguous. */
export const accountChoiceMessage = (choice: Extract<AccountChoice, { _tag: "Unknown" | "Ambiguous" }>): string =>
  choice._tag === "Ambiguous"
    ? `"${choice.query}" matches several Kimi accounts: ${choice.candidates.map(accountLabel).join("; ")}. ` +
      `Name one by its email or user id (\`kimi-auth accounts\` lists them).`
    : `No Kimi account matches "${choice.query}". ` +
      (choice.accounts.length === 0
        ? "No account is logged in here: run `kimi-auth login`."
        : `The accounts are: ${choice.accounts.map(accountLabel).join("; ")} (\`kimi-auth accounts\`).`)

/** The accounts of a storage folder as read now (registry and `oauth.json`). */
export interface StoredAccounts {
  readonly registry: Registry
  readonly accounts: ReadonlyArray<Account>
  /** Why the registry was read as empty, when it was damaged. */
  readonly problem: string | undefined
}

/** Reads the accounts of a storage folder: the registry and a peek at `oauth.json`. Never throws. */
export const readAccountsSync = (storageDir: string): StoredAccounts => {
  const { problem, registry } = readRegistrySync(storageDir)
  return { registry, problem, accounts: accountsOf(registry, peekTokenFile(path.join(storageDir, DEFAULT_TOKEN_FILE_NAME))) }
}
