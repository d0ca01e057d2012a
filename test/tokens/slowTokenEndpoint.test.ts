/**
 * A token endpoint slower than the deadlines, with several processes waiting
 * on it: real child processes (the built facade) against a loopback server
 * that rotates the refresh token on receipt and answers late.
 *
 * Before the fix: processes waiting for the lock gave up (LOCK_TIMEOUT) while
 * the holder was still within its own request deadline (the defaults are
 * both 30 s, so the waiters failed just as a slow answer arrived); and a
 * refresh that got no answer removed its "in flight" marker, so when the
 * spent token was then refused the user read "expired or was revoked" with
 * no word of what had happened.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Duration, Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { lockWaitFor } from "../../src/config/KimiAuthConfig.js"
import { afterUnansweredPoll } from "../../src/oauth/DeviceFlow.js"
import { AccessDeniedError, DeviceCodeExpiredError, OAuthError } from "../../src/Errors.js"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { mayHaveRotated, servesMeanwhile as servableWhileLockBusy } from "../../src/tokens/TokenManagerDecisions.js"
import { storageWithLogin, tokenSet } from "../support/tokens.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"
import { compiledLibrary, repoRoot, spawnNode } from "../support/tmp.js"

let server: ScriptedServer | undefined
const temps: Array<string> = []
afterEach(async () => {
  await server?.close()
  server = undefined
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true })
})

interface Outcome {
  readonly ok: boolean
  readonly token?: string
  readonly code?: string
  readonly message?: string
}

/** A rotating token endpoint that answers `delayMs` after receipt; `reuses` counts spent tokens sent again. */
const rotatingLate = async (delayMs: () => number) => {
  const stats = { refreshes: 0, reuses: 0 }
  let live = "rt-0"
  const spent = new Set<string>()
  server = await startScriptedServer(async (req) => {
    const rt = req.form["refresh_token"] ?? ""
    let reply: { status: number; body: unknown }
    if (rt === live) {
      stats.refreshes++
      spent.add(rt)
      live = `rt-${stats.refreshes}`
      reply = { status: 200, body: { access_token: `at-${stats.refreshes}`, refresh_token: live, expires_in: 900, token_type: "Bearer" } }
    } else {
      if (spent.has(rt)) stats.reuses++
      reply = { status: 400, body: { error: "invalid_grant", error_description: "The provided authorization grant is invalid" } }
    }
    await new Promise((r) => setTimeout(r, delayMs()))
    return reply
  })
  return stats
}

/** A storage folder holding an expired login (`rt-0`). */
const expiredLogin = () => {
  const dir = storageWithLogin("kimi-slow-endpoint-", -10)
  temps.push(dir)
  return dir
}

/** Runs `count` children at once with these deadlines and returns their outcomes. */
const children = (count: number, dir: string, requestTimeout: string, lockTimeout: string, attempts = 1, answerTimeout?: string) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const url = server!.url
    const all = yield* Effect.forEach(Array.from({ length: count }), () =>
      spawnNode(path.join(repoRoot, "test", "fixtures", "slow-refresh.mjs"), [
        path.join(repoRoot, "dist"), url, dir, requestTimeout, lockTimeout, String(attempts), ...(answerTimeout ? [answerTimeout] : [])
      ]))
    yield* Effect.forEach(all, (c) => c.exited, { concurrency: "unbounded" })
    return all.map((c) => JSON.parse(c.output().trim().split("\n").pop()!) as Outcome)
  })))

describe("lockWaitFor and mayHaveRotated", () => {
  it("a waiter waits at least two request deadlines and a save; a longer lockTimeout stays", () => {
    const at = (lockTimeout: Duration.Input, requestTimeout: Duration.Input) =>
      Duration.toMillis(lockWaitFor({ lockTimeout: Duration.fromInputUnsafe(lockTimeout), requestTimeout: Duration.fromInputUnsafe(requestTimeout) }))
    expect(at("30 seconds", "30 seconds")).toBe(65_000)
    expect(at("1 second", "4 seconds")).toBe(13_000)
    expect(at("5 minutes", "30 seconds")).toBe(300_000)
  })

  it("no answer may have rotated the token; a refused connection or an answer did not", () => {
    expect(mayHaveRotated({ _tag: "NetworkError", reason: "timeout" })).toBe(true)
    expect(mayHaveRotated({ _tag: "NetworkError", reason: "TransportError (ECONNRESET)" })).toBe(true)
    expect(mayHaveRotated({ _tag: "NetworkError", reason: "TransportError (ECONNREFUSED)" })).toBe(false)
    expect(mayHaveRotated({ _tag: "ServerError" })).toBe(false)
  })
})

