/**
 * The decisions of `src/tokens/TokenManagerDecisions.ts`, each tested directly, without a
 * store, a server or a clock: must we refresh now, may we serve the old
 * token, what a refused refresh means after a re-read, which tokens to start
 * from, when to retry and after what delay, and when the background
 * refresher wakes.
 */
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import { InvalidResponseError, NotLoggedInError, TokenStoreError } from "../../src/Errors.js"
import {
  answersFromMemory,
  backgroundSleepMillis,
  badAnswerNotNow,
  clockJumped,
  declinesForcedRefresh,
  interruptedMessage,
  isRefusedForGood,
  loggedOutElsewhere,
  presenceCheckDue,
  PRESENCE_CHECK_MILLIS,
  readRefusedRefresh as readRefusal,
  onTheWireElsewhere,
  retriesAfter,
  whatHappened,
  refreshedElsewhere,
  replacedSince,
  retryAt as retryNotBeforeFor,
  retryGivesUp,
  servedNotNow,
  servesMeanwhile as servableMeanwhile,
  startingTokens,
  stillNotNow as servesDuringBackoff,
  type UnsavedTokens
} from "../../src/tokens/TokenManagerDecisions.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"

/** A set `a<id>`/`r<id>` expiring at `expiresAt` after a lifetime of `expiresIn` (900 s: due 450 s before expiry with a 300 s window). */
/** The bad-answer case as the one "not now" outcome and the one serving rule. */
const servedDespiteBadAnswer = (error: InvalidResponseError, onDisk: TokenSet, force: boolean, now: number) => {
  const n = badAnswerNotNow(error, onDisk)
  return n === undefined ? undefined : servedNotNow(n, force, now)
}

const tokenSet = (id: number | string, expiresAt: number, expiresIn = 900) =>
  new TokenSet({
    accessToken: Redacted.make(`a${id}`),
    refreshToken: Redacted.make(`r${id}`),
    tokenType: "Bearer",
    expiresIn,
    scope: "kimi-code",
    expiresAt
  })

const WINDOW = 300
const NOW = 100_000
const fresh = tokenSet(1, NOW + 800) // not due (800 s left > 450)
const due = tokenSet(1, NOW + 400) // due (400 s left <= 450), still valid
const dying = tokenSet(1, NOW + 3) // 3 s left
const expired = tokenSet(1, NOW - 10)
const a1 = Redacted.make("a1")
const other = Redacted.make("a-other")

describe("must we refresh now", () => {
  it("replacedSince: only a rejected token that differs from the set in hand was replaced", () => {
    expect(replacedSince(fresh, undefined)).toBe(false)
    expect(replacedSince(fresh, a1)).toBe(false)
    expect(replacedSince(fresh, other)).toBe(true)
  })

  it.each([
    // [case, tokens, rejected, force, answers]
    ["proactive, not due", fresh, undefined, false, true],
    ["proactive, due", due, undefined, false, false],
    ["forced without a rejected token", fresh, undefined, true, false],
    ["forced, the rejected token is the one in memory", fresh, a1, true, false],
    ["forced, memory already holds another token", fresh, other, true, true],
    ["forced, memory holds another token that is due", due, other, true, true]
  ] as const)("answersFromMemory: %s", (_, tokens, rejected, force, answers) => {
    expect(answersFromMemory(tokens, rejected, force, NOW, WINDOW)).toBe(answers)
  })

  it.each([
    // [case, on disk, rejected, force, refreshed elsewhere (no refresh)]
    ["proactive, the file is no longer due", fresh, undefined, false, true],
    ["proactive, the file is due", due, undefined, false, false],
    ["forced, the file still holds the rejected token", fresh, a1, true, false],
    ["forced without a rejected token", fresh, undefined, true, false],
    ["forced, another process wrote another valid token", due, other, true, true],
    ["forced, another token on disk, but expired", expired, other, true, false]
  ] as const)("refreshedElsewhere: %s", (_, onDisk, rejected, force, elsewhere) => {
    expect(refreshedElsewhere(onDisk, rejected, force, NOW, WINDOW)).toBe(elsewhere)
  })

  describe("declinesForcedRefresh: a rejected fresh token is not refreshed again", () => {
    const justIssued = tokenSet(1, NOW - 10 + 900) // issued 10 s ago
    const oldOne = tokenSet(1, NOW - 120 + 900) // issued 2 min ago
    it.each([
      // [case, on disk, rejected, last forced refresh (millis), declines]
      ["rejected the token a forced refresh issued moments ago", justIssued, a1, (NOW - 10) * 1000, true],
      ["no forced refresh recorded", justIssued, a1, undefined, false],
      ["the forced refresh was over a minute ago", justIssued, a1, (NOW - 61) * 1000, false],
      ["the rejected token is not fresh", oldOne, a1, (NOW - 10) * 1000, false],
      ["the file holds another token than the rejected one", justIssued, other, (NOW - 10) * 1000, false],
      ["no rejected token given", justIssued, undefined, (NOW - 10) * 1000, false]
    ] as const)("%s", (_, onDisk, rejected, lastForced, declines) => {
      expect(declinesForcedRefresh(onDisk, rejected, NOW, lastForced)).toBe(declines)
    })
  })
})

