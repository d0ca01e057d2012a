/**
 * The OpenCode 2 plugin's decisions (`V2Plugin.ts`), pure and tested as
 * tables (test/opencode-unit/V2PluginDecisions.test.ts): the credential it
 * hands OpenCode 2 (never a refresh token), the error answer it puts in
 * place of Kimi's, and which failures are a used-up quota that must not be
 * retried. Effect-free, like the module that uses them.
 *
 * @since 0.2.0
 */

/** The id of the device login method in OpenCode 2 (`POST /api/integration/<id>/connect/oauth {"methodID": …}`). */
export const V2_METHOD_ID = "kimi-device"

/**
 * What the credential row's `refresh` holds: a marker, not a token. The
 * live refresh token stays in the package's token file, under its lock.
 */
export const REFRESH_MARKER = "opencode-kimi-auth:token-file"

/** OpenCode 2's OAuth credential (`Credential.OAuth`). */
export interface V2Credential {
  readonly type: "oauth"
  readonly methodID: string
  readonly access: string
  readonly refresh: string
  /** Epoch milliseconds. */
  readonly expires: number
  readonly metadata?: Record<string, unknown> | undefined
}

/** The credential OpenCode 2 stores for a login: the access token and its expiry, never the refresh token. */
export const credentialOf = (methodID: string, access: string, expires: number, metadata?: Record<string, unknown>): V2Credential => ({
  type: "oauth",
  methodID,
  access,
  refresh: REFRESH_MARKER,
  expires,
  ...(metadata !== undefined ? { metadata } : {})
})

/** What a request the hook authorized carried: the token we sent, or why there was none. */
export type Sent = { readonly token: string } | { readonly failure: { status: number; code: string; message: string } }

/** The answer put in place of Kimi's: `{ error: { message, type, code } }` with the `x-kimi-auth-error` header. */
export const errorResponse = (status: number, code: string, message: string): Response =>
  new Response(JSON.stringify({ error: { message, type: code, code } }), {
    status,
    headers: { "content-type": "application/json", "x-kimi-auth-error": code }
  })

/** Whether a failure the host would retry is a used-up quota (our answer's code, or Kimi's words): never retried. */
export const isQuotaFailure = (failure: unknown): boolean =>
  /insufficient_quota|kimi_quota_exceeded|usage limit is used up/.test(JSON.stringify(failure))
