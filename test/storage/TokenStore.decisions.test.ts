/**
 * The decisions of the file token store (`src/storage/TokenStoreDecisions.ts`), each
 * tested directly: what a token file found on disk is, whether a file moved
 * aside stays there or is put back, what the "refresh in flight" marker says,
 * which temporary files are swept, when a failed rename is Windows holding
 * the file open, what a logout records, and what a permission check asks for.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as PlatformError from "effect/PlatformError"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { decodeTokenFile, encodeTokenFile, TokenFileDecodeError, TokenSet } from "../../src/tokens/TokenSet.js"
import {
  asideCandidate,
  asideVerdict,
  isHeldOpen,
  isStaleTemp,
  isTempFileName,
  judgeTokenFile,
  markerText,
  movedText,
  permissionStep,
  readMarkerText,
  secretsToForget,
  TEMP_MAX_AGE_MILLIS,
  tempFileName,
  UNKNOWN_REFRESH
} from "../../src/storage/TokenStoreDecisions.js"

const tokens = new TokenSet({
  accessToken: Redacted.make("at-one"),
  refreshToken: Redacted.make("rt-one"),
  tokenType: "Bearer",
  expiresIn: 900,
  scope: "kimi-code",
  expiresAt: 1_750_000_000
})
const loginText = encodeTokenFile(tokens, "00000000-0000-4000-8000-0000000000aa")
const decode = (text: string) => Effect.runSync(Effect.result(decodeTokenFile(text)))

describe("what a token file found on disk is", () => {
  it("a file that decodes is a login, with its tokens", () => {
    const reading = judgeTokenFile({ _tag: "Text", text: loginText, decoded: decode(loginText) })
    assert.strictEqual(reading._tag, "Login")
    if (reading._tag === "Login") assert.strictEqual(Redacted.value(reading.tokens.refreshToken), "rt-one")
  })

  it("no file is no login", () => {
    assert.deepStrictEqual(judgeTokenFile({ _tag: "Missing" }), { _tag: "Empty" })
  })

  it("something that is not a regular file is foreign: refused, never moved", () => {
    assert.deepStrictEqual(judgeTokenFile({ _tag: "NotAFile", kind: "a named pipe (FIFO)" }), {
      _tag: "Foreign",
      kind: "a named pipe (FIFO)"
    })
  })

  it("text that does not decode is damaged, with the decoder's reason and the text read", () => {
    const reading = judgeTokenFile({
      _tag: "Text",
      text: "{not json",
      decoded: Result.fail(new TokenFileDecodeError({ reason: "it is not JSON" }))
    })
    assert.deepStrictEqual(reading, { _tag: "Damaged", text: "{not json", reason: "it is not JSON" })
    const real = judgeTokenFile({ _tag: "Text", text: "", decoded: decode("") })
    assert.strictEqual(real._tag, "Damaged")
  })

  it("a file over the read cap is damaged by its size alone: no text, the sizes in the reason", () => {
    const reading = judgeTokenFile({ _tag: "TooLarge", bytes: 1024 * 1024 * 1024, limitBytes: 64 * 1024 })
    assert.deepStrictEqual(reading, {
      _tag: "Damaged",
      text: "",
      reason: "it is 1.0 GiB, larger than any token file (64 KiB)"
    })
  })
})

describe("a damaged file moved aside: kept aside or put back", () => {
  it("the moved text is what the aside copy holds, or the judged text when it cannot be read back", () => {
    assert.strictEqual(movedText("bad", { _tag: "Text", text: "other" }), "other")
    assert.strictEqual(movedText("bad", undefined), "bad")
    assert.strictEqual(movedText("bad", { _tag: "Missing" }), "bad")
    assert.strictEqual(movedText("", { _tag: "TooLarge", bytes: 1e9, limitBytes: 65536 }), "")
  })

  it("the very file judged damaged stays aside", () => {
    assert.strictEqual(asideVerdict("bad", "bad", false), "KeepAside")
  })

  it("a login a writer put there meanwhile is put back", () => {
    assert.strictEqual(asideVerdict("bad", loginText, true), "PutBack")
  })

  it("a different file that is damaged too stays aside", () => {
    assert.strictEqual(asideVerdict("bad", "worse", false), "KeepAside")
  })

  it("the aside name sits beside the file, stamped with the time, with no ':' (Windows)", () => {
    const name = asideCandidate("/home/u/.kimi-auth/oauth.json", new Date("2026-12-02T19:05:06.789Z"))
    assert.strictEqual(name, "/home/u/.kimi-auth/oauth.json.corrupt-2026-12-02T19-05-06.789Z")
    assert.notInclude(name.slice(2), ":")
  })
})

describe("the refresh-in-flight marker", () => {
  it("no marker: no interrupted refresh", () => {
    assert.strictEqual(readMarkerText({ _tag: "Missing" }), undefined)
  })

  it("a marker written by this store reads back as who ran the refresh and when", () => {
    const text = markerText(4242, "box", new Date("2026-12-02T19:00:00.000Z"))
    assert.isTrue(text.endsWith("\n"))
    assert.deepStrictEqual(readMarkerText({ _tag: "Text", text }), {
      pid: 4242,
      hostname: "box",
      startedAt: "2026-12-02T19:00:00.000Z"
    })
  })

  it("a marker that cannot be read as one is still an interrupted refresh, of an unknown owner", () => {
    assert.deepStrictEqual(readMarkerText({ _tag: "Text", text: "garbage" }), UNKNOWN_REFRESH)
    assert.deepStrictEqual(readMarkerText({ _tag: "TooLarge", bytes: 10_000, limitBytes: 4096 }), UNKNOWN_REFRESH)
    assert.deepStrictEqual(readMarkerText({ _tag: "NotAFile", kind: "a folder" }), UNKNOWN_REFRESH)
    assert.deepStrictEqual(UNKNOWN_REFRESH, { pid: 0, hostname: "?", startedAt: "?" })
  })

  it("fields of the wrong type read as unknown, the others kept", () => {
    assert.deepStrictEqual(readMarkerText({ _tag: "Text", text: JSON.stringify({ pid: "7", hostname: "box" }) }), {
      pid: 0,
      hostname: "box",
      startedAt: "?"
    })
  })
})

describe("temporary files of writers", () => {
  it("are named beside the token file, hidden, with the pid and a random part", () => {
    const name = tempFileName("oauth.json", 99, "a1b2c3")
    assert.strictEqual(name, ".oauth.json.99.a1b2c3.tmp")
    assert.isTrue(isTempFileName(name, "oauth.json"))
  })

  it("only the token file's own temporary files are candidates for the sweep", () => {
    assert.isFalse(isTempFileName("oauth.json", "oauth.json"))
    assert.isFalse(isTempFileName(".oauth.json.lock", "oauth.json"))
    assert.isFalse(isTempFileName(".device_id.1.ab.tmp", "oauth.json"))
    assert.isFalse(isTempFileName("oauth.json.corrupt-x.tmp", "oauth.json"))
  })

  it("are swept only once older than ten minutes (a live writer's file is young)", () => {
    const now = Date.parse("2026-12-02T19:00:00Z")
    assert.strictEqual(TEMP_MAX_AGE_MILLIS, 10 * 60 * 1000)
    assert.isFalse(isStaleTemp(new Date(now - 1000), now))
    assert.isFalse(isStaleTemp(new Date(now - TEMP_MAX_AGE_MILLIS), now))
    assert.isTrue(isStaleTemp(new Date(now - TEMP_MAX_AGE_MILLIS - 1), now))
  })
})

describe("a failed rename on Windows", () => {
  const failure = (tag: "PermissionDenied" | "Busy" | "NotFound" | "Unknown") =>
    PlatformError.systemError({ _tag: tag, module: "FileSystem", method: "rename", syscall: "rename" })

  it("is the file held open by another process when access is denied or the file is busy", () => {
    assert.isTrue(isHeldOpen(failure("PermissionDenied")))
    assert.isTrue(isHeldOpen(failure("Busy")))
  })

  it("is not when the file is gone or the error is another", () => {
    assert.isFalse(isHeldOpen(failure("NotFound")))
    assert.isFalse(isHeldOpen(failure("Unknown")))
  })
})

describe("the logout marker", () => {
  it("records both tokens of the login being removed", () => {
    assert.deepStrictEqual(secretsToForget(tokens), ["rt-one", "at-one"])
  })

  it("records nothing when the file held no login", () => {
    assert.deepStrictEqual(secretsToForget(undefined), [])
  })
})

describe("what a permission check asks of the store", () => {
  it("a refusal fails with its message", () => {
    assert.deepStrictEqual(permissionStep({ _tag: "Refused", message: "The storage folder is shared." }), {
      _tag: "Refuse",
      message: "The storage folder is shared."
    })
  })

  it("a repair is logged as a warning naming the package", () => {
    assert.deepStrictEqual(permissionStep({ _tag: "Ok", repaired: "set oauth.json to 0600" }), {
      _tag: "Warn",
      message: "opencode-kimi-auth: set oauth.json to 0600"
    })
  })

  it("a folder or file already right asks for nothing", () => {
    assert.deepStrictEqual(permissionStep({ _tag: "Ok" }), { _tag: "Proceed" })
  })
})