describe("may we serve the old token", () => {
  it.each([
    // [case, tokens, force, servable]
    ["proactive, plenty left", due, false, true],
    ["proactive, 3 s left", dying, false, false],
    ["proactive, exactly 5 s left", tokenSet(1, NOW + 5), false, false],
    ["proactive, 6 s left", tokenSet(1, NOW + 6), false, true],
    ["forced: the API refused it", due, true, false]
  ] as const)("servableMeanwhile: %s", (_, tokens, force, servable) => {
    expect(servableMeanwhile(tokens, force, NOW)).toBe(servable)
  })

  it.each([
    // [case, cached, force, retry not before (millis), serves]
    ["backoff running, token valid", due, false, (NOW + 10) * 1000, true],
    ["backoff over", due, false, NOW * 1000, false],
    ["no backoff", due, false, 0, false],
    ["backoff running, token about to expire", dying, false, (NOW + 10) * 1000, false],
    ["backoff running, but forced", due, true, (NOW + 10) * 1000, false],
    ["nothing cached", undefined, false, (NOW + 10) * 1000, false]
  ] as const)("servesDuringBackoff: %s", (_, cached, force, retryNotBefore, serves) => {
    expect(servesDuringBackoff(cached, force, NOW, retryNotBefore)).toBe(serves)
  })

  it("servedDespiteBadAnswer: a proactive refresh keeps the rotated refresh token beside the valid access token", () => {
    const error = (rotated?: string) =>
      new InvalidResponseError({
        url: "https://auth.kimi.com/api/oauth/token",
        status: 200,
        excerpt: "",
        message: "unusable access token",
        reason: "invalid-token",
        rotatedRefreshToken: rotated === undefined ? undefined : Redacted.make(rotated)
      })
    const kept = servedDespiteBadAnswer(error("r2"), due, false, NOW)
    expect(kept && Redacted.value(kept.accessToken)).toBe("a1")
    expect(kept && Redacted.value(kept.refreshToken)).toBe("r2")
    expect(kept?.expiresAt).toBe(due.expiresAt)
    expect(servedDespiteBadAnswer(error(), due, false, NOW)).toBeUndefined()
    expect(servedDespiteBadAnswer(error("r2"), due, true, NOW)).toBeUndefined()
    expect(servedDespiteBadAnswer(error("r2"), dying, false, NOW)).toBeUndefined()
  })
})

describe("what a refused refresh means after a re-read", () => {
  const refused = tokenSet(1, NOW - 10)
  const interrupted = { pid: 4242, hostname: "box", startedAt: "2026-01-01T00:00:00.000Z" }

  it.each([
    // [case, re-read, interrupted marker, reading]
    ["the file still holds the refused token: revoked", tokenSet(1, NOW - 10), undefined, "Revoked"],
    ["the same, after an interrupted refresh", tokenSet(1, NOW - 10), interrupted, "Interrupted"],
    ["another tool rotated it, its token valid", tokenSet(2, NOW + 800), undefined, "RotatedElsewhere"],
    ["another tool rotated it, interrupted marker or not", tokenSet(2, NOW + 800), interrupted, "RotatedElsewhere"],
    ["another tool rotated it, its token expired", tokenSet(2, NOW - 1), undefined, "RefreshAgain"]
  ] as const)("readRefusal: %s", (_, again, marker, tag) => {
    const reading = readRefusal(refused, again, marker, NOW)
    expect(reading._tag).toBe(tag)
    if (reading._tag === "RotatedElsewhere" || reading._tag === "RefreshAgain") expect(reading.tokens).toBe(again)
    if (reading._tag === "Interrupted") expect(reading.interrupted).toBe(interrupted)
  })

  it("interruptedMessage names the process, host and start, and how to log in again", () => {
    const message = interruptedMessage(interrupted)
    expect(message).toContain("process 4242 on box, started 2026-01-01T00:00:00.000Z")
    expect(message).toContain("kimi-auth login")
  })

  it.each([
    ["a refusal for good", new NotLoggedInError({ reason: "refresh-rejected", message: "x" }), true],
    ["no tokens", new NotLoggedInError({ reason: "no-tokens", message: "x" }), false],
    ["a damaged file", new NotLoggedInError({ reason: "corrupt-file", message: "x" }), false],
    ["a disk error", new TokenStoreError({ path: "/x", message: "x" }), false]
  ] as const)("isRefusedForGood: %s", (_, error, noted) => {
    expect(isRefusedForGood(error)).toBe(noted)
  })
})

