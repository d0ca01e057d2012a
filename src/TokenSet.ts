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
 * seconds) plus `device_id` and a `version`, so a file written by another tool
 * with exactly Kimi's fields reads too.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** A token set as held in memory. `expiresAt` is in epoch seconds. */
export class TokenSet extends Schema.Class<TokenSet>("TokenSet")({
  accessToken: Schema.Redacted(Schema.String),
  refreshToken: Schema.Redacted(Schema.String),
  tokenType: Schema.String,
  expiresIn: Schema.Number,
  scope: Schema.String,
  expiresAt: Schema.Number
}) {
  /** Seconds of validity left at `nowSeconds` (negative once expired). */
  remainingSeconds(nowSeconds: number): number {
    return this.expiresAt - nowSeconds
  }
}

/** The format version written into new files. */
export const TOKEN_FILE_VERSION = 1

const NonEmpty = Schema.String.check(Schema.isNonEmpty())
const FiniteNumber = Schema.Finite

/** The on-disk shape of `oauth.json`, as decoded. */
const TokenFileSchema = Schema.Struct({
  version: Schema.optionalKey(FiniteNumber),
  access_token: NonEmpty,
  refresh_token: NonEmpty,
  token_type: Schema.optionalKey(Schema.String),
  expires_in: Schema.optionalKey(FiniteNumber),
  scope: Schema.optionalKey(Schema.String),
  expires_at: FiniteNumber,
  device_id: Schema.optionalKey(Schema.String)
})

/** A decoded token file: the tokens and the device id recorded next to them. */
export interface TokenFile {
  readonly tokens: TokenSet
  readonly deviceId: string | undefined
}

/** Why a token file could not be read. Never holds file contents. */
export class TokenFileDecodeError extends Data.TaggedError("TokenFileDecodeError")<{
  readonly reason: string
}> {}

const decodeFields = Schema.decodeUnknownEffect(TokenFileSchema)

/**
 * Parses the text of `oauth.json`. `expires_at` written in milliseconds by a
 * careless tool is recognised and converted. Fails with a reason that holds
 * no secret.
 */
export const decodeTokenFile = (text: string): Effect.Effect<TokenFile, TokenFileDecodeError> =>
  Effect.gen(function*() {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return yield* new TokenFileDecodeError({ reason: text.trim() === "" ? "the file is empty" : "the file is not valid JSON" })
    }
    const f = yield* decodeFields(json).pipe(
      Effect.mapError(() =>
        new TokenFileDecodeError({
          reason: "the file lacks a non-empty access_token, refresh_token or a numeric expires_at"
        })
      )
    )
    const expiresAt = f.expires_at > 1e11 ? Math.floor(f.expires_at / 1000) : f.expires_at
    return {
      tokens: new TokenSet({
        accessToken: Redacted.make(f.access_token),
        refreshToken: Redacted.make(f.refresh_token),
        tokenType: f.token_type ?? "Bearer",
        expiresIn: f.expires_in ?? 0,
        scope: f.scope ?? "",
        expiresAt
      }),
      deviceId: f.device_id
    }
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
      device_id: deviceId
    },
    null,
    2
  ) + "\n"
