/**
 * The named decisions of the command modules (`src/cli/commands/*.ts`) and
 * of `RunCommand.ts`, tested directly, in process: what each command says for
 * a given state. The commands themselves run as child processes in the other
 * files of this folder.
 */
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { debugFromEnv } from "../../src/cli/CommonFlags.js"
import { emulatorOptions, type EmulatorFlags, finite, parsePort } from "../../src/cli/commands/emulator.js"
import { browserReport, codeEvent, codeLines, countdownTick, loggedInLine, verificationUrl } from "../../src/cli/commands/login.js"
import { logoutText, openCodeLine } from "../../src/cli/commands/logout.js"
import {
  loginCommandFor,
  statusDebugLine,
  statusExitCode,
  statusJson,
  statusState,
  statusText
} from "../../src/cli/commands/status.js"
import { storedTokenLine, tokenChangeLine } from "../../src/cli/commands/token.js"
import { ExitCode } from "../../src/cli/ExitCode.js"
import { isoSeconds } from "../../src/cli/Output.js"
import { defectKind, defectMessage, errorEvent, stackFrames } from "../../src/cli/RunCommandDecisions.js"
import type { LoginStatus } from "../../src/oauth/LoginStatus.js"
import type { DeviceAuthorization } from "../../src/oauth/OAuthClient.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"

const plain = (s: string) => s
const tag = (name: string) => (s: string) => `<${name}>${s}</${name}>`
const style = { bold: tag("b"), dim: tag("dim"), red: tag("red"), green: tag("green"), cyan: tag("cyan") }

const EXPIRES = 1_800_000_000
const status = (over: Partial<LoginStatus> = {}): LoginStatus => ({
  tokens: { expiresAt: EXPIRES, remainingSeconds: 845.7, refreshDue: false, refreshInSeconds: 395, scope: "kimi-code" },
  deviceId: "dev-1",
  tokenFilePath: "/h/.opencode-kimi-auth/oauth.json",
  deviceIdPath: "/h/.opencode-kimi-auth/device_id",
  oauthHost: "https://auth.kimi.com",
  apiBaseUrl: "https://api.kimi.com/coding/v1",
  region: "mainland-cn",
  refreshWindowSeconds: 300,
  ...over
})
const refused = { at: "2026-12-02T18:00:00.000Z", detail: "Kimi answered invalid_grant" }

