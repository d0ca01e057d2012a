/**
 * What a token, a lifetime and a token file may look like, as pure checks.
 *
 * Every value here comes from outside (a server answer, a file on disk) and
 * is treated as hostile:
 *
 * - a token must be an RFC 6750 `b64token` (section 2.1) of at most
 *   {@link MAX_TOKEN_LENGTH} characters: a CR/LF in a token would inject a
 *   header into every request that carries it (`curl -H "Authorization:
 *   Bearer $(kimi-auth token)"`), and `fetch` throws on it;
 * - a lifetime must be a finite number of seconds in (0, one year]; an
 *   absurd one is not trusted (a token "valid until 1e308" would never be
 *   refreshed again and breaks every date computation);
 * - a stored issuer (OAuth host, API base) must pass the same URL checks as
 *   the settings.
 *
 * It imports nothing from `effect`: the CLI's fast path reads the token file
 * through {@link parseTokenFileText} without loading the core, and
 * `TokenSet.decodeTokenFile` wraps the same function.
 *
 * @since 0.2.0
 */
import { isRegion, type KimiRegion } from "./Region.js"
import { checkBaseUrl } from "./ResolveSettings.js"

/** The longest token accepted, in characters. Kimi's JWTs are well under 2 KiB. */
export const MAX_TOKEN_LENGTH = 8192

/** The longest lifetime believed, in seconds: one year. */
export const MAX_LIFETIME_SECONDS = 366 * 24 * 3600

/** Epoch seconds beyond which an `expires_at` is absurd (2100-01-01). */
export const MAX_EXPIRES_AT_SECONDS = 4_102_444_800

/** RFC 6750 section 2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/** Whether `u` can be sent as `Authorization: Bearer <u>` and stored: an RFC 6750 b64token of sane length. */
export const isBearerToken = (u: unknown): u is string =>
  typeof u === "string" && u.length > 0 && u.length <= MAX_TOKEN_LENGTH && B64TOKEN.test(u)

/** A lifetime in seconds if it is believable (finite, > 0, at most a year), else `undefined`. */
export const sanitizeLifetime = (u: unknown): number | undefined =>
  typeof u === "number" && Number.isFinite(u) && u > 0 && u <= MAX_LIFETIME_SECONDS ? u : undefined

/**
 * An `expires_at` read from a file, in epoch seconds: milliseconds written
 * by a careless tool are converted; an absurd value (not finite, negative,
 * past 2100) becomes 0, i.e. "expired", so the token is refreshed instead
 * of trusted. `undefined` when not a number at all.
 */
export const sanitizeExpiresAt = (u: unknown): number | undefined => {
  if (typeof u !== "number" || Number.isNaN(u)) return undefined
  const seconds = u > 1e11 && u < MAX_EXPIRES_AT_SECONDS * 1000 ? Math.floor(u / 1000) : u
  return Number.isFinite(seconds) && seconds >= 0 && seconds <= MAX_EXPIRES_AT_SECONDS ? seconds : 0
}

/**
 * Seconds of remaining lifetime below which a token is due for refresh: the
 * larger of the window and half the lifetime (Kimi's own rule), but never
 * more than three quarters of the lifetime, so a freshly issued short-lived
 * token is never due at once.
 */
export const refreshThresholdSeconds = (expiresIn: number, windowSeconds: number): number => {
  const lifetime = expiresIn > 0 ? expiresIn : windowSeconds * 2
  return Math.min(Math.max(windowSeconds, lifetime / 2), lifetime * 0.75)
}

/** Whether a token expiring at `expiresAt` (lifetime `expiresIn`) should be refreshed at `nowSeconds`. */
export const isDueAt = (expiresAt: number, expiresIn: number, nowSeconds: number, windowSeconds: number): boolean =>
  expiresAt - nowSeconds <= refreshThresholdSeconds(expiresIn, windowSeconds)

/** A token file's fields, checked, with the secrets as plain strings (wrap them at once). */
export interface PlainTokenFile {
  readonly accessToken: string
  readonly refreshToken: string
  readonly tokenType: string
  /** Seconds; 0 when absent or absurd. */
  readonly expiresIn: number
  readonly scope: string
  /** Epoch seconds; 0 when absurd (treated as expired). */
  readonly expiresAt: number
  readonly deviceId: string | undefined
  /** The OAuth host that issued the tokens, when recorded. */
  readonly oauthHost: string | undefined
  /** The API base the tokens are good for, when recorded. */
  readonly apiBaseUrl: string | undefined
  /** The region that issued the tokens, when recorded. */
  readonly region: KimiRegion | undefined
}

/** A parsed file, or why it cannot be used (never holding a secret). */
export type ParsedTokenFile = { readonly ok: true; readonly value: PlainTokenFile } | { readonly ok: false; readonly reason: string }

const optionalString = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

const optionalUrl = (u: unknown): string | undefined => {
  if (typeof u !== "string") return undefined
  const r = checkBaseUrl("stored", u)
  return r.ok ? r.value : undefined
}

/**
 * Parses the text of `oauth.json`. Tokens must be valid bearer tokens;
 * `expires_at` must be a number (absurd values are clamped to "expired");
 * unknown fields are ignored; a stored issuer that is not a usable URL is
 * dropped (the settings' region applies). Never throws.
 */
export const parseTokenFileText = (text: string): ParsedTokenFile => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { ok: false, reason: text.trim() === "" ? "the file is empty" : "the file is not valid JSON" }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, reason: "the file does not hold a JSON object" }
  }
  const f = json as Record<string, unknown>
  if (typeof f["access_token"] !== "string" || typeof f["refresh_token"] !== "string") {
    return { ok: false, reason: "the file lacks an access_token or a refresh_token" }
  }
  if (!isBearerToken(f["access_token"]) || !isBearerToken(f["refresh_token"])) {
    return {
      ok: false,
      reason: `a stored token is empty, longer than ${MAX_TOKEN_LENGTH} characters or holds characters a bearer token may not (RFC 6750)`
    }
  }
  const expiresAt = sanitizeExpiresAt(f["expires_at"])
  if (expiresAt === undefined) return { ok: false, reason: "the file lacks a numeric expires_at" }
  return {
    ok: true,
    value: {
      accessToken: f["access_token"],
      refreshToken: f["refresh_token"],
      tokenType: optionalString(f["token_type"]) ?? "Bearer",
      expiresIn: sanitizeLifetime(f["expires_in"]) ?? 0,
      scope: optionalString(f["scope"]) ?? "",
      expiresAt,
      deviceId: optionalString(f["device_id"]),
      oauthHost: optionalUrl(f["oauth_host"]),
      apiBaseUrl: optionalUrl(f["api_base_url"]),
      region: isRegion(f["region"]) ? f["region"] : undefined
    }
  }
}
