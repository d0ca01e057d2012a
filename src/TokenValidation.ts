/**
 * Stand-in for the lead's `src/TokenValidation.ts` (FOUNDATION.md), with the
 * same names and rules, so this branch builds until main has the real one.
 * On merge, take main's file.
 *
 * @since 0.2.0
 */

/** The longest token accepted, in characters. Kimi's JWTs are well under 2 KiB. */
export const MAX_TOKEN_LENGTH = 8192

/** The longest lifetime believed, in seconds: one year. */
export const MAX_LIFETIME_SECONDS = 366 * 24 * 3600

/** RFC 6750 section 2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/

/** Whether `u` can be sent as `Authorization: Bearer <u>` and stored: an RFC 6750 b64token of sane length. */
export const isBearerToken = (u: unknown): u is string =>
  typeof u === "string" && u.length > 0 && u.length <= MAX_TOKEN_LENGTH && B64TOKEN.test(u)

/** A lifetime in seconds if it is believable (finite, > 0, at most a year), else `undefined`. */
export const sanitizeLifetime = (u: unknown): number | undefined =>
  typeof u === "number" && Number.isFinite(u) && u > 0 && u <= MAX_LIFETIME_SECONDS ? u : undefined