describe("status: what it says for each login state", () => {
  it("no tokens: not logged in, exit 7, the login command and where it looked", () => {
    const s = status({ tokens: undefined, deviceId: "" })
    expect(statusState(s)).toBe("NotLoggedIn")
    expect(statusExitCode("NotLoggedIn")).toBe(ExitCode.notLoggedIn)
    expect(statusJson(s)).toEqual({
      logged_in: false,
      token_file: s.tokenFilePath,
      device_id: "",
      oauth_host: s.oauthHost,
      api_base_url: s.apiBaseUrl,
      region: "mainland-cn"
    })
    expect(statusText(s, style)).toBe(
      "Not logged in to Kimi. Run <b>kimi-auth login</b>.\n" +
        `<dim>  token file: ${s.tokenFilePath}\n  device id:  (none yet: the first login or request creates it)\n</dim>`
    )
    expect(statusDebugLine(s)).toBe(`status: no tokens at ${s.tokenFilePath}`)
  })

  it("a refused refresh wins over a valid access token: not logged in, exit 7", () => {
    const s = status({ refreshRefused: refused, region: "global" })
    expect(statusState(s)).toBe("RefreshRefused")
    expect(statusExitCode("RefreshRefused")).toBe(ExitCode.notLoggedIn)
    expect(statusJson(s)).toMatchObject({
      logged_in: false,
      refresh_refused: true,
      refresh_refused_at: refused.at,
      refresh_refused_detail: refused.detail,
      expires_at: EXPIRES
    })
    const text = statusText(s, style)
    expect(text).toContain(`<red>✗</red> Not logged in to Kimi: Kimi refused the last token refresh (${refused.at}).\n`)
    expect(text).toContain(`${refused.detail}. The stored tokens were kept, but they no longer work; run <b>kimi-auth login --region global</b>.`)
  })

  it("a login: exit 0, when it expires and when it is due, never a secret", () => {
    const s = status()
    expect(statusState(s)).toBe("LoggedIn")
    expect(statusExitCode("LoggedIn")).toBeUndefined()
    expect(statusJson(s)).toMatchObject({
      logged_in: true,
      expires_at: EXPIRES,
      expires_in_seconds: 845,
      access_token_expired: false,
      refresh_due: false,
      scope: "kimi-code"
    })
    expect(statusText(s, { ...style, bold: plain, dim: plain })).toBe(
      "<green>✓</green> Logged in to Kimi.\n" +
        `  access token: valid for 14m 05s (${isoSeconds(EXPIRES)}); refresh due in 6m 35s, with the stored refresh token\n` +
        `  token file:   ${s.tokenFilePath}\n  device id:    dev-1\n` +
        "  region:       mainland-cn\n" +
        `  OAuth host:   ${s.oauthHost}\n  API base:     ${s.apiBaseUrl}\n`
    )
    expect(statusDebugLine(s)).toContain("refresh not due (window 300 s)")
  })

  it("an expired access token is still a login (the refresh token renews it)", () => {
    const s = status({ tokens: { expiresAt: EXPIRES, remainingSeconds: -61, refreshDue: true, refreshInSeconds: 0, scope: "" } })
    expect(statusState(s)).toBe("LoggedIn")
    expect(statusJson(s)).toMatchObject({ logged_in: true, access_token_expired: true, refresh_due: true })
    expect(statusText(s, style)).toContain("expired 1m 01s ago")
    expect(statusText(s, style)).toContain("due for refresh: the next use refreshes it")
  })

  it("names the login command of the region", () => {
    expect(loginCommandFor(status())).toBe("kimi-auth login")
    expect(loginCommandFor(status({ region: "global" }))).toBe("kimi-auth login --region global")
  })
})

const authorization = (over: Partial<DeviceAuthorization> = {}): DeviceAuthorization => ({
  deviceCode: Redacted.make("device-secret"),
  userCode: "ABCD-EFGH",
  verificationUri: "https://www.kimi.com/code/authorize_device",
  verificationUriComplete: "https://www.kimi.com/code/authorize_device?user_code=ABCD-EFGH",
  expiresIn: 900,
  interval: 5,
  ...over
} as DeviceAuthorization)

describe("login: what each step says", () => {
  it("opens the complete URI when there is one, else the plain one", () => {
    expect(verificationUrl(authorization())).toBe("https://www.kimi.com/code/authorize_device?user_code=ABCD-EFGH")
    expect(verificationUrl(authorization({ verificationUriComplete: undefined }))).toBe("https://www.kimi.com/code/authorize_device")
  })

  it("the code event never holds the device code", () => {
    const line = codeEvent(authorization({ verificationUriComplete: undefined }), true)
    expect(JSON.parse(line)).toEqual({
      event: "code",
      verification_uri: "https://www.kimi.com/code/authorize_device",
      verification_uri_complete: null,
      user_code: "ABCD-EFGH",
      expires_in: 900,
      interval: 5,
      replaces_login: true
    })
    expect(line).not.toContain("device-secret")
    expect(codeLines(authorization(), style).join("\n")).not.toContain("device-secret")
    expect(codeLines(authorization(), style)).toContain("Code:  <b>ABCD-EFGH</b>")
  })

  it("reports the browser only once it answered; a skipped opener says nothing", () => {
    expect(browserReport({ _tag: "Skipped" }, true, style)).toBeUndefined()
    expect(browserReport({ _tag: "Skipped" }, false, style)).toBeUndefined()
    expect(JSON.parse(browserReport({ _tag: "Opened" }, true, style)!)).toEqual({ event: "browser", opened: true })
    expect(JSON.parse(browserReport({ _tag: "Failed", reason: "xdg-open exited 3" }, true, style)!))
      .toEqual({ event: "browser", opened: false, reason: "xdg-open exited 3" })
    expect(browserReport({ _tag: "Opened" }, false, style)).toBe("<dim>Opened the page in your browser.\n</dim>")
    expect(browserReport({ _tag: "Failed", reason: "no opener" }, false, style)).toContain("Could not open a browser (no opener)")
  })

  it("counts down rounded up, waking on the next whole second since the start", () => {
    expect(countdownTick(900, 0)).toEqual({ secondsLeft: 900, sleepMillis: 1000 })
    expect(countdownTick(900, 1)).toEqual({ secondsLeft: 900, sleepMillis: 999 })
    expect(countdownTick(900, 1999)).toEqual({ secondsLeft: 899, sleepMillis: 1 })
    expect(countdownTick(900, 900_000)).toEqual({ secondsLeft: 0, sleepMillis: 1000 })
  })

  it("says whether the previous login was replaced", () => {
    expect(loggedInLine("/t/oauth.json", false, { green: plain })).toBe("✓ Logged in to Kimi. Tokens saved to /t/oauth.json\n")
    expect(loggedInLine("/t/oauth.json", true, { green: plain })).toContain("(the previous login was replaced)")
  })
})

