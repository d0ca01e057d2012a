/**
 * The one TokenSource adapter over the token manager, with each edge's
 * failure mapping: the OpenCode plugin's (`pluginTokenFailure`, naming
 * OpenCode's login command), `createKimi`'s (`typedFailure`) and the facade's
 * (`authErrorFailure`, from `KimiAuthError` codes). Served tokens, the forced
 * refresh, the plugin's region refusal and a missing login run the real
 * token manager over a real token file and the emulator's loopback token
 * endpoint; the typed failures the manager can end in are fed to each
 * mapping through the same runner contract the edges use.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { start, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import {
  advised,
  ConfigError,
  CorruptTokenFileError,
  InvalidResponseError,
  LockTimeoutError,
  NetworkError,
  NotLoggedInError,
  ServerError,
  TokenStoreError
} from "../../src/Errors.js"
import { type KimiAuthServices, layerNode } from "../../src/KimiAuth.js"
import {
  authErrorFailure,
  causeMessage,
  makeManagedTokenSource,
  type ManagedTokenSourceOptions,
  type TokenFailure,
  type TokenRunner,
  typedFailure
} from "../../src/request/ManagedTokenSource.js"
import { pluginTokenFailure } from "../../src/opencode/PluginCoreDecisions.js"
import { KimiAuthError } from "../../src/promise/KimiOAuthClient.js"
import type { TokenSet } from "../../src/tokens/TokenSet.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { seedLogin } from "../support/tokens.js"

let emulator: StartedEmulator
let dir: string
let runtime: ManagedRuntime.ManagedRuntime<KimiAuthServices, unknown> | undefined

beforeAll(async () => {
  emulator = await start()
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  dir = makeTemp("kimi-token-source-")
})
afterEach(async () => {
  await runtime?.dispose()
  runtime = undefined
  rmTemp(dir)
})

const now = () => Math.floor(Date.now() / 1000)
const seed = (expiresAt: number, region?: string) => {
  const issued = emulator.issueTokens()
  seedLogin(path.join(dir, "oauth.json"), {
    access: issued.accessToken,
    refresh: issued.refreshToken,
    expiresAt,
    extra: region ? { region } : {}
  })
  return issued
}

/** The runner the plugin and `createKimi` pass: the real manager in a managed runtime, resolving its Exit. */
const runWith = (extra: { readonly region?: "mainland-cn" | "global" }): TokenRunner => (effect, signal) => {
  runtime ??= ManagedRuntime.make(
    layerNode({ storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl, ...extra }).pipe(
      Layer.provideMerge(Logger.layer([]))
    )
  )
  return runtime.runPromiseExit(effect, signal ? { signal } : undefined)
}
const realRun: TokenRunner = runWith({})

/** A runner whose every run ends in `error` (what the manager fails with, as the edges' runners resolve it). */
const failingRun = (error: unknown): TokenRunner => () => Promise.resolve(Exit.fail(error))

/** The facade's runner shape: its `#run` rejects with a KimiAuthError, carried on as the failure. */
const facadeRun = (error: KimiAuthError): TokenRunner => () => Promise.reject(error).then(Exit.succeed, Exit.fail)
const plugin = pluginTokenFailure("kimi-code-plan-cn", "mainland-cn")
const pluginLogin = "run `opencode auth login -p kimi-code-plan-cn` (or `kimi-auth login`)"

const failureOf = async (options: ManagedTokenSourceOptions): Promise<TokenFailure> => {
  const r = await makeManagedTokenSource(options).getAccessToken()
  if (r.ok) throw new Error("expected a failure")
  return r
}

