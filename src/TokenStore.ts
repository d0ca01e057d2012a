/**
 * Where the tokens live: `oauth.json` in the storage folder.
 *
 * STUB: the interface is fixed; the file and memory layers are being built.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { CorruptTokenFileError, LockTimeoutError, TokenStoreError } from "./Errors.js"
import type { TokenSet } from "./TokenSet.js"

/** The token store. */
export interface TokenStoreShape {
  /** Absolute path of the token file (`<storageDir>/oauth.json` by default). */
  readonly path: string
  /**
   * The stored tokens, or `undefined` when there is no file. A file that does not
   * parse is moved aside to `oauth.json.corrupt-<time>` and reported as
   * {@link CorruptTokenFileError}; it is never overwritten or deleted.
   * Repairs looser modes (folder 0700, file 0600) when it finds them.
   */
  readonly load: Effect.Effect<TokenSet | undefined, TokenStoreError | CorruptTokenFileError>
  /** Atomically replaces the file (temp file in the same folder, fsync, rename), 0600 in a 0700 folder. */
  readonly save: (tokens: TokenSet) => Effect.Effect<void, TokenStoreError>
  /** Removes the token file (never the device id). Succeeds with `false` when there was none. */
  readonly clear: Effect.Effect<boolean, TokenStoreError>
  /**
   * Runs `self` while holding the cross-process lock (`oauth.json.lock`), serialized
   * in process too. Waits at most the configured lock timeout; recovers a stale lock
   * left by a dead holder after about 10 s.
   */
  readonly withLock: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | LockTimeoutError | TokenStoreError, R>
}

/** The token store service. */
export class TokenStore extends Context.Service<TokenStore, TokenStoreShape>()("opencode-kimi-auth/TokenStore") {}
