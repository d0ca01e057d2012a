/**
 * A local Kimi emulator: the OAuth device flow of `auth.kimi.com` and the
 * OpenAI-compatible Kimi Code API of `api.kimi.com/coding/v1`, on loopback.
 *
 * Used by the tests, the demo, and people without a Kimi account. It is strict
 * where the real server is (RFC 8628 polling with `slow_down`, single-use
 * device codes, rotating refresh tokens with RFC 9700 reuse detection) and it
 * records every request (headers, form fields and bearer tokens included, in
 * memory only) so tests can assert what a client really sent.
 *
 * Time comes from Effect's `Clock` of the fiber that ran {@link make} (so a
 * `TestClock` drives it), or from the `now` option, plus any
 * {@link EmulatorHandle.advanceTime} skew. Faults (5xx pages, dropped
 * connections, 429, latency) are off by default; see `Faults.ts`.
 *
 * Entry points: {@link make} (scoped Effect), {@link start} (promise, with
 * `close()`), {@link serve} (CLI: prints the URL, runs until interrupted).
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HttpRouter from "effect/http/HttpRouter"
import type { ServeError } from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createServer } from "node:http"
import { DEFAULT_CLIENT_ID } from "../config/KimiAuthConfig.js"
import { type FaultOptions, FaultInjector, proxyErrorPage } from "./Faults.js"
import { type EmulatorUser, Users } from "./Users.js"
import { findModel, MODELS, reasoningText, thinkingOf } from "./Models.js"
import { Quota, type QuotaOptions, type QuotaSnapshot, type QuotaWindow, RATE_LIMIT_MESSAGE } from "./Quota.js"
import {
  type Answer,
  type DeviceCodeInfo,
  type EmulatorStats,
  EmulatorState,
  type IssuedTokens
} from "./State.js"

export type { FaultOptions } from "./Faults.js"
export { ACCOUNT_ONLY_MODEL_ID, type EmulatorModel, MODELS } from "./Models.js"
export {
  EXCEEDED_QUOTA_MESSAGE,
  type QuotaOptions,
  type QuotaSnapshot,
  type QuotaWindow,
  type QuotaWindowInfo,
  RATE_LIMIT_MESSAGE,
  USAGE_LIMIT_MESSAGE
} from "./Quota.js"
export type { DeviceCodeInfo, DeviceCodeStatus, EmulatorStats, IssuedTokens } from "./State.js"
export { DEFAULT_USER, type EmulatorUser } from "./Users.js"

/** Options of the emulator. Every field is optional. */
export interface EmulatorOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  readonly port?: number | undefined
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string | undefined
  /** Accepted OAuth client id(s). Default: Kimi's public client id. */
  readonly clientId?: string | ReadonlyArray<string> | undefined
  /** Access-token lifetime (`expires_in`). Default 900 s. */
  readonly accessTokenTtlSeconds?: number | undefined
  /** Refresh-token lifetime. Default: no expiry. */
  readonly refreshTokenTtlSeconds?: number | undefined
  /** Device-code lifetime (`expires_in` of the device authorization). Default 900 s. */
  readonly deviceCodeTtlSeconds?: number | undefined
  /** Initial polling interval in seconds. Default 5. */
  readonly interval?: number | undefined
  /** A poll up to this much earlier than the interval allows is not `slow_down`. Default 250 ms. */
  readonly pollToleranceMillis?: number | undefined
  /** Approve every device code this long after it was issued (emulator time). Default: off. */
  readonly autoApproveAfterMillis?: number | undefined
  /** Fault injection; off by default. Changeable later with `setFaults`. */
  readonly faults?: FaultOptions | undefined
  /** Clock override, epoch ms. Default: Effect's `Clock`. */
  readonly now?: (() => number) | undefined
  /** The request log keeps at most this many entries, dropping the oldest. Default 10 000. */
  readonly maxRecordedRequests?: number | undefined
  /** The plan's quota (limits per window, how it is refused, a rate-limit switch). Changeable later with `setQuota`. */
  readonly quota?: QuotaOptions | undefined
  /** The region `/usages` reports for the account (`user.region`). Default `mainland-cn`. */
  readonly region?: "mainland-cn" | "global" | undefined
  /** The Kimi users (`/me`); a login is approved as the first unless another is chosen. Default: one user, `emu-user-1`. */
  readonly users?: ReadonlyArray<EmulatorUser> | undefined
}

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