describe("ManagedTokenSource over the real token manager", () => {
  it("serves the stored token, hands every served set to onTokens, and getTokens carries the set", async () => {
    const issued = seed(now() + 800)
    const seen: Array<TokenSet> = []
    const source = makeManagedTokenSource({ run: realRun, failure: typedFailure, onTokens: (t) => seen.push(t) })
    expect(await source.getAccessToken()).toEqual({ ok: true, token: issued.accessToken })
    const current = await source.getTokens()
    expect(current.ok && current.access).toBe(issued.accessToken)
    expect(current.ok && current.tokens.expiresAt).toBeGreaterThan(now())
    expect(seen).toHaveLength(2)
    expect(emulator.stats().refreshes).toBe(0)
  })

  it("refreshAfterRejection forces one refresh and serves a different token", async () => {
    const issued = seed(now() + 800)
    const before = emulator.stats().refreshes
    const source = makeManagedTokenSource({ run: realRun, failure: typedFailure })
    const r = await source.refreshAfterRejection(issued.accessToken)
    expect(r.ok).toBe(true)
    expect(r.ok && r.token).not.toBe(issued.accessToken)
    expect(emulator.stats().refreshes - before).toBe(1)
    const stored = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8"))
    expect(r.ok && r.token).toBe(stored.access_token)
  })

  it("a login of the other region: the core (asked for a region) refuses it, the plugin's mapping says so, onTokens never sees it", async () => {
    seed(now() + 800, "global")
    const seen: Array<TokenSet> = []
    const source = makeManagedTokenSource({
      run: runWith({ region: "mainland-cn" }),
      failure: plugin,
      onTokens: (t) => seen.push(t)
    })
    const r = await source.getTokens()
    expect(r).toMatchObject({ ok: false, status: 401, code: "kimi_region_mismatch" })
    expect(!r.ok && r.message).toContain("you are logged in at kimi.ai (global)")
    expect(!r.ok && r.message).toContain("opencode auth login -p kimi-code-plan-cn")
    expect(seen).toHaveLength(0)
    // A login of this provider's own region is served (a fresh manager: the old one holds the set in memory).
    await runtime?.dispose()
    runtime = undefined
    seed(now() + 800, "mainland-cn")
    expect((await source.getTokens()).ok).toBe(true)
    expect(seen).toHaveLength(1)
  })

  it("unavailable answers every call without running anything", async () => {
    let runs = 0
    const unavailable: TokenFailure = { ok: false, status: 500, code: "kimi_config", message: "KIMI_OAUTH_HOST is not a URL" }
    const source = makeManagedTokenSource({
      run: (effect, signal) => (runs++, realRun(effect, signal)),
      failure: plugin,
      unavailable
    })
    expect(await source.getAccessToken()).toBe(unavailable)
    expect(await source.refreshAfterRejection("at-x")).toBe(unavailable)
    expect(await source.getTokens()).toBe(unavailable)
    expect(runs).toBe(0)
  })

  it("no login: each edge's wording of the manager's NotLoggedInError", async () => {
    const typed = await failureOf({ run: realRun, failure: typedFailure })
    expect(typed).toMatchObject({ ok: false, status: 401, code: "kimi_login_required" })
    expect((typed.error as { _tag: string })._tag).toBe("NotLoggedInError")
    expect(typed.message).toContain("kimi-auth login")

    const opencode = await failureOf({ run: realRun, failure: plugin })
    expect(opencode).toMatchObject({ ok: false, status: 401, code: "kimi_login_required" })
    expect(opencode.message).toMatch(/^Kimi login required: /)
    // OpenCode's own command for this provider comes first.
    expect(opencode.message).toContain(pluginLogin)
  })

  it("a cancelled run: the plugin's 502 naming its login command, createKimi's 500 'cancelled'", async () => {
    seed(now() - 10) // due: the run reaches the token endpoint, and the abort interrupts it
    const aborted = AbortSignal.abort()
    const typed = await makeManagedTokenSource({ run: realRun, failure: typedFailure }).getAccessToken(aborted)
    expect(typed).toMatchObject({ ok: false, status: 500, code: "kimi_auth_error", message: "The request was cancelled." })
    const opencode = await makeManagedTokenSource({ run: realRun, failure: plugin }).getAccessToken(aborted)
    expect(opencode).toEqual({
      ok: false,
      status: 502,
      code: "kimi_auth_error",
      message: `The request was cancelled. If it persists, ${pluginLogin}.`
    })
  })
})

