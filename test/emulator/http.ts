/**
 * Tiny loopback HTTP helpers for the emulator tests (global fetch).
 */
import * as Effect from "effect/Effect"
import { DEFAULT_CLIENT_ID } from "../../src/config/KimiAuthConfig.js"
import { DEVICE_CODE_GRANT } from "../../src/emulator/State.js"

export { DEFAULT_CLIENT_ID, DEVICE_CODE_GRANT }

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: any
}

const toReply = async (res: Response): Promise<Reply> => {
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

/** fetch as a promise of a fully read reply. */
export const request = (url: string, init: RequestInit = {}): Promise<Reply> => fetch(url, init).then(toReply)

/** POST a form body. */
export const postForm = (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  request(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", ...headers },
    body: new URLSearchParams(fields).toString()
  })

/** The same as Effects, for it.effect tests. */
export const postFormE = (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  Effect.promise(() => postForm(url, fields, headers))
export const requestE = (url: string, init: RequestInit = {}) => Effect.promise(() => request(url, init))

/** Starts a device authorization; returns its JSON. */
export const authorize = (base: string, clientId = DEFAULT_CLIENT_ID) =>
  postForm(`${base}/api/oauth/device_authorization`, { client_id: clientId })

/** One device-code poll. */
export const poll = (base: string, deviceCode: string, clientId = DEFAULT_CLIENT_ID) =>
  postForm(`${base}/api/oauth/token`, { client_id: clientId, device_code: deviceCode, grant_type: DEVICE_CODE_GRANT })

/** One refresh. */
export const refresh = (base: string, refreshToken: string, clientId = DEFAULT_CLIENT_ID) =>
  postForm(`${base}/api/oauth/token`, { client_id: clientId, refresh_token: refreshToken, grant_type: "refresh_token" })

/** GET /coding/v1/models with a bearer token. */
export const models = (apiBase: string, token?: string) =>
  request(`${apiBase}/models`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })

/** POST /coding/v1/chat/completions. */
export const chat = (apiBase: string, token: string | undefined, body: unknown) =>
  request(`${apiBase}/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
    },
    body: JSON.stringify(body)
  })