describe("a lock held longer than the wait, with a valid token at hand", () => {
  it("servableWhileLockBusy: only a proactive refresh, only with more than 5 s left", () => {
    const t = tokenSet(0, 1000)
    expect(servableWhileLockBusy(t, false, 990)).toBe(true)
    expect(servableWhileLockBusy(t, false, 995)).toBe(false)
    expect(servableWhileLockBusy(t, true, 0)).toBe(false)
    expect(servableWhileLockBusy(undefined, false, 0)).toBe(false)
  })

  it("a live holder keeps the lock: the proactive refresh serves the still-valid token instead of LOCK_TIMEOUT, and spends nothing", async () => {
    const stats = await rotatingLate(() => 0)
    // Due (100 s left of 900) but valid.
    const dir = storageWithLogin("kimi-busy-lock-", 100)
    temps.push(dir)
    const lib = compiledLibrary()
    const outcome = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const holder = yield* spawnNode(path.join(repoRoot, "test", "fixtures", "store-lock.mjs"), [lib, dir, "hold", "0"])
      yield* holder.waitForLine("held")
      const [waiter] = yield* Effect.forEach([1], () =>
        spawnNode(path.join(repoRoot, "test", "fixtures", "slow-refresh.mjs"), [path.join(repoRoot, "dist"), server!.url, dir, "1 second", "1 second", "1"]))
      yield* waiter!.exited
      return JSON.parse(waiter!.output().trim().split("\n").pop()!) as Outcome
    })))
    expect(outcome).toMatchObject({ ok: true, token: "at-0" })
    expect(stats.refreshes).toBe(0)
    expect(server!.requests).toEqual([])
  }, 60_000)
})

describe("a token endpoint slower than the lock's wait", () => {
  it("three processes, the answer after 3 s, a 1 s lockTimeout: the waiters outwait the holder; one refresh, no replay", async () => {
    const stats = await rotatingLate(() => 3000)
    const dir = expiredLogin()
    const outcomes = await children(3, dir, "6 seconds", "1 second")
    expect(outcomes.map((o) => o.code ?? "ok")).toEqual(["ok", "ok", "ok"])
    expect(new Set(outcomes.map((o) => o.token))).toEqual(new Set(["at-1"]))
    expect(stats).toEqual({ refreshes: 1, reuses: 0 })
  }, 60_000)
})

describe("a refresh answered later than the request timeout (issue 22)", () => {
  it("three processes, a 2 s request timeout, the answer after 4 s: the holder awaits it, the waiters outwait it; one refresh, no replay", async () => {
    const stats = await rotatingLate(() => 4000)
    const dir = expiredLogin()
    // Default answer bound (5 minutes); the lock waiters' bound follows it.
    const outcomes = await children(3, dir, "2 seconds", "1 second", 3)
    expect(outcomes.map((o) => o.code ?? "ok")).toEqual(["ok", "ok", "ok"])
    expect(new Set(outcomes.map((o) => o.token))).toEqual(new Set(["at-1"]))
    expect(stats).toEqual({ refreshes: 1, reuses: 0 })
    expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).refresh_token).toBe("rt-1")
    expect(fs.existsSync(path.join(dir, "oauth.json.refreshing"))).toBe(false)
  }, 60_000)

  it("a due but valid login: each process is served its valid token within the request timeout; the late answer is still saved", async () => {
    const stats = await rotatingLate(() => 4000)
    const dir = storageWithLogin("kimi-late-valid-", 100)
    temps.push(dir)
    const outcomes = await children(2, dir, "2 seconds", "1 second", 3)
    expect(outcomes.map((o) => o.code ?? "ok")).toEqual(["ok", "ok"])
    // Served at-0 meanwhile, or at-1 if the answer was in by then; never a replay.
    expect(stats).toEqual({ refreshes: 1, reuses: 0 })
    expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).refresh_token).toBe("rt-1")
  }, 60_000)
})

