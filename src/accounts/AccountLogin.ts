/**
 * A device login that knows accounts: once Kimi approves, `/me` says who
 * logged in; the same user (in the same region) replaces that account's
 * login in its own file, another user adds an account in a new file, and
 * the login becomes the active account of its region and the current one.
 *
 * Upgrade safety: an account whose user is not known yet (an `oauth.json`
 * from before accounts) is asked `/me` first, through its own manager,
 * so logging in again as that user replaces it instead of adding a twin;
 * and before a login replaces `oauth.json` as its user's, `oauth.json` is
 * asked who it holds now (an older release may have logged another user in).
 * When `/me` cannot answer, the login is still stored: in `oauth.json` when
 * that holds no login, else as a new account, never over another login.
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as Effect from "effect/Effect"
import * as nodePath from "node:path"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import type { LockTimeoutError, TokenStoreError } from "../Errors.js"
import { layerFetchHttpClient } from "../KimiAuth.js"
import { type Account, readAccountsSync } from "../light/AccountChoice.js"
import { DEFAULT_TOKEN_FILE_NAME, isTokenFileName, peekTokenFile } from "../light/AccountRegistry.js"
import type { DeviceFlow } from "../oauth/DeviceFlow.js"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { approveLogin, type LoginError, type LoginHandlers } from "../oauth/Login.js"
import { apiBaseFor } from "../request/KimiHttpClient.js"
import { isRescued, rescueLogin, storeLogin } from "../storage/LoginStorage.js"
import type { TokenStore } from "../storage/TokenStore.js"
import type { TokenManager } from "../tokens/TokenManager.js"
import type { TokenSet } from "../tokens/TokenSet.js"
import { learnUser, onAccount, updateRegistry, withRegistryLock, writeRegistry } from "./Accounts.js"
import { learn, placeLogin, recordLogin } from "./AccountDecisions.js"
import { fetchMe, type KimiUser } from "./Me.js"

/** What a login did. */
export interface AccountLoginResult {
  readonly tokens: TokenSet
  /**
   * The account logged in (as recorded now); `undefined` for the first login
   * of a storage folder (the default account, named once asked) and for an
   * explicit token file not named `oauth….json`.
   */
  readonly account: Account | undefined
  /** The token file it was stored in. */
  readonly tokenFilePath: string
  /** True when it replaced the login of an account of the same user; false when it added an account. */
  readonly replaced: boolean
}

/** Asks `/me` who the new login is; `undefined` (logged) when Kimi cannot say. */
const whoIs = (tokens: TokenSet) =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    return yield* fetchMe(apiBaseFor(settings, tokens), tokens.accessToken)
  }).pipe(
    Effect.provide(layerFetchHttpClient),
    Effect.tapError((e) => Effect.logDebug(`login: ${e.message} It is stored as a new account unless oauth.json is free.`)),
    Effect.orElseSucceed((): KimiUser | undefined => undefined)
  )

/** Learns who the region's accounts of unknown user are (the default account after an upgrade), and records it. */
const learnUnknown = (region: TokenSet["region"]) =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    for (const account of readAccountsSync(settings.storageDir).accounts) {
      if (account.userId !== undefined || account.region !== region) continue
      if (peekTokenFile(nodePath.join(settings.storageDir, account.file))._tag === "None") continue
      const user = yield* learnUser(account, { refresh: false })
      if (user === undefined) continue
      yield* updateRegistry((now) => learn(now.registry, now.accounts.find((a) => a.file === account.file) ?? account, user))
        .pipe(Effect.ignore)
    }
  })

/**
 * Before a login of `user` replaces `oauth.json` because the registry says it
 * is theirs: asks who it holds now. An older release beside this one keeps one
 * login per folder, in `oauth.json`, and may have logged another user in there
 * since; that login must not be overwritten. When `/me` says `oauth.json` holds
 * another user, the registry learns it, and the login goes beside it as a new
 * account. A login that cannot say (refused, offline) is replaced as the
 * registry says: the same user logging in again is how a dead login is mended.
 */
const recheckDefault = (user: KimiUser, region: TokenSet["region"]) =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const account = readAccountsSync(settings.storageDir).accounts.find((a) =>
      a.file === DEFAULT_TOKEN_FILE_NAME && a.userId === user.userId && a.region === region
    )
    if (account === undefined || peekTokenFile(nodePath.join(settings.storageDir, account.file))._tag !== "Login") return
    const holder = yield* learnUser(account, { refresh: true })
    if (holder === undefined || holder.userId === user.userId) return
    yield* Effect.logDebug(`login: ${account.file} holds user ${holder.userId} now (an older release logged them in); recorded`)
    yield* updateRegistry((now) => learn(now.registry, now.accounts.find((a) => a.file === account.file) ?? account, holder))
      .pipe(Effect.ignore)
  })