/** The running emulator. Every function is synchronous and safe to call from any test. */
export interface EmulatorHandle {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string
  /** The OAuth host to configure clients with (= `url`). */
  readonly oauthHost: string
  /** The API base to configure clients with (= `${url}/coding/v1`). */
  readonly apiBaseUrl: string
  /** The port listened on. */
  readonly port: number
  /** The first accepted client id. */
  readonly clientId: string
  /** The request log, oldest first; only requests to `path` when given. Copies. */
  readonly requests: (path?: string) => ReadonlyArray<RecordedRequest>
  /** Empties the request log. */
  readonly clearRequests: () => void
  /**
   * Approves a pending device code by user code (`ABCD-EFGH`, case and dash
   * ignored), as `userId` (one of the `users`; the first by default). False
   * when not pending or the user is unknown.
   */
  readonly approve: (userCode: string, userId?: string) => boolean
  /** Denies a pending device code by user code. False when not pending. */
  readonly deny: (userCode: string) => boolean
  /** Every device code issued so far, oldest first. */
  readonly deviceCodes: () => ReadonlyArray<DeviceCodeInfo>
  /** Mints a logged-in token pair (new family, of `userId` or the first user) without a device flow. */
  readonly issueTokens: (userId?: string) => IssuedTokens
  /** Makes every access token issued so far expired; refresh tokens keep working. */
  readonly expireAccessTokens: () => void
  /** Revokes every token family: all tokens issued so far stop working. */
  readonly revokeAll: () => void
  /** Replaces the fault settings (`{}` turns all faults off). */
  readonly setFaults: (faults: FaultOptions) => void
  /** Counters. */
  readonly stats: () => EmulatorStats
  /** The emulator's current time, epoch ms. */
  readonly now: () => number
  /** Moves the emulator's clock forward (e.g. past a device code's expiry). */
  readonly advanceTime: (millis: number) => void
  /** The JSON bodies of every recorded `POST /coding/v1/chat/completions`, oldest first (as the server parsed them). */
  readonly chatBodies: () => ReadonlyArray<unknown>
  /** Both quota windows now: limit, used, remaining, reset time. */
  readonly quota: () => QuotaSnapshot
  /** Changes quota settings (limits, refusal status, the rate-limit switch); counts already made stay. */
  readonly setQuota: (options: QuotaOptions) => void
  /** Uses up one window (both when none is named): the next chat completion is refused until it resets. */
  readonly exhaustQuota: (window?: QuotaWindow) => void
  /** Empties both quota windows. */
  readonly resetQuota: () => void
}

/** The emulator's main model (the first of {@link MODELS}). */
export const MODEL_ID = "kimi-for-coding"

/** The start of every chat answer. */
export const GREETING = "Hello from the Kimi emulator"

type MutableRecord = { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] }

/** The record of the request being handled, for the route handlers. */
class CurrentRequest extends Context.Service<CurrentRequest, MutableRecord>()(
  "opencode-kimi-auth/emulator/CurrentRequest"
) {}

const FORM = "application/x-www-form-urlencoded"

const mediaType = (contentType: string | undefined) => contentType?.split(";")[0]?.trim().toLowerCase()

const parseForm = (text: string) => {
  const fields: Record<string, string> = {}
  const duplicates: Array<string> = []
  for (const [k, v] of new URLSearchParams(text)) {
    if (k in fields) duplicates.push(k)
    fields[k] = v
  }
  return { fields, duplicates }
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c] ?? c)

