/**
 * The emulator's OAuth device flow, driven on the TestClock: the emulator
 * takes its time from the Effect Clock of the fiber that started it, so
 * `TestClock.adjust` moves polls and expiries without waiting.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import { afterEach, vi } from "vitest"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { authorize, DEFAULT_CLIENT_ID, DEVICE_CODE_GRANT, poll, postForm, request } from "./http.js"

const P = <A>(f: () => Promise<A>) => Effect.promise(f)

afterEach(() => {
  vi.restoreAllMocks()
})

describe("emulator device flow", () => {
  it.effect("answers authorization_pending until approved, then issues tokens once", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const auth = yield* P(() => authorize(emu.url))
      assert.strictEqual(auth.status, 200)
      assert.match(auth.json.user_code, /^[A-Z]{4}-[A-Z]{4}$/)
      assert.match(auth.json.device_code, /^emu_dc_/)
      assert.strictEqual(auth.json.verification_uri, `${emu.url}/device`)
      assert.strictEqual(auth.json.verification_uri_complete, `${emu.url}/device?user_code=${auth.json.user_code}`)
      assert.strictEqual(auth.json.expires_in, 900)
      assert.strictEqual(auth.json.interval, 5)

      const p1 = yield* P(() => poll(emu.url, auth.json.device_code))
      assert.strictEqual(p1.status, 400)
      assert.strictEqual(p1.json.error, "authorization_pending")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code))).json.error, "authorization_pending")

      // user codes are matched without case or dash
      assert.isTrue(emu.approve(auth.json.user_code.toLowerCase().replace("-", "")))
      yield* TestClock.adjust("5 seconds")
      const ok = yield* P(() => poll(emu.url, auth.json.device_code))
      assert.strictEqual(ok.status, 200)
      assert.match(ok.json.access_token, /^emu_at_[A-Za-z0-9_-]{20,}$/)
      assert.match(ok.json.refresh_token, /^emu_rt_[A-Za-z0-9_-]{20,}$/)
      assert.deepStrictEqual(
        { expires_in: ok.json.expires_in, token_type: ok.json.token_type, scope: ok.json.scope },
        { expires_in: 900, token_type: "Bearer", scope: "kimi-code" }
      )
      assert.strictEqual(ok.headers.get("cache-control"), "no-store")
      assert.include(ok.headers.get("content-type") ?? "", "application/json")

      // single use: the same device code never yields tokens twice
      yield* TestClock.adjust("5 seconds")
      const again = yield* P(() => poll(emu.url, auth.json.device_code))
      assert.strictEqual(again.status, 400)
      assert.strictEqual(again.json.error, "invalid_grant")
      assert.isFalse(emu.approve(auth.json.user_code))

      // the issued access token works on the API
      const models = yield* P(() =>
        request(`${emu.apiBaseUrl}/models`, { headers: { authorization: `Bearer ${ok.json.access_token}` } })
      )
      assert.strictEqual(models.status, 200)

      const s = emu.stats()
      assert.deepStrictEqual(
        { polls: s.tokenPolls, pending: s.pendingAnswers, grants: s.deviceGrants, auths: s.deviceAuthorizations },
        { polls: 4, pending: 2, grants: 1, auths: 1 }
      )
    }))

  it.effect("answers slow_down to polls faster than the interval, and the interval grows by 5 s each time", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ interval: 5 })
      const { json: { device_code: code } } = yield* P(() => authorize(emu.url))
      const next = () => P(() => poll(emu.url, code))

      assert.strictEqual((yield* next()).json.error, "authorization_pending") // the first poll is free
      const fast = yield* next() // 0 s later
      assert.strictEqual(fast.status, 400)
      assert.strictEqual(fast.json.error, "slow_down")
      assert.strictEqual(fast.json.interval, 10)
      assert.strictEqual(emu.deviceCodes()[0]!.interval, 10)

      yield* TestClock.adjust("5 seconds") // the old interval is not enough any more
      assert.strictEqual((yield* next()).json.error, "slow_down")
      assert.strictEqual(emu.deviceCodes()[0]!.interval, 15)

      yield* TestClock.adjust(15_000 - 200) // within the 250 ms jitter tolerance
      assert.strictEqual((yield* next()).json.error, "authorization_pending")

      yield* TestClock.adjust(15_000 - 300) // beyond it
      assert.strictEqual((yield* next()).json.error, "slow_down")
      assert.strictEqual(emu.deviceCodes()[0]!.interval, 20)

      yield* TestClock.adjust("20 seconds")
      assert.strictEqual((yield* next()).json.error, "authorization_pending")
      assert.strictEqual(emu.stats().slowDowns, 3)
    }))

  it.effect("denial from the browser page ends the flow with access_denied", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const auth = yield* P(() => authorize(emu.url))
      const page = yield* P(() => request(auth.json.verification_uri_complete))
      assert.strictEqual(page.status, 200)
      assert.include(page.headers.get("content-type") ?? "", "text/html")
      assert.include(page.text, `value="${auth.json.user_code}"`)
      assert.include(page.text, `value="approve"`)
      assert.include(page.text, `value="deny"`)

      const denied = yield* P(() =>
        postForm(`${emu.url}/device`, { user_code: auth.json.user_code, action: "deny" }, { accept: "text/html" })
      )
      assert.strictEqual(denied.status, 200)
      assert.include(denied.text, "Login denied")
      assert.strictEqual(emu.deviceCodes()[0]!.status, "denied")

      const p = yield* P(() => poll(emu.url, auth.json.device_code))
      assert.strictEqual(p.status, 400)
      assert.strictEqual(p.json.error, "access_denied")
      assert.isFalse(emu.approve(auth.json.user_code))
    }))

  it.effect("approval from the browser page lets the next poll get tokens", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const auth = yield* P(() => authorize(emu.url))
      const approved = yield* P(() => postForm(`${emu.url}/device`, { user_code: auth.json.user_code, action: "approve" }))
      assert.strictEqual(approved.status, 200)
      assert.include(approved.text, "Login approved")
      const p = yield* P(() => poll(emu.url, auth.json.device_code))
      assert.strictEqual(p.status, 200)
      const unknown = yield* P(() => postForm(`${emu.url}/device`, { user_code: "ZZZZ-ZZZZ", action: "approve" }))
      assert.strictEqual(unknown.status, 404)
    }))

  it.effect("device codes expire after expires_in (15 minutes on the TestClock)", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const auth = yield* P(() => authorize(emu.url))
      yield* TestClock.adjust("899 seconds")
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code))).json.error, "authorization_pending")
      yield* TestClock.adjust("1 second")
      const late = yield* P(() => poll(emu.url, auth.json.device_code))
      assert.strictEqual(late.status, 400)
      assert.strictEqual(late.json.error, "expired_token")
      assert.isFalse(emu.approve(auth.json.user_code), "an expired code cannot be approved")
      const page = yield* P(() => request(`${emu.url}/device?user_code=${auth.json.user_code}`))
      assert.include(page.text, "expired")
    }))

  it.effect("auto-approve approves a code the configured time after it was issued", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ autoApproveAfterMillis: 3_000, deviceCodeTtlSeconds: 60, interval: 2 })
      const auth = yield* P(() => authorize(emu.url))
      assert.strictEqual(auth.json.expires_in, 60)
      assert.strictEqual(auth.json.interval, 2)
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code))).json.error, "authorization_pending")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code))).json.error, "authorization_pending")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code))).status, 200)
    }))

  it.effect("rejects bad clients, grants, parameters and bodies the RFC 6749 way", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ clientId: [DEFAULT_CLIENT_ID, "other-client"] })
      const token = `${emu.url}/api/oauth/token`
      const cases: Array<[string, Promise<{ status: number; json: any }>, number, string]> = [
        ["unknown client (device auth)", authorize(emu.url, "nope"), 401, "invalid_client"],
        ["missing client (device auth)", postForm(`${emu.url}/api/oauth/device_authorization`, {}), 401, "invalid_client"],
        ["unknown client (token)", poll(emu.url, "emu_dc_x", "nope"), 401, "invalid_client"],
        ["unsupported grant", postForm(token, { client_id: DEFAULT_CLIENT_ID, grant_type: "password" }), 400,
          "unsupported_grant_type"],
        ["missing grant_type", postForm(token, { client_id: DEFAULT_CLIENT_ID }), 400, "invalid_request"],
        ["missing device_code", postForm(token, { client_id: DEFAULT_CLIENT_ID, grant_type: DEVICE_CODE_GRANT }), 400,
          "invalid_request"],
        ["missing refresh_token", postForm(token, { client_id: DEFAULT_CLIENT_ID, grant_type: "refresh_token" }), 400,
          "invalid_request"],
        ["unknown device code", poll(emu.url, "emu_dc_unknown"), 400, "invalid_grant"],
        ["JSON body", request(token, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ client_id: DEFAULT_CLIENT_ID, grant_type: DEVICE_CODE_GRANT, device_code: "x" })
        }), 400, "invalid_request"],
        ["repeated parameter", request(token, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: `client_id=${DEFAULT_CLIENT_ID}&grant_type=refresh_token&refresh_token=a&refresh_token=b`
        }), 400, "invalid_request"]
      ]
      for (const [name, reply, status, error] of cases) {
        const r = yield* P(() => reply)
        assert.deepStrictEqual({ name, status: r.status, error: r.json?.error }, { name, status, error })
      }
      // a device code is bound to the client that asked for it
      const auth = yield* P(() => authorize(emu.url, "other-client"))
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code))).json.error, "invalid_grant")
      assert.strictEqual((yield* P(() => poll(emu.url, auth.json.device_code, "other-client"))).json.error,
        "authorization_pending")
    }))

  it.effect("records every request with its X-Msh headers, form fields and arrival time, printing nothing", () =>
    Effect.gen(function*() {
      const writes: Array<string> = []
      vi.spyOn(process.stdout, "write").mockImplementation((chunk: any) => {
        writes.push(String(chunk))
        return true
      })
      const emu = yield* KimiEmulator.make()
      yield* TestClock.adjust("42 seconds")
      const identity = {
        "X-Msh-Platform": "kimi_cli",
        "X-Msh-Version": "1.0.0",
        "X-Msh-Device-Name": "test-host",
        "X-Msh-Device-Model": "Linux 6.1.0 x86_64",
        "X-Msh-Os-Version": "#1 SMP",
        "X-Msh-Device-Id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "User-Agent": "KimiCLI/1.0.0"
      }
      const auth = yield* P(() => authorize(emu.url))
      emu.approve(auth.json.user_code)
      const ok = yield* P(() => poll(emu.url, auth.json.device_code, DEFAULT_CLIENT_ID))
      yield* P(() =>
        postForm(`${emu.url}/api/oauth/token`, {
          client_id: DEFAULT_CLIENT_ID,
          grant_type: "refresh_token",
          refresh_token: ok.json.refresh_token
        }, identity)
      )
      const [first, second, third] = emu.requests()
      assert.strictEqual(emu.requests().length, 3)
      assert.strictEqual(first!.path, "/api/oauth/device_authorization")
      assert.strictEqual(first!.at, 42_000)
      assert.deepStrictEqual(first!.form, { client_id: DEFAULT_CLIENT_ID })
      assert.strictEqual(second!.form?.["device_code"], auth.json.device_code)
      assert.strictEqual(second!.status, 200)
      assert.strictEqual(third!.method, "POST")
      assert.strictEqual(third!.form?.["refresh_token"], ok.json.refresh_token)
      assert.deepStrictEqual(third!.msh, {
        platform: "kimi_cli",
        version: "1.0.0",
        deviceName: "test-host",
        deviceModel: "Linux 6.1.0 x86_64",
        osVersion: "#1 SMP",
        deviceId: "0f8fad5b-d9cb-469f-a165-70867728950e"
      })
      assert.strictEqual(third!.userAgent, "KimiCLI/1.0.0")
      assert.strictEqual(third!.headers["x-msh-device-id"], identity["X-Msh-Device-Id"])
      assert.strictEqual(emu.requests("/api/oauth/token").length, 2)
      emu.clearRequests()
      assert.strictEqual(emu.requests().length, 0)
      const printed = writes.join("")
      assert.notInclude(printed, ok.json.access_token)
      assert.notInclude(printed, ok.json.refresh_token)
      assert.notInclude(printed, auth.json.device_code)
    }))
})
