/**
 * A durable note that Kimi refused a refresh: `oauth.json.refused`, beside
 * the token file, written when a refresh is refused for good (`invalid_grant`
 * after the re-read under the lock). The token file itself is kept (nothing
 * is deleted for a failure), so without this note `kimi-auth status` would
 * read a still-unexpired access token and say "Logged in" about a login the
 * server has already dropped. `status` reads the note without a request.
 *
 * The note names the refused refresh token by a short SHA-256 fingerprint
 * (never the token): it applies only while that token is the one stored, so
 * a new login, or a rotation by another tool, makes it stale without anyone
 * having to remove it.
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import * as Redacted from "effect/Redacted"
import type { TokenSet } from "../tokens/TokenSet.js"

/** A recorded refusal of the stored refresh token. */
export interface RefreshRefusal {
  /** ISO 8601 time of the refusal. */
  readonly at: string
  /** What the server said, in a few words, without a secret (e.g. `HTTP 400 invalid_grant`). */
  readonly detail: string
}

/** The largest note read; a real one is about 150 bytes. */
const MAX_NOTE_BYTES = 4096

/** The note's path for a token file. */
export const refusalPath = (tokenFilePath: string): string => `${tokenFilePath}.refused`

/** A 16-hex-digit fingerprint of a refresh token: enough to tell tokens apart, useless to an attacker. */
export const fingerprint = (tokens: TokenSet): string =>
  crypto.createHash("sha256").update(Redacted.value(tokens.refreshToken)).digest("hex").slice(0, 16)

/**
 * Writes the note for `refused` (0600): a new file renamed over the old, so a
 * link planted at the note's path is replaced, never written through. Best
 * effort: a note that cannot be written is logged, never an error.
 */
export const recordRefusal = (
  fs: FileSystem.FileSystem,
  tokenFilePath: string,
  refused: TokenSet,
  detail: string
): Effect.Effect<void> => {
  const target = refusalPath(tokenFilePath)
  const tmp = `${target}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`
  const text =
    JSON.stringify({ at: new Date().toISOString(), detail: detail.slice(0, 200), refresh_token_sha256: fingerprint(refused) }) +
    "\n"
  return fs.writeFileString(tmp, text, { flag: "wx", mode: 0o600 }).pipe(
    Effect.andThen(fs.rename(tmp, target)),
    Effect.onError(() => fs.remove(tmp).pipe(Effect.ignore)),
    Effect.catch((e) => Effect.logDebug(`token refresh: could not note the refusal beside the token file (${e.message})`))
  )
}

/** The note, when it concerns the refresh token in `stored`; `undefined` otherwise (none, stale, unreadable, damaged). */
export const readRefusalNote = (
  fs: FileSystem.FileSystem,
  tokenFilePath: string,
  stored: TokenSet
): Effect.Effect<RefreshRefusal | undefined> =>
  // A note is ~150 bytes: anything larger is not ours, and is not read into memory.
  fs.stat(refusalPath(tokenFilePath)).pipe(
    Effect.flatMap((info) =>
      info.type === "File" && info.size <= MAX_NOTE_BYTES ? fs.readFileString(refusalPath(tokenFilePath)) : Effect.succeed("")
    ),
    Effect.map((text): RefreshRefusal | undefined => {
      if (text === "") return undefined
      try {
        const u = JSON.parse(text) as Record<string, unknown>
        return u["refresh_token_sha256"] === fingerprint(stored) && typeof u["at"] === "string"
          ? { at: u["at"].slice(0, 40), detail: typeof u["detail"] === "string" ? u["detail"].slice(0, 200) : "" }
          : undefined
      } catch {
        return undefined
      }
    }),
    Effect.orElseSucceed(() => undefined)
  )