/** RFC 6749 5.1: token answers must not be cached. */
const oauthResponse = (answer: Answer) =>
  HttpServerResponse.jsonUnsafe(answer.body, {
    status: answer.status,
    headers: { "cache-control": "no-store", pragma: "no-cache" }
  })

const apiError = (status: number, type: string, message: string) =>
  HttpServerResponse.jsonUnsafe({ error: { message, type } }, { status })

/** Wall-clock delay, deliberately not on the Effect clock: latency is a network effect. */
const realDelay = (millis: number) =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

const messageText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content
      .map((p: unknown) =>
        typeof p === "object" && p !== null && "text" in p && typeof p.text === "string" ? p.text : ""
      )
      .join("")
  }
  return ""
}

const routes = (
  state: EmulatorState,
  quota: Quota,
  account: { readonly userId: string; readonly region: string },
  users: Users
) => {
  const setError = (rec: MutableRecord, body: Record<string, unknown>) => {
    const e = body["error"]
    rec.error = typeof e === "string"
      ? e
      : typeof e === "object" && e !== null && "type" in e && typeof e.type === "string"
      ? e.type
      : undefined
  }

  /** An OAuth endpoint: form body required (RFC 6749 3.2), no repeated parameter (3.1). */
  const oauth = (f: (form: Readonly<Record<string, string>>) => Answer) =>
    Effect.gen(function*() {
      const rec = yield* CurrentRequest
      let answer: Answer
      if (mediaType(rec.contentType) !== FORM || rec.form === undefined) {
        answer = {
          status: 400,
          body: { error: "invalid_request", error_description: `The request body must be ${FORM}.` }
        }
      } else {
        const { duplicates } = parseForm(rec.body)
        answer = duplicates.length > 0
          ? {
            status: 400,
            body: { error: "invalid_request", error_description: `Repeated parameter: ${duplicates.join(", ")}.` }
          }
          : f(rec.form)
      }
      setError(rec, answer.body)
      return oauthResponse(answer)
    })

  /** A Kimi Code API endpoint: a valid bearer access token is required. */
  const api = (f: (rec: MutableRecord) => HttpServerResponse.HttpServerResponse) =>
    Effect.gen(function*() {
      const rec = yield* CurrentRequest
      const check = rec.bearer === undefined ? undefined : state.checkAccessToken(rec.bearer)
      state.countApi(check?._tag !== "ok")
      if (check?._tag === "ok") return f(rec)
      const why = check === undefined
        ? "the Authorization header is missing or is not a Bearer token"
        : check._tag === "expired"
        ? "the access token has expired"
        : check._tag === "revoked"
        ? "the access token has been revoked"
        : "the access token is not valid"
      rec.error = "invalid_authentication_error"
      return HttpServerResponse.setHeader(
        apiError(401, "invalid_authentication_error", `Invalid Authentication: ${why}.`),
        "www-authenticate",
        "Bearer"
      )
    })

  const models = api(() =>
    HttpServerResponse.jsonUnsafe({
      object: "list",
      data: MODELS.map((m) => ({ object: "model", created: 1761264000, owned_by: "moonshot", ...m }))
    })
  )

  const me = api((rec) => {
    const check = state.checkAccessToken(rec.bearer ?? "")
    return HttpServerResponse.jsonUnsafe(users.meBody(check._tag === "ok" ? check.userId : users.defaultUserId))
  })

  const usages = api(() => HttpServerResponse.jsonUnsafe(quota.usagesBody(state.settings.now(), account)))

  let completionSeq = 0
  const chat = api((rec) => {
    const body = rec.json
    if (mediaType(rec.contentType) !== "application/json" || typeof body !== "object" || body === null) {
      rec.error = "invalid_request_error"
      return apiError(400, "invalid_request_error", "The request body must be a JSON object.")
    }
    const req = body as Record<string, unknown>
    const messages = req["messages"]
    if (!Array.isArray(messages) || messages.length === 0) {
      rec.error = "invalid_request_error"
      return apiError(400, "invalid_request_error", "messages must be a non-empty array.")
    }
    const model = findModel(req["model"])
    if (model === undefined) {
      rec.error = "invalid_request_error"
      return apiError(
        400,
        "invalid_request_error",
        `Unknown model ${JSON.stringify(req["model"])}; use one of ${MODELS.map((m) => m.id).join(", ")}.`
      )
    }
    const refusal = quota.refusalFor(state.settings.now())
    if (refusal !== undefined) {
      rec.error = refusal.type
      let response = apiError(refusal.status, refusal.type, refusal.message)
      for (const [k, v] of Object.entries(refusal.headers)) response = HttpServerResponse.setHeader(response, k, v)
      return response
    }
    quota.count(state.settings.now())
    const thinking = thinkingOf(model.id, req)
    const lastUser = [...messages].reverse().find((m: unknown) =>
      typeof m === "object" && m !== null && "role" in m && m.role === "user"
    ) as { content?: unknown } | undefined
    const said = messageText(lastUser?.content).replace(/\s+/g, " ").trim().slice(0, 200)
    const text = said === "" ? `${GREETING}.` : `${GREETING}. You said: ${said}`
    const reasoning = thinking.enabled ? reasoningText(said, thinking.effort) : undefined
    const id = `chatcmpl-emu-${++completionSeq}`
    const created = Math.floor(state.settings.now() / 1000)
    const promptTokens = JSON.stringify(messages).length >> 2
    const completionTokens = text.split(" ").length + (reasoning?.split(" ").length ?? 0)
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens
    }
    if (req["stream"] !== true) {
      return HttpServerResponse.jsonUnsafe({
        id,
        object: "chat.completion",
        created,
        model: model.id,
        choices: [{
          index: 0,
          message: { role: "assistant", content: text, ...(reasoning === undefined ? {} : { reasoning_content: reasoning }) },
          finish_reason: "stop"
        }],
        usage
      })
    }
    const chunk = (choices: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model: model.id, choices, ...extra })}\n\n`
    const words = (s: string) => s.match(/\S+\s*/g) ?? [s]
    const includeUsage = typeof req["stream_options"] === "object" && req["stream_options"] !== null &&
      (req["stream_options"] as Record<string, unknown>)["include_usage"] === true
    const events = [
      // With thinking, Kimi streams delta.reasoning_content first, then the answer in delta.content.
      ...(reasoning === undefined
        ? [chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }])]
        : [
          chunk([{ index: 0, delta: { role: "assistant", reasoning_content: "" }, finish_reason: null }]),
          ...words(reasoning).map((p) => chunk([{ index: 0, delta: { reasoning_content: p }, finish_reason: null }]))
        ]),
      ...words(text).map((p) => chunk([{ index: 0, delta: { content: p }, finish_reason: null }])),
      chunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
      ...(includeUsage ? [chunk([], { usage })] : []),
      "data: [DONE]\n\n"
    ]
    return HttpServerResponse.stream(Stream.fromIterable(events).pipe(Stream.encodeText), {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache" }
    })
  })

  const page = (title: string, inner: string, status = 200) =>
    HttpServerResponse.html(
      `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
        `<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}` +
        `code{font-size:1.4rem}button{font-size:1rem;margin-right:.5rem;padding:.4rem 1rem}</style></head>` +
        `<body><h1>${escapeHtml(title)}</h1>${inner}</body></html>`
    ).pipe(HttpServerResponse.setStatus(status))

  const codeForm = (userCode: string) =>
    `<form method="post" action="/device"><p><label>User code <input name="user_code" value="${
      escapeHtml(userCode)
    }" autocomplete="off"></label></p>${users.chooser(escapeHtml)}` +
    `<p><button name="action" value="approve">Approve</button><button name="action" value="deny">Deny</button></p></form>`

  const devicePage = Effect.gen(function*() {
    const rec = yield* CurrentRequest
    const userCode = rec.query["user_code"] ?? ""
    const info = userCode === "" ? undefined : state.findByUserCode(userCode)
    if (userCode !== "" && info === undefined) {
      return page("Kimi emulator: unknown code", `<p>No login waits for that code.</p>${codeForm(userCode)}`, 404)
    }
    if (info !== undefined && (info.status !== "pending" || state.settings.now() >= info.expiresAt)) {
      const status = state.settings.now() >= info.expiresAt && info.status === "pending" ? "expired" : info.status
      return page("Kimi emulator", `<p>The code <code>${escapeHtml(info.userCode)}</code> is ${status}.</p>`)
    }
    return page(
      "Kimi emulator: approve a login",
      `<p>A device asks to log in to Kimi Code. Check that the code matches the one it shows.</p>${codeForm(userCode)}`
    )
  })

  const deviceDecision = Effect.gen(function*() {
    const rec = yield* CurrentRequest
    const userCode = rec.form?.["user_code"] ?? ""
    const action = rec.form?.["action"]
    if (action !== "approve" && action !== "deny") {
      return page("Kimi emulator", `<p>Choose Approve or Deny.</p>${codeForm(userCode)}`, 400)
    }
    const user = rec.form?.["user"]
    if (action === "approve" && user !== undefined && users.find(user) === undefined) {
      return page("Kimi emulator", `<p>No user <code>${escapeHtml(user)}</code> here.</p>${codeForm(userCode)}`, 400)
    }
    const done = action === "approve" ? state.approve(userCode, user) : state.deny(userCode)
    if (!done) {
      return page(
        "Kimi emulator",
        `<p>The code <code>${escapeHtml(userCode)}</code> is unknown, expired or already decided.</p>`,
        404
      )
    }
    return action === "approve"
      ? page("Login approved", "<p>You can close this page and return to your terminal.</p>")
      : page("Login denied", "<p>The device will not be logged in.</p>")
  })

  const index = HttpServerResponse.text(
    "Kimi emulator\n" +
      "POST /api/oauth/device_authorization\nPOST /api/oauth/token\nGET  /device\n" +
      "GET  /coding/v1/models\nGET  /coding/v1/usages\nGET  /coding/v1/me\nPOST /coding/v1/chat/completions\n"
  )

  return HttpRouter.addAll([
    HttpRouter.route("GET", "/", index),
    HttpRouter.route("POST", "/api/oauth/device_authorization", oauth((form) => state.deviceAuthorization(form))),
    HttpRouter.route("POST", "/api/oauth/token", oauth((form) => state.token(form))),
    HttpRouter.route("GET", "/device", devicePage),
    HttpRouter.route("POST", "/device", deviceDecision),
    HttpRouter.route("GET", "/coding/v1/models", models),
    HttpRouter.route("GET", "/coding/v1/usages", usages),
    HttpRouter.route("GET", "/coding/v1/me", me),
    HttpRouter.route("POST", "/coding/v1/chat/completions", chat)
  ])
}