describe("each edge's failure mapping", () => {
  const url = "https://auth.kimi.com/api/oauth/token"
  const errors = {
    // The advice as data (errors as data, issue 23): the plugin words the hint, it patches no text.
    NotLoggedInError: new NotLoggedInError({ reason: "no-tokens", ...advised("Not logged in", { _tag: "LogIn" }) }),
    CorruptTokenFileError: new CorruptTokenFileError({ path: "/x/oauth.json", movedTo: "/x/oauth.json.corrupt", message: "The token file was corrupt." }),
    NetworkError: new NetworkError({ url, message: "Could not reach the Kimi OAuth host." }),
    ServerError: new ServerError({ url, status: 503, excerpt: "", message: "The Kimi OAuth host answered 503." }),
    TokenStoreError: new TokenStoreError({ path: "/x/oauth.json", message: "Could not write /x/oauth.json." }),
    LockTimeoutError: new LockTimeoutError({ path: "/x/oauth.json.lock", message: "Timed out waiting for the token lock." }),
    ConfigError: new ConfigError({ message: "KIMI_OAUTH_HOST is not a URL." }),
    InvalidResponseError: new InvalidResponseError({ url, status: 200, excerpt: "", message: "The token answer was not JSON." })
  }

  it("the plugin: statuses and codes per failure, OpenCode's command named", async () => {
    const expected: Record<keyof typeof errors, [number, string, string]> = {
      NotLoggedInError: [401, "kimi_login_required", `Kimi login required: Not logged in; ${pluginLogin}.`],
      CorruptTokenFileError: [401, "kimi_login_required", "Kimi login required: The token file was corrupt."],
      NetworkError: [503, "kimi_auth_unavailable", "Could not refresh the Kimi token: Could not reach the Kimi OAuth host."],
      ServerError: [503, "kimi_auth_unavailable", "Could not refresh the Kimi token: The Kimi OAuth host answered 503."],
      TokenStoreError: [500, "kimi_token_storage", "Could not write /x/oauth.json."],
      LockTimeoutError: [500, "kimi_token_storage", "Timed out waiting for the token lock."],
      ConfigError: [500, "kimi_config", "KIMI_OAUTH_HOST is not a URL."],
      InvalidResponseError: [502, "kimi_auth_error", `The token answer was not JSON. If it persists, ${pluginLogin}.`]
    }
    for (const [tag, error] of Object.entries(errors)) {
      const [status, code, message] = expected[tag as keyof typeof errors]
      expect(await failureOf({ run: failingRun(error), failure: plugin }), tag).toEqual({ ok: false, status, code, message })
    }
  })

  it("createKimi: 401 for no login, 503 for an unreachable or failing token endpoint, else 500; the typed error kept", async () => {
    const expected: Record<keyof typeof errors, [number, string]> = {
      NotLoggedInError: [401, "kimi_login_required"],
      CorruptTokenFileError: [500, "kimi_auth_error"],
      NetworkError: [503, "kimi_auth_error"],
      ServerError: [503, "kimi_auth_error"],
      TokenStoreError: [500, "kimi_auth_error"],
      LockTimeoutError: [500, "kimi_auth_error"],
      ConfigError: [500, "kimi_auth_error"],
      InvalidResponseError: [500, "kimi_auth_error"]
    }
    for (const [tag, error] of Object.entries(errors)) {
      const [status, code] = expected[tag as keyof typeof errors]
      const f = await failureOf({ run: failingRun(error), failure: typedFailure })
      expect(f, tag).toEqual({ ok: false, status, code, message: error.message, error })
    }
  })

  it("the facade: by KimiAuthError code, the error itself kept for the caller", async () => {
    const cases: Array<[KimiAuthError, number, string]> = [
      [new KimiAuthError("NOT_LOGGED_IN", "Not logged in."), 401, "kimi_login_required"],
      [new KimiAuthError("NETWORK_ERROR", "Could not reach the Kimi OAuth host."), 503, "kimi_auth_error"],
      [new KimiAuthError("SERVER_ERROR", "The Kimi OAuth host answered 503."), 503, "kimi_auth_error"],
      [new KimiAuthError("STORAGE_ERROR", "Could not write."), 500, "kimi_auth_error"],
      [new KimiAuthError("DISPOSED", "This KimiOAuthClient was disposed; create a new one."), 500, "kimi_auth_error"],
      [new KimiAuthError("ABORTED", "The operation was cancelled."), 500, "kimi_auth_error"]
    ]
    for (const [error, status, code] of cases) {
      const f = await failureOf({ run: facadeRun(error), failure: authErrorFailure })
      expect(f, error.code).toEqual({ ok: false, status, code, message: error.message, error })
      expect(f.error).toBeInstanceOf(KimiAuthError)
    }
  })

  it("causeMessage: the typed error's message, 'cancelled' for an interruption, else the defect", async () => {
    const fail = await Effect.runPromiseExit(Effect.fail(errors.NetworkError))
    const interrupted = await Effect.runPromiseExit(Effect.interrupt)
    const died = await Effect.runPromiseExit(Effect.die("boom"))
    expect(Exit.isFailure(fail) && causeMessage(fail.cause)).toBe("Could not reach the Kimi OAuth host.")
    expect(Exit.isFailure(interrupted) && causeMessage(interrupted.cause)).toBe("The request was cancelled.")
    expect(Exit.isFailure(died) && causeMessage(died.cause)).toBe("boom")
  })
})
