/**
 * A device login must be storable before the user is sent to the browser,
 * and must not be lost if storing it still fails after they approved.
 *
 * Seen before this module: with a storage folder the user cannot write
 * (read-only, immutable, another user's), `kimi-auth login` showed the code,
 * the user approved, Kimi issued the tokens, and only then did the save fail
 * ("Cannot create the lock file …"): the tokens were gone and the approval
 * wasted. Now:
 *
 * - {@link checkCanStoreLogin} runs before the device flow starts: it takes
 *   the lock (the lock file is created), reserves the space of a token file
 *   in the folder (written and fsynced, then removed) and checks the token
 *   file's owner and kind. Nothing is sent to Kimi when it fails.
 * - {@link storeLogin} saves the approved tokens; when that still fails (the
 *   disk filled up meanwhile, the folder was made read-only), the tokens are
 *   written to a rescue file of the user's own (0600 in a fresh 0700 folder
 *   under the temporary folder, else the home folder), and the error names
 *   it with the exact `mv` that puts it in place. The token never appears in
 *   a message.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { type LockTimeoutError, TokenStoreError } from "../Errors.js"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { checkFile } from "./StoragePermissions.js"
import { TokenManager } from "../tokens/TokenManager.js"
import { encodeTokenFile, type TokenSet } from "../tokens/TokenSet.js"
import { TokenStore } from "./TokenStore.js"

const DIR_HINT = "fix that (or set OPENCODE_KIMI_AUTH_DIR to a folder you can write), then log in again"

/** The message of a failed pre-login check: what failed, that nothing was spent, what to do. */
export const cannotStoreMessage = (dir: string, reason: string): string =>
  `A Kimi login could not be stored in ${dir}, so the login was not started (nothing was sent to Kimi and ` +
  `there is nothing to approve yet): ${reason.replace(/\.$/, "")}. To log in, ${DIR_HINT}.`

/**
 * Proves that a login can be stored, before any device code is requested:
 * the lock can be taken, a token file's worth of bytes can be written and
 * synced in the folder, and the token file (if any) is a regular file of
 * ours. Writes nothing that stays (the folder itself may be created, 0700).
 */
export const checkCanStoreLogin: Effect.Effect<
  void,
  TokenStoreError | LockTimeoutError,
  TokenStore | KimiAuthConfig
> = Effect.gen(function*() {
  const store = yield* TokenStore
  const settings = yield* KimiAuthConfig
  const refused = (reason: string, cause?: unknown) =>
    new TokenStoreError({ path: store.path, message: cannotStoreMessage(settings.storageDir, reason), cause })
  const file = checkFile(store.path)
  if (file._tag === "Refused") return yield* Effect.fail(refused(file.message))
  yield* store.withLock(Effect.scoped(Effect.asVoid(store.prepareSave ?? Effect.void))).pipe(
    Effect.catchTag("TokenStoreError", (e: TokenStoreError) => Effect.fail(refused(e.message, e)))
  )
}).pipe(Effect.withSpan("checkCanStoreLogin"))

/** Candidate folders for a rescue file, best first: the temporary folder, then the home folder. */
const rescueRoots = (): ReadonlyArray<string> => {
  const roots: Array<string> = []
  for (const f of [() => os.tmpdir(), () => os.homedir()]) {
    try {
      const r = f()
      if (r !== "" && nodePath.isAbsolute(r) && !roots.includes(r)) roots.push(r)
    } catch {
      // no such folder on this system
    }
  }
  return roots
}

/**
 * Writes `text` to `<root>/kimi-auth-rescue-XXXXXX/oauth.json` (a fresh 0700
 * folder, the file 0600, created exclusively) under the first root that takes
 * it. The path, or `undefined` when none did. Never throws.
 */
export const writeRescueFile = (text: string, roots: ReadonlyArray<string> = rescueRoots()): string | undefined => {
  for (const root of roots) {
    try {
      const dir = nodeFs.mkdtempSync(nodePath.join(root, "kimi-auth-rescue-"))
      nodeFs.chmodSync(dir, 0o700)
      const file = nodePath.join(dir, "oauth.json")
      const fd = nodeFs.openSync(file, "wx", 0o600)
      try {
        nodeFs.writeFileSync(fd, text)
        nodeFs.fsyncSync(fd)
      } finally {
        nodeFs.closeSync(fd)
      }
      return file
    } catch {
      // try the next root
    }
  }
  return undefined
}

/** The message when approved tokens could not be stored: where they are now and the exact fix. */
export const unsavedLoginMessage = (tokenFile: string, reason: string, rescued: string | undefined): string =>
  `Kimi approved the login, but it could not be saved to ${tokenFile}: ${reason.replace(/\.$/, "")}. ` +
  (rescued !== undefined
    ? `The new login was kept in ${rescued} (readable by you only). Once the folder is writable, put it in place ` +
      `with: mkdir -p -m 700 ${nodePath.dirname(tokenFile)} && mv ${rescued} ${tokenFile} ` +
      `(no new login needed, if done within the refresh token's lifetime).`
    : `It could not be kept anywhere else either; ${DIR_HINT}.`)

/** The errors {@link rescueLogin} made: their tokens are in a rescue file already. */
const rescuedErrors = new WeakSet<object>()

/**
 * Approved tokens that could not be stored in `file` (because of `cause`):
 * writes them to a rescue file and fails with a `TokenStoreError` saying
 * where they are and how to put them in place. Never loses them silently.
 */
export const rescueLogin = (
  tokens: TokenSet,
  deviceId: string,
  file: string,
  cause: { readonly message: string }
): Effect.Effect<never, TokenStoreError> =>
  Effect.gen(function*() {
    const rescued = yield* Effect.sync(() => writeRescueFile(encodeTokenFile(tokens, deviceId)))
    yield* Effect.logWarning(`login: the approved tokens could not be saved; rescue copy: ${rescued ?? "none"}`)
    const error = new TokenStoreError({ path: file, message: unsavedLoginMessage(file, cause.message, rescued), cause })
    rescuedErrors.add(error)
    return yield* Effect.fail(error)
  })

/** Whether `error` already holds its tokens in a rescue file ({@link rescueLogin}). */
export const isRescued = (error: unknown): boolean => typeof error === "object" && error !== null && rescuedErrors.has(error)

/**
 * Stores the tokens of an approved login (under the lock, served from now on).
 * If that fails, writes them to a rescue file and fails with a
 * `TokenStoreError` saying where they are and how to put them in place.
 */
export const storeLogin = (
  tokens: TokenSet
): Effect.Effect<void, TokenStoreError | LockTimeoutError, TokenManager | DeviceIdentity | KimiAuthConfig> =>
  Effect.gen(function*() {
    const manager = yield* TokenManager
    const identity = yield* DeviceIdentity
    const file = (yield* KimiAuthConfig).tokenFilePath
    yield* manager.setTokens(tokens).pipe(
      Effect.catch((e: TokenStoreError | LockTimeoutError) => rescueLogin(tokens, identity.deviceId, file, e)),
      Effect.uninterruptible
    )
  }).pipe(Effect.withSpan("storeLogin"))