/**
 * Stores approved tokens as an account: `/me` says who; the same user (in
 * the same region) replaces their account's login, another user adds an
 * account; the account becomes active in its region and current. Approved
 * tokens that cannot be saved are kept in a rescue file (`storeLogin`). For
 * edges that drive the device flow themselves (the facade, OpenCode).
 */
export const storeAsAccount = (
  tokens: TokenSet
): Effect.Effect<AccountLoginResult, TokenStoreError | LockTimeoutError, TokenManager | DeviceIdentity | KimiAuthConfig> =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    if (!isTokenFileName(nodePath.basename(settings.tokenFilePath))) {
      // An explicit token file of another name is its own account: no registry, no /me.
      yield* storeLogin(tokens)
      return { tokens, account: undefined, tokenFilePath: settings.tokenFilePath, replaced: false }
    }
    const region = tokens.region ?? settings.region
    const dir = settings.storageDir
    const defaultFile = nodePath.join(dir, DEFAULT_TOKEN_FILE_NAME)
    /** No login anywhere here: the login goes to `oauth.json`, as before accounts, and `/me` is not needed yet. */
    const firstHere = () => peekTokenFile(defaultFile)._tag === "None" && readAccountsSync(dir).accounts.length === 0
    const asked = !firstHere()
    const known = asked ? yield* whoIs(tokens) : undefined
    if (known !== undefined) {
      yield* learnUnknown(region)
      yield* recheckDefault(known, region)
    }
    // The choice and the save under the registry's lock: two logins at once never pick the same free file.
    return yield* withRegistryLock(Effect.gen(function*() {
      const store = (file: string) =>
        nodePath.join(dir, file) === settings.tokenFilePath ? storeLogin(tokens) : onAccount(settings, { file, region }, storeLogin(tokens))
      if (firstHere()) {
        // A single login is what it always was: no account is named in the answer (who it is is asked when first needed).
        yield* store(DEFAULT_TOKEN_FILE_NAME)
        return { tokens, account: undefined, tokenFilePath: defaultFile, replaced: false }
      }
      const user = asked ? known : yield* whoIs(tokens)
      const placement = placeLogin({
        accounts: readAccountsSync(dir).accounts,
        user,
        region,
        defaultHoldsLogin: peekTokenFile(defaultFile)._tag === "Login",
        fallbackId: `unknown-${crypto.randomBytes(4).toString("hex")}`
      })
      yield* Effect.logDebug(
        `login: ${user === undefined ? "an unknown user" : `user ${user.userId}`} at ${region} -> ${placement.file} ` +
          `(${placement.replaces === undefined ? "a new account" : "replaces that account's login"})`
      )
      yield* store(placement.file)
      const now = new Date().toISOString()
      const after = yield* writeRegistry((s) => recordLogin(s.registry, { file: placement.file, user, region, now }))
      const account = after.accounts.find((a) => a.file === placement.file)
      return { tokens, account, tokenFilePath: nodePath.join(dir, placement.file), replaced: placement.replaces !== undefined }
    }))
  }).pipe(
    // Kimi approved this login: whatever fails on the way to its file (the registry's lock, a folder that
    // vanished), the tokens go to a rescue file, never nowhere. A failure of the save itself is rescued already.
    Effect.catch((e: TokenStoreError | LockTimeoutError) =>
      isRescued(e)
        ? Effect.fail(e)
        : Effect.gen(function*() {
          const file = (yield* KimiAuthConfig).tokenFilePath
          // Where no login is (the folder vanished, say), the ordinary save: it fails again, keeps the login in
          // this process's memory and writes the rescue file. Never over a login: it may be another account's.
          if (peekTokenFile(file)._tag === "None") {
            yield* storeLogin(tokens)
            yield* Effect.logWarning(`login: ${e.message}; the login was saved to ${file} without the account list`)
            return { tokens, account: undefined, tokenFilePath: file, replaced: false } satisfies AccountLoginResult
          }
          const identity = yield* DeviceIdentity
          return yield* rescueLogin(tokens, identity.deviceId, file, e)
        })
    ),
    Effect.uninterruptible,
    Effect.withSpan("storeAsAccount")
  )

/** Runs a device login (as `Login.login`) and stores it as an account ({@link storeAsAccount}). */
export const loginAccount = <R = never>(
  handlers: LoginHandlers<R>
): Effect.Effect<
  AccountLoginResult,
  LoginError | TokenStoreError | LockTimeoutError,
  DeviceFlow | TokenManager | TokenStore | DeviceIdentity | KimiAuthConfig | R
> => Effect.flatMap(approveLogin(handlers), storeAsAccount)