const header = (headers: Readonly<Record<string, string>>, name: string) => headers[name.toLowerCase()]

/**
 * Starts the emulator on loopback; it stops when the scope closes. Fails with
 * `ServeError` when the port cannot be bound.
 */
export const make = (options: EmulatorOptions = {}): Effect.Effect<EmulatorHandle, ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    let skew = 0
    const now = () => (options.now ? options.now() : clock.currentTimeMillisUnsafe()) + skew
    const clientIds = options.clientId === undefined
      ? [DEFAULT_CLIENT_ID]
      : typeof options.clientId === "string"
      ? [options.clientId]
      : [...options.clientId]

    const users = new Users(options.users, options.region ?? "mainland-cn")
    const nodeServer = createServer()
    const host = options.host ?? "127.0.0.1"
    const server = yield* NodeHttpServer.make(() => nodeServer, {
      port: options.port ?? 0,
      host,
      gracefulShutdownTimeout: "2 seconds"
    })
    const address = nodeServer.address()
    const port = typeof address === "object" && address !== null ? address.port : options.port ?? 0
    const urlHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host
    const url = `http://${urlHost}:${port}`

    const state = new EmulatorState({
      clientIds,
      baseUrl: url,
      accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 900,
      refreshTokenTtlSeconds: options.refreshTokenTtlSeconds,
      deviceCodeTtlSeconds: options.deviceCodeTtlSeconds ?? 900,
      interval: options.interval ?? 5,
      autoApproveAfterMillis: options.autoApproveAfterMillis,
      pollToleranceMillis: options.pollToleranceMillis ?? 250,
      now,
      defaultUserId: users.defaultUserId
    })
    const faults = new FaultInjector(options.faults ?? {})
    const log: Array<MutableRecord> = []
    const maxRecorded = Math.max(1, options.maxRecordedRequests ?? 10_000)
    let seq = 0

    const quota = new Quota(options.quota)
    const account = { userId: "emu-user-1", region: options.region ?? "mainland-cn" }
    const app = yield* HttpRouter.toHttpEffect(routes(state, quota, account, users))

    const handler = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://emulator.invalid")
      const body = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
      const headers: Record<string, string> = { ...request.headers }
      const contentType = header(headers, "content-type")
      const type = mediaType(contentType)
      const auth = header(headers, "authorization")
      const bearer = auth === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1]
      const rec: MutableRecord = {
        seq: ++seq,
        at: now(),
        method: request.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers,
        msh: {
          platform: header(headers, "x-msh-platform"),
          version: header(headers, "x-msh-version"),
          deviceName: header(headers, "x-msh-device-name"),
          deviceModel: header(headers, "x-msh-device-model"),
          osVersion: header(headers, "x-msh-os-version"),
          deviceId: header(headers, "x-msh-device-id")
        },
        userAgent: header(headers, "user-agent"),
        contentType,
        body,
        form: type === FORM ? parseForm(body).fields : undefined,
        json: type === "application/json" ? parseJson(body) : undefined,
        bearer,
        status: undefined,
        error: undefined,
        fault: undefined
      }
      log.push(rec)
      if (log.length > maxRecorded) log.splice(0, log.length - maxRecorded)

      const latency = faults.latencyFor(rec.path)
      if (latency > 0) yield* realDelay(latency)
      const fault = faults.decide(rec.path)
      let response: HttpServerResponse.HttpServerResponse
      switch (fault._tag) {
        case "Drop": {
          rec.fault = "drop"
          NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
          return HttpServerResponse.empty()
        }
        case "ServerError": {
          rec.fault = "server_error"
          response = HttpServerResponse.html(proxyErrorPage(fault.status)).pipe(
            HttpServerResponse.setStatus(fault.status)
          )
          break
        }
        case "TooManyRequests": {
          rec.fault = "too_many_requests"
          rec.error = "rate_limit_reached_error"
          response = apiError(429, "rate_limit_reached_error", RATE_LIMIT_MESSAGE)
            .pipe(HttpServerResponse.setHeader("retry-after", String(fault.retryAfterSeconds)))
          break
        }
        case "None": {
          response = yield* app.pipe(
            Effect.provideService(CurrentRequest, rec),
            Effect.catch((e) =>
              Effect.succeed(
                e.reason._tag === "RouteNotFound"
                  ? HttpServerResponse.jsonUnsafe(
                    { error: "not_found", error_description: `No route for ${rec.method} ${rec.path}.` },
                    { status: 404 }
                  )
                  : HttpServerResponse.jsonUnsafe({ error: "server_error", error_description: e.message }, {
                    status: 500
                  })
              )
            )
          )
          if (response.status === 404 && rec.error === undefined) rec.error = "not_found"
        }
      }
      rec.status = response.status
      // Shown by `kimi-auth emulator --debug`; names no secret (no body, no header value).
      yield* Effect.logDebug(
        `emulator: ${rec.method} ${rec.path}${rec.form?.["grant_type"] ? ` (${rec.form["grant_type"]})` : ""} -> ` +
          `${response.status}${rec.error ? ` ${rec.error}` : ""}${rec.fault ? ` (injected: ${rec.fault})` : ""}`
      )
      return response
    })

    yield* server.serve(handler)
    // Runs before the server's own finalizers: cut keep-alive and streaming connections so closing is quick.
    yield* Effect.addFinalizer(() => Effect.sync(() => nodeServer.closeAllConnections()))

    const handle: EmulatorHandle = {
      url,
      oauthHost: url,
      apiBaseUrl: `${url}/coding/v1`,
      port,
      clientId: clientIds[0] ?? DEFAULT_CLIENT_ID,
      requests: (path) => log.filter((r) => path === undefined || r.path === path).map((r) => ({ ...r })),
      clearRequests: () => {
        log.length = 0
      },
      approve: (userCode, userId) => (userId === undefined || users.find(userId) !== undefined) && state.approve(userCode, userId),
      deny: (userCode) => state.deny(userCode),
      deviceCodes: () => state.deviceCodes(),
      issueTokens: (userId) => state.issueTokens(undefined, userId),
      expireAccessTokens: () => state.expireAccessTokens(),
      revokeAll: () => state.revokeAll(),
      setFaults: (f) => faults.set(f),
      stats: () => state.stats(),
      now,
      advanceTime: (millis) => {
        skew += millis
      },
      chatBodies: () =>
        log.filter((r) => r.method === "POST" && r.path === "/coding/v1/chat/completions").map((r) => parseJson(r.body)),
      quota: () => quota.snapshot(now()),
      setQuota: (q) => quota.set(q),
      exhaustQuota: (window) => quota.exhaust(now(), window),
      resetQuota: () => quota.reset()
    }
    return handle
  })