describe("which tokens to start from", () => {
  const pending: UnsavedTokens = { tokens: tokenSet(2, NOW + 800), spent: Redacted.make("r1") }
  const noTokens = Result.fail(new NotLoggedInError({ reason: "no-tokens", message: "no tokens" }))
  const spentOnDisk = Result.succeed(tokenSet(1, NOW + 100))
  const newLogin = Result.succeed(tokenSet(3, NOW + 800))
  const unreadable = Result.fail(new TokenStoreError({ path: "/x", message: "EACCES" }))
  const damaged = Result.fail(new NotLoggedInError({ reason: "corrupt-file", message: "damaged" }))
  const loggedOut = () => true
  const notLoggedOut = () => false

  it.each([
    // [case, file, logged out recorded, start]
    ["the file still holds the spent refresh token", spentOnDisk, notLoggedOut, "unsaved"],
    ["a new login wrote other tokens", newLogin, notLoggedOut, "file"],
    ["the file is gone by a logout of this login", noTokens, loggedOut, "logged-out"],
    ["the file is gone, no logout of this login", noTokens, notLoggedOut, "unsaved"],
    ["the file cannot be read", unreadable, loggedOut, "unsaved"],
    ["the file was damaged and moved aside", damaged, loggedOut, "unsaved"]
  ] as const)("startingTokens: %s", (_, fromDisk, isLoggedOut, start) => {
    expect(startingTokens(pending, fromDisk, isLoggedOut)).toBe(start)
  })

  it("startingTokens asks about the spent and the held secrets of this login", () => {
    let asked: Array<string> = []
    startingTokens(pending, noTokens, (secrets) => {
      asked = secrets.map((s) => Redacted.value(s))
      return false
    })
    expect(asked).toEqual(["r1", "r2", "a2"])
  })

  it("presenceCheckDue: at most every PRESENCE_CHECK_MILLIS", () => {
    expect(presenceCheckDue(10_000, 10_000 - PRESENCE_CHECK_MILLIS + 1)).toBe(false)
    expect(presenceCheckDue(10_000, 10_000 - PRESENCE_CHECK_MILLIS)).toBe(true)
    expect(presenceCheckDue(10_000, 0)).toBe(true)
  })

  const gone: Result.Result<TokenSet | undefined, TokenStoreError> = Result.succeed(undefined)
  const replaced: Result.Result<TokenSet | undefined, TokenStoreError> = Result.succeed(tokenSet(3, NOW + 800))
  const failedRead: Result.Result<TokenSet | undefined, TokenStoreError> = Result.fail(new TokenStoreError({ path: "/x", message: "EIO" }))
  it.each([
    // [case, store read, logged out recorded, logged out elsewhere]
    ["the file is gone and the logout recorded this login", gone, loggedOut, true],
    ["the file is gone, no logout of this login", gone, notLoggedOut, false],
    ["other tokens replaced it", replaced, loggedOut, false],
    ["the file cannot be read right now", failedRead, loggedOut, false]
  ] as const)("loggedOutElsewhere: %s", (_, read, isLoggedOut, out) => {
    expect(loggedOutElsewhere(read, fresh, isLoggedOut)).toBe(out)
  })
})

