/**
 * The accounts as an Effect API: list them (with who each is and whether
 * it holds a login), switch the active account of a region, forget one on
 * logout, run an effect on another account's own store and manager, and
 * write the registry (`accounts.json`) atomically under its own lock
 * (`accounts.json.lock`, the same cross-process lock as the token files').
 *
 * Every account is the same token store pointed at the account's file
 * ({@link accountSettings}): its own lock, in-flight marker and notes beside
 * it, its own rotation family. Nothing here ever spends one account's
 * refresh token for another; learning who an account is (`/me`) goes
 * through that account's own manager, under that account's lock.
 *
 * For a host that makes its own choice of account (OpenCode 2.1's rows):
 * name the account in the options (`account: account.file` pins it
 * exactly; a user id, email or nickname works too) wherever options are
 * taken (`KimiAuthConfig.layer`, `KimiAuth.layerNode`, `makePluginCore`), or
 * run an effect on it with {@link onAccount}. {@link listAccounts} and the
 * Effect-free `readAccountsSync` / `chooseAccount` / `matchAccount`
 * (`light/AccountChoice.ts`) say which accounts exist; `storeAsAccount`
 * (`AccountLogin.ts`) stores an approved login as an account.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as nodePath from "node:path"
import { KimiAuthConfig, type KimiAuthSettings, lockWaitFor } from "../config/KimiAuthConfig.js"
import { ConfigError, type LockTimeoutError, TokenStoreError } from "../Errors.js"
import { layerFetchHttpClient, layerNodeSettings, platformLayer } from "../KimiAuth.js"
import {
  type Account,
  accountChoiceMessage,
  accountLabel,
  chooseAccount,
  matchAccount,
  readAccountsSync,
  type StoredAccounts
} from "../light/AccountChoice.js"
import { type Registry, REGISTRY_FILE_NAME, writeRegistrySync } from "../light/AccountRegistry.js"
import { REGIONS } from "../light/Region.js"
import { readSmallFileSync, TOKEN_FILE_LIMIT_BYTES } from "../light/SmallFile.js"
import { parseTokenFileText } from "../light/TokenValidation.js"
import * as FileLock from "../lock/FileLock.js"
import { apiBaseFor } from "../request/KimiHttpClient.js"
import { TokenStore } from "../storage/TokenStore.js"
import { TokenManager } from "../tokens/TokenManager.js"
import { activate, forget, learn } from "./AccountDecisions.js"
import { fetchMe, type KimiUser } from "./Me.js"

export type { Account } from "../light/AccountChoice.js"

/**
 * The settings of the account whose token file is `file` (a bare name in the
 * storage folder): the same settings, pointed at that file and its lock, in
 * the account's region (its endpoints unless a host is pinned).
 */
export const accountSettings = (settings: KimiAuthSettings, account: Pick<Account, "file" | "region"> & Partial<Account>): KimiAuthSettings => {
  const tokenFilePath = nodePath.join(settings.storageDir, account.file)
  const region = REGIONS[account.region]
  return {
    ...settings,
    region: account.region,
    oauthHost: settings.oauthHostPinned ? settings.oauthHost : region.oauthHost,
    apiBaseUrl: settings.apiBaseUrlPinned ? settings.apiBaseUrl : region.apiBaseUrl,
    tokenFilePath,
    lockPath: `${tokenFilePath}.lock`,
    account: "isDefault" in account && account.isDefault !== undefined ? (account as Account) : undefined
  }
}

/**
 * Runs `effect` on the account of `file`: with its own store, lock and token
 * manager (and the same device id). The layer lives for this one run, and
 * is built afresh: the layers are memoized by reference, and the caller's
 * `TokenStore.layerFile` (on the caller's file) must not be reused here.
 */
export const onAccount = <A, E, R>(
  settings: KimiAuthSettings,
  account: Pick<Account, "file" | "region"> & Partial<Account>,
  effect: Effect.Effect<A, E, R>
) =>
  // `local`: a fresh subtree. Shared, the caller's memoized store (its own file) would be reused.
  Effect.provide(effect, layerNodeSettings(accountSettings(settings, account)), { local: true })

