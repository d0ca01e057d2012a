/**
 * The token set: what a successful login or refresh yields, and how it is
 * written to and read from `oauth.json`.
 *
 * In memory both tokens are `Redacted` (printing, logging or JSON-encoding a
 * `TokenSet` never shows them). Only {@link encodeTokenFile} unwraps them, to
 * write the file; {@link decodeTokenFile} wraps them again.
 *
 * The file uses the snake_case fields of Kimi's own clients (`access_token`,
 * `refresh_token`, `token_type`, `expires_in`, `scope`, `expires_at` in epoch
 * seconds) plus `device_id`, a `version`, and who issued the tokens
 * (`oauth_host`, `api_base_url`, `region`: a login is only good at the region
 * that issued it), so a file written by another tool with exactly Kimi's
 * fields reads too.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { parseTokenFileText } from "../light/TokenValidation.js"

/** A token set as held in memory. `expiresAt` is in epoch seconds. */
export class TokenSet extends Schema.Class<TokenSet>("TokenSet")({
  accessToken: Schema.Redacted(Schema.String),
  refreshToken: Schema.Redacted(Schema.String),
  tokenType: Schema.String,
  expiresIn: Schema.Number,
  scope: Schema.String,
  expiresAt: Schema.Number,
  /** The OAuth host that issued these tokens (refresh goes there unless a host is pinned). */
  oauthHost: Schema.optional(Schema.String),
  /** The API base these tokens are good for. */
  apiBaseUrl: Schema.optional(Schema.String),
  /** The region that issued these tokens. */
  region: Schema.optional(Schema.Literals(["mainland-cn", "global"]))
}) {
  /** Seconds of validity left at `nowSeconds` (negative once expired). */
  remainingSeconds(nowSeconds: number): number {
    return this.expiresAt - nowSeconds
  }
}

/** The format version written into new files. */
export const TOKEN_FILE_VERSION = 1

/** A decoded token file: the tokens and the device id recorded next to them. */
export interface TokenFile {
  readonly tokens: TokenSet
  readonly deviceId: string | undefined
}

/** Why a token file could not be read. Never holds file contents. */
export class TokenFileDecodeError extends Data.TaggedError("TokenFileDecodeError")<{
  readonly reason: string
}> {}

/**
 * Parses the text of `oauth.json` (the rules are in `TokenValidation.ts`):
 * tokens must be RFC 6750 bearer tokens, `expires_at` in milliseconds is
 * converted, an absurd expiry is clamped to "expired" so the token is
 * refreshed instead of trusted. Fails with a reason that holds no secret.
 */
export const decodeTokenFile = (text: string): Effect.Effect<TokenFile, TokenFileDecodeError> =>
  Effect.suspend(() => {
    const parsed = parseTokenFileText(text)
    if (!parsed.ok) return Effect.fail(new TokenFileDecodeError({ reason: parsed.reason }))
    const f = parsed.value
    return Effect.succeed({
      tokens: new TokenSet({
        accessToken: Redacted.make(f.accessToken),
        refreshToken: Redacted.make(f.refreshToken),
        tokenType: f.tokenType,
        expiresIn: f.expiresIn,
        scope: f.scope,
        expiresAt: f.expiresAt,
        oauthHost: f.oauthHost,
        apiBaseUrl: f.apiBaseUrl,
        region: f.region
      }),
      deviceId: f.deviceId
    })
  })

/** The text written to `oauth.json`: the real secrets, pretty-printed, newline-terminated. */
export const encodeTokenFile = (tokens: TokenSet, deviceId: string): string =>
  JSON.stringify(
    {
      version: TOKEN_FILE_VERSION,
      access_token: Redacted.value(tokens.accessToken),
      refresh_token: Redacted.value(tokens.refreshToken),
      token_type: tokens.tokenType,
      expires_in: tokens.expiresIn,
      scope: tokens.scope,
      expires_at: tokens.expiresAt,
      device_id: deviceId,
      ...(tokens.oauthHost !== undefined ? { oauth_host: tokens.oauthHost } : {}),
      ...(tokens.apiBaseUrl !== undefined ? { api_base_url: tokens.apiBaseUrl } : {}),
      ...(tokens.region !== undefined ? { region: tokens.region } : {})
    },
    null,
    2
  ) + "\n"