describe("a refresh that gets no answer in time", () => {
  it("keeps its in-flight marker, so the later rejection of the spent token says what happened", async () => {
    let delay = 2500
    const stats = await rotatingLate(() => delay)
    const dir = expiredLogin()
    // The answer bound (refreshAnswerTimeout) set as short as the request timeout: the answer is "late" for it.
    const [first] = await children(1, dir, "1 second", "30 seconds", 1, "1 second")
    expect(first).toMatchObject({ ok: false, code: "NETWORK_ERROR" })
    // Kimi rotated on receipt; the answer came too late. The marker says a refresh is in doubt.
    expect(stats.refreshes).toBe(1)
    expect(fs.existsSync(path.join(dir, "oauth.json.refreshing"))).toBe(true)
    delay = 0
    const [second] = await children(1, dir, "5 seconds", "30 seconds")
    expect(second).toMatchObject({ ok: false, code: "NOT_LOGGED_IN" })
    expect(second!.message).toContain("got no answer in time")
    expect(second!.message).toContain("kimi-auth login")
    // Nothing was deleted.
    expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).refresh_token).toBe("rt-0")
  }, 60_000)
})

describe("a login poll that gets no answer in time", () => {
  it("afterUnansweredPoll retells expired_token and invalid_grant, and leaves other refusals alone", () => {
    const expired = afterUnansweredPoll(new DeviceCodeExpiredError({ message: "The login code expired before it was approved." }))
    expect(expired._tag).toBe("DeviceCodeExpiredError")
    expect(expired.message).toContain("most likely approved")
    const grant = afterUnansweredPoll(new OAuthError({ status: 400, error: "invalid_grant", message: "refused" }))
    expect(grant).toMatchObject({ _tag: "OAuthError", error: "invalid_grant", status: 400 })
    expect(grant.message).toContain("raise the request timeout")
    const denied = new AccessDeniedError({ message: "refused in the browser" })
    expect(afterUnansweredPoll(denied)).toBe(denied)
  })

  it("the approval's answer comes after the deadline, then the code is refused: the facade says the login was most likely approved", async () => {
    let polls = 0
    server = await startScriptedServer(async (req) => {
      if (req.path === "/api/oauth/device_authorization") {
        return { status: 200, body: { device_code: "dc", user_code: "KIMI-2468", verification_uri: "http://127.0.0.1/device", expires_in: 60, interval: 1 } }
      }
      polls++
      if (polls === 1) {
        await new Promise((r) => setTimeout(r, 2500))
        return { status: 200, body: { access_token: "at-1", refresh_token: "rt-1", expires_in: 900, token_type: "Bearer" } }
      }
      return { status: 400, body: { error: "expired_token" } }
    })
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-slow-poll-"))
    temps.push(dir)
    const client = new KimiOAuthClient({ oauthHost: server.url, storageDir: dir, requestTimeout: "1 second" })
    try {
      const session = await client.authorize()
      const failure = await session.waitForCompletion().then(() => undefined, (e: unknown) => e as { code: string; message: string })
      expect(failure?.code).toBe("EXPIRED_TOKEN")
      // It used to say "The login code expired before it was approved".
      expect(failure?.message).toContain("the login was most likely approved")
      expect(polls).toBe(2)
    } finally {
      await client.dispose()
    }
  }, 30_000)

  it("a lost answer followed by a pending one was not the approval: a later expiry is told as an expiry", async () => {
    let polls = 0
    server = await startScriptedServer(async (req) => {
      if (req.path === "/api/oauth/device_authorization") {
        return { status: 200, body: { device_code: "dc", user_code: "KIMI-2468", verification_uri: "http://127.0.0.1/device", expires_in: 60, interval: 1 } }
      }
      polls++
      if (polls === 1) await new Promise((r) => setTimeout(r, 2500))
      return polls <= 2 ? { status: 400, body: { error: "authorization_pending" } } : { status: 400, body: { error: "expired_token" } }
    })
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-slow-poll-"))
    temps.push(dir)
    const client = new KimiOAuthClient({ oauthHost: server.url, storageDir: dir, requestTimeout: "1 second" })
    try {
      const session = await client.authorize()
      const failure = await session.waitForCompletion().then(() => undefined, (e: unknown) => e as { code: string; message: string })
      expect(failure?.code).toBe("EXPIRED_TOKEN")
      expect(failure?.message).toContain("expired before it was approved")
    } finally {
      await client.dispose()
    }
  }, 30_000)
})