/** A running emulator for promise code: the handle plus `close()`. */
export interface StartedEmulator extends EmulatorHandle {
  /** Stops the server and closes its connections. */
  readonly close: () => Promise<void>
}

/**
 * Starts the emulator outside Effect (child-process scripts, plain tests).
 * Real time unless `options.now` is given. Call `close()` when done.
 */
export const start = async (options: EmulatorOptions = {}): Promise<StartedEmulator> => {
  const scope = Scope.makeUnsafe()
  const exit = await Effect.runPromiseExit(Scope.provide(make(options), scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, exit))
    return Effect.runPromise(Effect.failCause(exit.cause))
  }
  let closed: Promise<void> | undefined
  return {
    ...exit.value,
    close: () => (closed ??= Effect.runPromise(Scope.close(scope, Exit.void)))
  }
}

/**
 * The lines {@link serve} prints: the URL line first, then hints.
 */
export const bannerLines = (handle: EmulatorHandle, options: EmulatorOptions = {}): ReadonlyArray<string> => [
  `Kimi emulator listening on ${handle.url}`,
  `  OAuth host:    ${handle.oauthHost}   (KIMI_OAUTH_HOST)`,
  `  API base:      ${handle.apiBaseUrl}   (KIMI_CODE_BASE_URL)`,
  `  Approve login: ${handle.url}/device` +
  (options.autoApproveAfterMillis === undefined
    ? ""
    : `   (auto-approve after ${options.autoApproveAfterMillis} ms)`),
  `  Quota:         ${handle.quota().fiveHour.limit} chat completions per 5 hours, ${handle.quota().weekly.limit} per week` +
  `   (GET ${handle.apiBaseUrl}/usages)`
]

/**
 * For the CLI: starts the emulator, prints `Kimi emulator listening on <url>`
 * and a few hints to stdout, then runs until interrupted (Ctrl-C).
 */
export const serve = (options: EmulatorOptions = {}): Effect.Effect<never, ServeError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const handle = yield* make(options)
      for (const line of bannerLines(handle, options)) yield* Console.log(line)
      return yield* Effect.never
    })
  )
