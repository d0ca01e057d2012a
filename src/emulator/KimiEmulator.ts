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
 * connections, 429, latency, slow streaming) are off by default; see `Faults.ts`.
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
import { Quota, type QuotaOptions, type QuotaSnapshot, type QuotaWindow, RATE_LIMIT_MESSAGE, type UsagesShape } from "./Quota.js"
import { type EmulatorUser, Users } from "./Users.js"
import { apiRoutes } from "./routes/Api.js"
import { meRoutes } from "./routes/Me.js"
import { chatRoutes } from "./routes/Chat.js"
import { devicePageRoutes } from "./routes/DevicePage.js"
import { oauthRoutes } from "./routes/OAuth.js"
import {
  apiError,
  CurrentRequest,
  FORM,
  mediaType,
  type MutableRecord,
  parseForm,
  parseJson,
  realDelay,
  type RecordedRequest,
  type RouteDeps
} from "./routes/Shared.js"
import { type DeviceCodeInfo, type EmulatorStats, EmulatorState, type IssuedTokens } from "./State.js"

export type { FaultOptions } from "./Faults.js"
export { ACCOUNT_ONLY_MODEL_ID, type EmulatorModel, MODELS } from "./Models.js"
export {
  EXCEEDED_QUOTA_MESSAGE,
  type QuotaOptions,
  type QuotaSnapshot,
  type QuotaWindow,
  type QuotaWindowInfo,
  RATE_LIMIT_MESSAGE,
  USAGE_LIMIT_MESSAGE,
  type UsagesShape
} from "./Quota.js"
export { GREETING } from "./routes/Chat.js"
export type { MshHeaders, RecordedRequest } from "./routes/Shared.js"
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
  /** The region `/usages` reports for the account (`user.region`, old shape). Default `mainland-cn`. */
  readonly region?: "mainland-cn" | "global" | undefined
  /**
   * The `/usages` shape answered: `"new"` (the new plans' `usages.{limit_5h, …}` and
   * `boosterWallet`, the default) or `"old"` (`usage` + `limits[]`). Same as `quota.usages`,
   * which wins when both are given; changeable later with `setQuota({ usages })`.
   */
  readonly usages?: UsagesShape | undefined
  /** The Kimi users (`/me`); a login is approved as the first unless another is chosen. Default: one user, `emu-user-1`. */
  readonly users?: ReadonlyArray<EmulatorUser> | undefined
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

const index = HttpServerResponse.text(
  "Kimi emulator\n" +
    "POST /api/oauth/device_authorization\nPOST /api/oauth/token\nGET  /device\n" +
    "GET  /coding/v1/models\nGET  /coding/v1/usages\nGET  /coding/v1/me\nPOST /coding/v1/chat/completions\n"
)

/** Every route, one module per concern (`routes/`): add an endpoint as a module of its own and list it here. */
const routes = (deps: RouteDeps) =>
  HttpRouter.addAll([
    HttpRouter.route("GET", "/", index),
    ...oauthRoutes(deps),
    ...devicePageRoutes(deps),
    ...apiRoutes(deps),
    ...meRoutes(deps),
    ...chatRoutes(deps)
  ])

const header = (headers: Readonly<Record<string, string>>, name: string) => headers[name.toLowerCase()]

/** The record of one request, as the routes and the tests see it. */
const recordOf = (request: HttpServerRequest.HttpServerRequest, body: string, seq: number, at: number): MutableRecord => {
  const url = new URL(request.url, "http://emulator.invalid")
  const headers: Record<string, string> = { ...request.headers }
  const contentType = header(headers, "content-type")
  const type = mediaType(contentType)
  const auth = header(headers, "authorization")
  return {
    seq,
    at,
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
    bearer: auth === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1],
    status: undefined,
    error: undefined,
    fault: undefined
  }
}