/**
 * Runs `effect` holding the registry's lock (`accounts.json.lock`, the same
 * cross-process lock as the token files'). Not re-entrant across calls: do
 * not call {@link updateRegistry} inside it, use {@link writeRegistry}.
 * Lock order: the registry's, then a token file's, never the other way.
 */
export const withRegistryLock = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | TokenStoreError | LockTimeoutError, R | KimiAuthConfig> =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const file = nodePath.join(settings.storageDir, REGISTRY_FILE_NAME)
    const lock = yield* FileLock.make({ path: `${file}.lock`, timeout: lockWaitFor(settings), staleAfter: settings.staleLockAfter })
      .pipe(Effect.provide(platformLayer))
    return yield* lock.withLock(effect)
  })

/**
 * Reads the registry, runs `update` and writes what it returns (atomically;
 * nothing when it returns `undefined`); the caller holds the registry lock.
 * Returns the accounts as read afterwards.
 */
export const writeRegistry = (
  update: (stored: StoredAccounts) => Registry | undefined
): Effect.Effect<StoredAccounts, TokenStoreError, KimiAuthConfig> =>
  Effect.flatMap(KimiAuthConfig, (settings) => {
    const dir = settings.storageDir
    return Effect.try({
      try: () => {
        const next = update(readAccountsSync(dir))
        if (next !== undefined) writeRegistrySync(dir, next)
        return readAccountsSync(dir)
      },
      catch: (cause) =>
        new TokenStoreError({
          path: nodePath.join(dir, REGISTRY_FILE_NAME),
          message: `Cannot write the account list ${nodePath.join(dir, REGISTRY_FILE_NAME)}; check that ${dir} is writable by you.`,
          cause
        })
    })
  })

/** {@link writeRegistry} under the registry's lock. */
export const updateRegistry = (
  update: (stored: StoredAccounts) => Registry | undefined
): Effect.Effect<StoredAccounts, TokenStoreError | LockTimeoutError, KimiAuthConfig> =>
  withRegistryLock(writeRegistry(update))

/**
 * Who the account is, asked of Kimi (`/me`) with the account's own access
 * token. With `refresh`, a due token is refreshed first through the
 * account's own manager (under its lock); without, only a token still valid
 * is used, so nothing of this account is spent on another's behalf (a login
 * of another account asks this way). `undefined` when it cannot be learned
 * now (no login, offline, refused): never fails.
 */
export const learnUser = (
  account: Account,
  options: { readonly refresh: boolean } = { refresh: true }
): Effect.Effect<KimiUser | undefined, never, KimiAuthConfig> =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const own = accountSettings(settings, account)
    return yield* onAccount(
      settings,
      account,
      Effect.gen(function*() {
        const tokens = options.refresh
          ? yield* (yield* TokenManager).getTokens
          : yield* Effect.flatMap(TokenStore, (store) => store.load)
        if (tokens === undefined || (!options.refresh && tokens.expiresAt <= Date.now() / 1000 + 30)) return undefined
        return yield* fetchMe(apiBaseFor(own, tokens), tokens.accessToken)
      }).pipe(Effect.provide(layerFetchHttpClient))
    )
  }).pipe(
    Effect.tapError((e) => Effect.logDebug(`accounts: could not learn who ${account.file} is: ${e.message}`)),
    Effect.orElseSucceed(() => undefined)
  )

/** What `kimi-auth accounts` shows of one account. */
export interface AccountStatus {
  readonly account: Account
  readonly label: string
  /** The token file's absolute path. */
  readonly path: string
  /** The active account of its region (what a provider or command of that region uses). */
  readonly active: boolean
  /** The account last logged in or switched to (what a command naming no region uses). */
  readonly current: boolean
  /** `valid`: the access token is good now; `expired`: it is refreshed on next use; `none`: no login; `damaged`: unreadable. */
  readonly state: "valid" | "expired" | "none" | "damaged"
  /** The access token's expiry, epoch seconds, when there is a login. */
  readonly expiresAt: number | undefined
}