const tokens = (refresh: string, expiresAt: number) =>
  new TokenSet({
    accessToken: Redacted.make("access-secret"),
    refreshToken: Redacted.make(refresh),
    tokenType: "Bearer",
    expiresIn: 900,
    scope: "kimi-code",
    expiresAt
  })

describe("token --debug: what changed, never a value", () => {
  it("says when the stored token expires, or how long ago it did", () => {
    expect(storedTokenLine(tokens("r", 1000), 400.5, 300)).toBe(
      `token: the stored access token expires in 599 s (${isoSeconds(1000)}); refresh window 300 s`
    )
    expect(storedTokenLine(tokens("r", 1000), 1010.5, 300)).toContain("expired 11 s ago")
  })

  it("no request, a refresh without rotation, a rotation", () => {
    expect(tokenChangeLine(tokens("r1", 1000), tokens("r1", 1000), "/t")).toBe(
      "token: the stored access token is still valid; no request was made"
    )
    expect(tokenChangeLine(tokens("r1", 1000), tokens("r1", 1900), "/t")).toContain("was not rotated and saved to /t")
    const rotated = tokenChangeLine(tokens("r1", 1000), tokens("r2", 1900), "/t")
    expect(rotated).toContain("the refresh token was rotated")
    expect(rotated).not.toMatch(/r1|r2|access-secret/)
  })
})

describe("logout: what it says", () => {
  const file = "/h/.local/share/opencode/auth.json"
  it("a removed login and OpenCode's copy: gone for good", () => {
    const text = logoutText(
      { removed: true, recorded: true, opencode: { _tag: "Done", file, removed: ["kimi-code-plan-cn"], secrets: ["s"], apiKeys: [] } },
      "/t/oauth.json"
    )
    expect(text).toBe(
      "Logged out: removed /t/oauth.json. The device id is kept.\n" +
        `Removed OpenCode's copy of the login (kimi-code-plan-cn) from ${file}; its other entries are unchanged.\n` +
        "Nothing uses this login again; `kimi-auth login` makes a new one.\n"
    )
    expect(text).not.toContain("\"s\"")
  })

  it("nothing anywhere: no claim that a login is gone", () => {
    const text = logoutText({ removed: false, recorded: false, opencode: { _tag: "NoFile", file } }, "/t/oauth.json")
    expect(text).toBe(`Not logged in here; nothing to remove at /t/oauth.json.\nOpenCode holds no Kimi login (no ${file}).\n`)
  })

  it("an untouched OpenCode file says why and what removes its entries", () => {
    const r = { _tag: "Untouched", file, reason: "it cannot be read (EACCES)", secrets: ["s"] } as const
    expect(openCodeLine(r, true)).toBe(
      `OpenCode's ${file} was left unchanged: it cannot be read (EACCES). Its copy of this login is never used again by this plugin; ` +
        "to remove Kimi's entries from it, run `opencode auth logout`."
    )
    expect(openCodeLine(r, false)).not.toContain("never used again")
  })

  it("names an API key it leaves alone", () => {
    expect(openCodeLine({ _tag: "Done", file, removed: [], secrets: [], apiKeys: ["kimi-for-coding"] }, false)).toBe(
      `OpenCode holds no Kimi device login in ${file}. OpenCode still holds a Kimi API key for kimi-for-coding there ` +
        "(not a device login; `opencode auth logout` removes it)."
    )
  })
})

