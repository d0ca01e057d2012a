/**
 * What every route module of the emulator shares: the record of the request
 * being handled ({@link CurrentRequest}), the services a route may use
 * ({@link RouteDeps}), and the small body and answer helpers.
 *
 * Each concern has its own module beside this one (`OAuth.ts`, `DevicePage.ts`,
 * `Api.ts`, `Chat.ts`); each exports a list of routes over {@link RouteDeps},
 * and `KimiEmulator.ts` joins the lists. A new endpoint is a new module with
 * its own list, added there.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { Quota } from "../Quota.js"
import type { EmulatorState } from "../State.js"
import type { Users } from "../Users.js"

/** The `X-Msh-*` identity headers of a request (`undefined` when absent). */
export interface MshHeaders {
  readonly platform: string | undefined
  readonly version: string | undefined
  readonly deviceName: string | undefined
  readonly deviceModel: string | undefined
  readonly osVersion: string | undefined
  readonly deviceId: string | undefined
}

/**
 * One request as the emulator saw it. Secrets are included on purpose (it is
 * a test tool); the emulator never prints them.
 */
export interface RecordedRequest {
  /** 1, 2, 3… in arrival order. */
  readonly seq: number
  /** Arrival time, emulator clock, epoch ms. */
  readonly at: number
  readonly method: string
  /** Path without the query. */
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  /** All headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly msh: MshHeaders
  readonly userAgent: string | undefined
  readonly contentType: string | undefined
  /** Raw body text. */
  readonly body: string
  /** Fields of a form-encoded body (last value wins), else `undefined`. */
  readonly form: Readonly<Record<string, string>> | undefined
  /** A JSON body, parsed, else `undefined`. */
  readonly json: unknown
  /** The bearer token of the `Authorization` header, if any. */
  readonly bearer: string | undefined
  /** Status answered; `undefined` when the connection was dropped or no answer was sent yet. */
  readonly status: number | undefined
  /** The `error` code of an OAuth or API error answer. */
  readonly error: string | undefined
  /** The injected fault, if any. */
  readonly fault: "server_error" | "drop" | "too_many_requests" | undefined
}

/** A {@link RecordedRequest} the handler and the routes fill in. */
export type MutableRecord = { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] }

/** The record of the request being handled, for the route handlers. */
export class CurrentRequest extends Context.Service<CurrentRequest, MutableRecord>()(
  "opencode-kimi-auth/emulator/CurrentRequest"
) {}

/** What the routes work on: the OAuth and token state, the quota, and the account `/usages` reports. */
export interface RouteDeps {
  readonly state: EmulatorState
  readonly quota: Quota
  readonly account: { readonly userId: string; readonly region: string }
  /** The Kimi users a login can be approved as (`/me`, the device page's chooser). */
  readonly users: Users
  /** The pause between the chunks of a streamed chat answer now, in ms (`FaultOptions.chunkDelayMillis`). */
  readonly chunkDelayMillis: () => number
}

/**
 * Wall-clock delay, deliberately not on the Effect clock: latency and a slow
 * model are network effects, which a test's clock does not move.
 */
export const realDelay = (millis: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** The form media type of OAuth requests. */
export const FORM = "application/x-www-form-urlencoded"

/** The media type of a `Content-Type`, lower case, without parameters. */
export const mediaType = (contentType: string | undefined) => contentType?.split(";")[0]?.trim().toLowerCase()

/** A form body's fields (last value wins) and the names sent more than once. */
export const parseForm = (text: string) => {
  const fields: Record<string, string> = {}
  const duplicates: Array<string> = []
  for (const [k, v] of new URLSearchParams(text)) {
    if (k in fields) duplicates.push(k)
    fields[k] = v
  }
  return { fields, duplicates }
}

/** A JSON body, or `undefined` when it is not JSON. */
export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** An OpenAI-style API error answer. */
export const apiError = (status: number, type: string, message: string) =>
  HttpServerResponse.jsonUnsafe({ error: { message, type } }, { status })