/** The state of a token file now (capped read, never throws). */
export const tokenFileState = (file: string, nowSeconds: number): Pick<AccountStatus, "state" | "expiresAt"> => {
  try {
    const found = readSmallFileSync(file, TOKEN_FILE_LIMIT_BYTES)
    if (found._tag === "Missing") return { state: "none", expiresAt: undefined }
    const parsed = found._tag === "Text" ? parseTokenFileText(found.text) : undefined
    if (!parsed?.ok) return { state: "damaged", expiresAt: undefined }
    return { state: parsed.value.expiresAt > nowSeconds ? "valid" : "expired", expiresAt: parsed.value.expiresAt }
  } catch {
    return { state: "damaged", expiresAt: undefined }
  }
}

/** The statuses of every account of a registry read (pure but for reading the token files). */
export const statusesOf = (stored: StoredAccounts, storageDir: string, nowSeconds: number): ReadonlyArray<AccountStatus> =>
  stored.accounts.map((account) => {
    const choice = chooseAccount(stored.accounts, stored.registry, { region: account.region })
    const current = chooseAccount(stored.accounts, stored.registry, {})
    const path = nodePath.join(storageDir, account.file)
    return {
      account,
      label: accountLabel(account),
      path,
      active: choice._tag === "Account" && choice.account.file === account.file,
      current: current._tag === "Account" && current.account.file === account.file,
      ...tokenFileState(path, nowSeconds)
    }
  })

/**
 * Every account of the storage folder with its status. With `learn`, an
 * account whose user is not known yet (the default account after an
 * upgrade) is asked `/me` first, and the answer recorded.
 */
export const listAccounts = (
  options: { readonly learn?: boolean | undefined } = {}
): Effect.Effect<ReadonlyArray<AccountStatus>, never, KimiAuthConfig> =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    let stored = readAccountsSync(settings.storageDir)
    if (options.learn) {
      for (const account of stored.accounts) {
        if (account.userId !== undefined) continue
        if (tokenFileState(nodePath.join(settings.storageDir, account.file), 0).state === "none") continue
        const user = yield* learnUser(account)
        if (user === undefined) continue
        stored = yield* updateRegistry((now) => learn(now.registry, now.accounts.find((a) => a.file === account.file) ?? account, user))
          .pipe(Effect.orElseSucceed(() => stored))
      }
    }
    return statusesOf(stored, settings.storageDir, Math.floor(Date.now() / 1000))
  })

/** The account a person named, or a {@link ConfigError} saying why none (unknown, ambiguous). */
export const findAccount = (query: string): Effect.Effect<Account, ConfigError, KimiAuthConfig> =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const stored = readAccountsSync(settings.storageDir)
    const m = matchAccount(stored.accounts, query)
    if (m._tag === "Found") return m.account
    return yield* new ConfigError({
      message: accountChoiceMessage(
        m._tag === "Ambiguous" ? { _tag: "Ambiguous", query, candidates: m.candidates } : { _tag: "Unknown", query, accounts: stored.accounts }
      )
    })
  })

/**
 * `kimi-auth switch`: makes the account a person named the active account
 * of its region, and the current one. Returns it.
 */
export const switchAccount = (
  query: string
): Effect.Effect<Account, ConfigError | TokenStoreError | LockTimeoutError, KimiAuthConfig> =>
  Effect.gen(function*() {
    const account = yield* findAccount(query)
    yield* updateRegistry((now) => activate(now.registry, now.accounts.find((a) => a.file === account.file) ?? account))
    return account
  })

/** Forgets the account of `file` (after its logout): its record and every pointer to it. */
export const forgetAccount = (file: string): Effect.Effect<void, TokenStoreError | LockTimeoutError, KimiAuthConfig> =>
  Effect.asVoid(updateRegistry((now) => (now.registry.accounts.some((a) => a.file === file) ? forget(now.registry, file) : undefined)))

/** Whether `effect` succeeded, as a boolean (for best-effort registry updates). */
export const succeeded = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<boolean, never, R> =>
  Effect.map(Effect.exit(effect), Exit.isSuccess)