describe("when to retry, and after what delay", () => {
  it.each([
    // [case, attempt, attempts, elapsed, delay, budget, gives up]
    ["first fault, plenty of budget", 1, 5, 0, 500, 20_000, false],
    ["attempts used up", 5, 5, 1_000, 500, 20_000, true],
    ["the wait would overrun the budget", 2, 5, 19_000, 1_500, 20_000, true],
    ["the wait ends exactly at the budget", 2, 5, 19_000, 1_000, 20_000, false],
    ["a single attempt", 1, 1, 0, 500, 20_000, true]
  ] as const)("retryGivesUp: %s", (_, attempt, attempts, elapsed, delay, budget, gives) => {
    expect(retryGivesUp(attempt, attempts, elapsed, delay, budget)).toBe(gives)
  })

  it("retryNotBeforeFor: after the delay, but no later than 5 s before the served token expires", () => {
    expect(retryNotBeforeFor(fresh, NOW * 1000, 2_000)).toBe(NOW * 1000 + 2_000)
    expect(retryNotBeforeFor(tokenSet(1, NOW + 8), NOW * 1000, 10_000)).toBe((NOW + 3) * 1000)
  })

  it("backgroundSleepMillis: until due, or the backoff's end, within [1 s, the check interval]", () => {
    const interval = 60_000
    const at = NOW * 1000
    expect(backgroundSleepMillis(undefined, WINDOW, 0, at, interval)).toBe(interval)
    // Due 450 s before expiry: 30 s from now.
    expect(backgroundSleepMillis(tokenSet(1, NOW + 480), WINDOW, 0, at, interval)).toBe(30_000)
    // A backoff ending later than that wins.
    expect(backgroundSleepMillis(tokenSet(1, NOW + 480), WINDOW, at + 40_000, at, interval)).toBe(40_000)
    expect(backgroundSleepMillis(fresh, WINDOW, 0, at, interval)).toBe(interval)
    expect(backgroundSleepMillis(due, WINDOW, 0, at, interval)).toBe(1000)
  })

  it("clockJumped: a wake later than the sleep plus a check interval", () => {
    expect(clockJumped(100_000, 0, 30_000, 60_000)).toBe(true)
    expect(clockJumped(90_000, 0, 30_000, 60_000)).toBe(false)
  })
})

describe("a refresh whose outcome is unknown is never replayed", () => {
  it.each([
    // [case, error, retried]
    ["a refused connection", { _tag: "NetworkError", reason: "TransportError (ECONNREFUSED)" }, true],
    ["a 503", { _tag: "ServerError" }, true],
    ["no answer within the bound", { _tag: "NetworkError", reason: "timeout" }, false],
    ["the connection broke after sending", { _tag: "NetworkError", reason: "TransportError (ECONNRESET)" }, false],
    ["an unknown outcome", { _tag: "NetworkError", reason: "outcome-unknown" }, false],
    ["a refusal", { _tag: "InvalidGrantError" }, false]
  ] as const)("retriesAfter: %s", (_, error, retried) => {
    expect(retriesAfter(error)).toBe(retried)
  })

  it("whatHappened keeps the first sentence, the URL's dots included", () => {
    expect(whatHappened("The Kimi OAuth server at http://127.0.0.1:8080/api/oauth/token did not answer within 30 s. Check your connection; it will be retried."))
      .toBe("The Kimi OAuth server at http://127.0.0.1:8080/api/oauth/token did not answer within 30 s.")
    expect(whatHappened("no sentence end")).toBe("no sentence end")
  })
})

describe("is another process's refresh on the wire now", () => {
  const self = { pid: 10, hostname: "here" }
  const at = (millis: number) => new Date(millis).toISOString()
  const T = 1_000_000_000
  it.each([
    // [case, marker, on the wire]
    ["no marker", undefined, false],
    ["our own marker", { pid: 10, hostname: "here", startedAt: at(T - 1000) }, false],
    ["another process, a second ago", { pid: 11, hostname: "here", startedAt: at(T - 1000) }, true],
    ["the same pid on another host", { pid: 10, hostname: "there", startedAt: at(T - 1000) }, true],
    ["older than the answer bound: a leftover", { pid: 11, hostname: "here", startedAt: at(T - 300_000) }, false],
    ["a little in the future (clocks disagree)", { pid: 11, hostname: "here", startedAt: at(T + 30_000) }, true],
    ["far in the future", { pid: 11, hostname: "here", startedAt: at(T + 120_000) }, false],
    ["an unreadable time", { pid: 11, hostname: "here", startedAt: "yesterday" }, false]
  ] as const)("onTheWireElsewhere: %s", (_, marker, onTheWire) => {
    expect(onTheWireElsewhere(marker, T, 300_000, self)).toBe(onTheWire)
  })
})