/** The answer of an injected fault (a dropped connection answers nothing: its socket is destroyed). */
const faultAnswer = (
  fault: Exclude<ReturnType<FaultInjector["decide"]>, { readonly _tag: "None" }>,
  rec: MutableRecord,
  request: HttpServerRequest.HttpServerRequest
): HttpServerResponse.HttpServerResponse => {
  switch (fault._tag) {
    case "Drop": {
      rec.fault = "drop"
      NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
      return HttpServerResponse.empty()
    }
    case "ServerError": {
      rec.fault = "server_error"
      return HttpServerResponse.html(proxyErrorPage(fault.status)).pipe(HttpServerResponse.setStatus(fault.status))
    }
    case "TooManyRequests": {
      rec.fault = "too_many_requests"
      rec.error = "rate_limit_reached_error"
      return apiError(429, "rate_limit_reached_error", RATE_LIMIT_MESSAGE)
        .pipe(HttpServerResponse.setHeader("retry-after", String(fault.retryAfterSeconds)))
    }
  }
}

/** The routes' answer to a request (a `404` naming the route when none matches). */
const routed = <E extends { readonly reason: { readonly _tag: string }; readonly message: string }, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  rec: MutableRecord
) =>
  app.pipe(
    Effect.provideService(CurrentRequest, rec),
    Effect.catch((e) =>
      Effect.succeed(
        e.reason._tag === "RouteNotFound"
          ? HttpServerResponse.jsonUnsafe(
            { error: "not_found", error_description: `No route for ${rec.method} ${rec.path}.` },
            { status: 404 }
          )
          : HttpServerResponse.jsonUnsafe({ error: "server_error", error_description: e.message }, { status: 500 })
      )
    ),
    Effect.tap((response) =>
      Effect.sync(() => {
        if (response.status === 404 && rec.error === undefined) rec.error = "not_found"
      })
    )
  )

/** The accepted client ids: the option's, else Kimi's public one. */
const clientIdsOf = (options: EmulatorOptions): Array<string> =>
  options.clientId === undefined
    ? [DEFAULT_CLIENT_ID]
    : typeof options.clientId === "string"
    ? [options.clientId]
    : [...options.clientId]

/** The OAuth and token state, with the options' lifetimes and intervals (defaults as Kimi's). */
const stateOf = (options: EmulatorOptions, clientIds: Array<string>, url: string, now: () => number, users: Users) =>
  new EmulatorState({
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

/**
 * Starts the emulator on loopback; it stops when the scope closes. Fails with
 * `ServeError` when the port cannot be bound.
 */
export const make = (options: EmulatorOptions = {}): Effect.Effect<EmulatorHandle, ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    let skew = 0
    const now = () => (options.now ? options.now() : clock.currentTimeMillisUnsafe()) + skew
    const clientIds = clientIdsOf(options)

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

    const state = stateOf(options, clientIds, url, now, users)
    const faults = new FaultInjector(options.faults ?? {})
    const log: Array<MutableRecord> = []
    const maxRecorded = Math.max(1, options.maxRecordedRequests ?? 10_000)
    let seq = 0

    const quota = new Quota({ ...options.quota, usages: options.quota?.usages ?? options.usages })
    const account = { userId: "emu-user-1", region: options.region ?? "mainland-cn" }
    const app = yield* HttpRouter.toHttpEffect(routes({ state, quota, account, users, chunkDelayMillis: () => faults.chunkDelay() }))

    const handler = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const body = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
      const rec = recordOf(request, body, ++seq, now())
      log.push(rec)
      if (log.length > maxRecorded) log.splice(0, log.length - maxRecorded)

      const latency = faults.latencyFor(rec.path)
      if (latency > 0) yield* realDelay(latency)
      const fault = faults.decide(rec.path)
      // A dropped connection answers nothing: no status is recorded.
      if (fault._tag === "Drop") return faultAnswer(fault, rec, request)
      const response = fault._tag === "None"
        ? yield* routed(app, rec)
        : faultAnswer(fault, rec, request)
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
  `, ${handle.quota().monthlyTotal.limit} per month   (GET ${handle.apiBaseUrl}/usages, ${
    (options.quota?.usages ?? options.usages ?? "new") === "new" ? "the new plans' shape" : "the old shape"
  })`
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
