/**
 * An API that refuses every token, even one refreshed a moment ago (a wrong
 * base URL or region, a suspended plan): every 401 used to force a refresh, so
 * three processes sending ten requests each made 21 refreshes, each one a
 * rotation of the family and a request to the token endpoint, without end.
 * Now a token issued less than a minute ago is not refreshed again: one
 * refresh in all, across processes, and a clear "rejected" answer. Real child
 * processes (the built facade) against a loopback server.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { forcedRefreshPath as forcedRefreshLogPath } from "../../src/storage/Notes.js"
import { issuedMomentsAgo, refusesAgain, REJECTED_FRESH_TOKEN_SECONDS } from "../../src/tokens/TokenManagerDecisions.js"
import { refusedFetchesChild, refusedFetchesResult, startRefusingApi } from "../support/refusingApi.js"
import type { ScriptedServer } from "../support/scriptedServer.js"
import { storageWithLogin, tokenSet } from "../support/tokens.js"

let server: ScriptedServer | undefined
const temps: Array<string> = []
afterEach(async () => {
  await server?.close()
  server = undefined
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true })
})

describe("issuedMomentsAgo", () => {
  it("is true only within the window after the issue, and never for an issue time in the future", () => {
    const t = tokenSet(1, 10_900, 900) // issued at 10 000
    expect(issuedMomentsAgo(t, 10_000)).toBe(true)
    expect(issuedMomentsAgo(t, 10_000 + REJECTED_FRESH_TOKEN_SECONDS - 1)).toBe(true)
    expect(issuedMomentsAgo(t, 10_000 + REJECTED_FRESH_TOKEN_SECONDS)).toBe(false)
    expect(issuedMomentsAgo(t, 9_000)).toBe(false)
  })
})

describe("refusesAgain", () => {
  it("refuses only a fresh token within the window of a forced refresh", () => {
    const t = tokenSet(1, 10_900, 900) // issued at 10 000
    expect(refusesAgain(t, 10_010, undefined)).toBe(false) // no forced refresh yet: heal once
    expect(refusesAgain(t, 10_010, 10_000_000)).toBe(true)
    expect(refusesAgain(t, 10_000 + REJECTED_FRESH_TOKEN_SECONDS, 10_000_000)).toBe(false)
    expect(refusesAgain(tokenSet(1, 10_000, 900), 10_010, 10_000_000)).toBe(false) // an older token: refresh
  })
})

describe("an API that answers 401 to every token", () => {
  it("three processes, ten requests each: one refresh in all, then a clear rejection", async () => {
    // The built package (`npm test` builds it first), as the fault lanes use it.
    server = await startRefusingApi()
    // A login issued 100 s ago, valid for 800 s more: not due, and old enough to be refreshed once.
    const dir = storageWithLogin("kimi-refusing-", 800)
    temps.push(dir)
    const url = server.url
    const outputs = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const children = yield* Effect.forEach([1, 2, 3], () => refusedFetchesChild(url, dir, 10))
      yield* Effect.forEach(children, (c) => c.exited, { concurrency: "unbounded" })
      return children.map((c) => c.output())
    })))
    const results = outputs.map(refusedFetchesResult)
    const refreshes = server.requests.filter((r) => r.path === "/api/oauth/token").length
    const apiCalls = server.requests.filter((r) => r.path === "/coding/v1/models").length
    expect(refreshes).toBe(1)
    // Every request still answered (401), never thrown; only each process's first one retried (with the new token).
    for (const r of results) expect(r.statuses).toEqual(Array(10).fill(401))
    expect(apiCalls).toBeLessThanOrEqual(33)
    expect(results.some((r) => r.message.includes("a token refreshed moments ago is not refreshed again"))).toBe(true)
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")) as { refresh_token: string }
    expect(onDisk.refresh_token).toBe("rt-1")
    // The record every process read: mode 0600 beside the token file.
    expect(fs.statSync(forcedRefreshLogPath(path.join(dir, "oauth.json"))).mode & 0o777).toBe(0o600)
  }, 60_000)
})