describe("emulator: flags to options", () => {
  const none = Option.none()
  const flags = (over: Partial<EmulatorFlags> = {}): EmulatorFlags => ({
    port: 0,
    host: "127.0.0.1",
    autoApprove: none,
    interval: none,
    accessTokenTtl: none,
    deviceCodeTtl: none,
    errorRate: none,
    dropRate: none,
    rateLimitRate: none,
    retryAfter: none,
    latency: none,
    faultPaths: none,
    seed: none,
    clientId: none,
    quota5h: none,
    quotaWeek: none,
    quotaRefusal: 403,
    rateLimited: false,
    ...over
  })

  it("no fault flag: no faults at all", () => {
    expect(emulatorOptions(flags()).faults).toBeUndefined()
    expect(emulatorOptions(flags()).quota).toEqual({
      fiveHourLimit: undefined,
      weeklyLimit: undefined,
      refusal: 403,
      rateLimited: false,
      retryAfterSeconds: undefined
    })
  })

  it("fault paths are a comma-separated list; --retry-after reaches both 429s", () => {
    const o = emulatorOptions(flags({ faultPaths: Option.some(" /api/oauth, ,/coding/v1 "), retryAfter: Option.some(2) }))
    expect(o.faults?.paths).toEqual(["/api/oauth", "/coding/v1"])
    expect(o.faults?.retryAfterSeconds).toBe(2)
    expect(o.quota?.retryAfterSeconds).toBe(2)
  })

  it("--chunk-delay alone is a fault setting: a slow model", () => {
    expect(emulatorOptions(flags({ chunkDelay: Option.some(300) })).faults?.chunkDelayMillis).toBe(300)
    expect(emulatorOptions(flags({ chunkDelay: none })).faults).toBeUndefined()
  })

  it("reads numbers and ports strictly", () => {
    expect(finite("0.3")).toEqual(Option.some(0.3))
    for (const bad of ["", "  ", "abc", "Infinity", "NaN"]) expect(finite(bad)).toEqual(Option.none())
    expect(parsePort("8787")).toEqual(Option.some(8787))
    expect(parsePort("0")).toEqual(Option.some(0))
    for (const bad of ["65536", "-1", "80.5", "", "123456"]) expect(parsePort(bad)).toEqual(Option.none())
  })
})

describe("RunCommand: failures and defects, never a message of a defect", () => {
  it("an error event is one JSON line", () => {
    expect(errorEvent("NotLoggedIn", ExitCode.notLoggedIn, "Run kimi-auth login.")).toBe(
      `{"event":"error","error":"NotLoggedIn","exit_code":${ExitCode.notLoggedIn},"message":"Run kimi-auth login."}\n`
    )
  })

  it("a defect is named by a printable kind, its message left out", () => {
    expect(defectKind(new TypeError("token abc"))).toBe("TypeError")
    const odd = new Error("x")
    odd.name = "Bearer secret\r\n!"
    expect(defectKind(odd)).toBe("Bearersecret")
    odd.name = "!!!"
    expect(defectKind(odd)).toBe("Error")
    expect(defectKind("boom")).toBe("string")
    expect(defectMessage("token", "TypeError")).toContain("kimi-auth token stopped on an unexpected internal error (TypeError)")
    expect(stackFrames("TypeError: token abc\n    at f (a.js:1:1)\n    at g (b.js:2:2)")).toBe("    at f (a.js:1:1)\n    at g (b.js:2:2)")
  })

  it("DEBUG names this package or everything", () => {
    for (const on of ["*", "opencode-kimi-auth", "opencode-kimi-auth:*", "other,opencode-kimi-auth", "a opencode-kimi-auth:*"]) {
      expect(debugFromEnv({ DEBUG: on }), on).toBe(true)
    }
    for (const off of ["", "opencode-kimi-auth-x", "other", "opencode-kimi-auth:lock"]) {
      expect(debugFromEnv({ DEBUG: off }), off).toBe(false)
    }
    expect(debugFromEnv({})).toBe(false)
  })
})
