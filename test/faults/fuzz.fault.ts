/**
 * Property-based fuzzing (fast-check) of every OAuth response decoder, through
 * the OAuthClient service with a scripted HttpClient, and of the token file
 * reader: 10,000+ cases each. Only typed errors (never a defect, a throw or a
 * hang), a valid shape on success, and no secret in any failure message.
 *
 * Secrets are canaries: the refresh token and device code the client sends,
 * and the token values a response carries in its token fields (snake_case or
 * camelCase). Responses embed them in token fields, in `error_description`,
 * in HTML pages and in malformed JSON, raw, URL-encoded, base64 / base64url
 * and JSON-escaped. Every error is deep-walked (`util.inspect` at any depth,
 * `JSON.stringify` of it and of its cause, every own property) and searched
 * for each secret in each of those encodings: one hit fails the run. A
 * server that echoes into free text a secret the client never sent nor
 * received in a token field (say, an unrelated string in an error page)
 * cannot be recognised; that is not claimed.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cause from "effect/Cause"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import { KimiAuthConfig } from "../../src/config/KimiAuthConfig.js"
import { OAuthClient, type OAuthClientShape } from "../../src/oauth/OAuthClient.js"
import { decodeTokenFile, TokenSet } from "../../src/tokens/TokenSet.js"
import { makeScripted, type Step } from "../support/scripted.js"
import { encodingsFound, reachableText } from "../support/secretReach.js"
import { canary, record } from "./support.js"

const RUNS = Number(process.env["KIMI_FUZZ_RUNS"] ?? 10_000)
const HANG_MS = 2_000

const SENT_REFRESH = canary("sentrefresh")
const SENT_DEVICE = canary("sentdevice")
const BODY_ACCESS = canary("bodyaccess")
const BODY_REFRESH = canary("bodyrefresh")
const FILE_ACCESS = canary("fileaccess")
const FILE_REFRESH = canary("filerefresh")
/** Token values in the token fields of a JSON response or file: must never reach a message. */
const FIELD_SECRETS = [BODY_ACCESS, BODY_REFRESH, FILE_ACCESS, FILE_REFRESH]
/** Secrets the client sent, echoed anywhere (free text, error codes, HTML). */
const SENT_SECRETS = [SENT_REFRESH, SENT_DEVICE]
const SECRETS = [...SENT_SECRETS, ...FIELD_SECRETS]
/**
 * An echo of a secret the client sent, in a message or in an error's fields,
 * fails the property (the OAuth client scrubs sent secrets from error bodies).
 * KIMI_FUZZ_STRICT=0 only counts them, for comparison with older builds.
 */
const STRICT = process.env["KIMI_FUZZ_STRICT"] !== "0"

const TYPED = new Set([
  "NetworkError",
  "ServerError",
  "InvalidResponseError",
  "OAuthError",
  "AccessDeniedError",
  "DeviceCodeExpiredError",
  "InvalidGrantError"
])

let next: Step = { status: 200, body: "" }
const scripted = makeScripted(() => next)
const layer = OAuthClient.layer.pipe(
  Layer.provideMerge(DeviceIdentity.layerFixed("00000000-0000-4000-8000-00000000f022")),
  Layer.provideMerge(KimiAuthConfig.layer({ oauthHost: "http://127.0.0.1:9", storageDir: "/nonexistent-kimi-fuzz" })),
  Layer.provideMerge(scripted.layer)
)
const client: OAuthClientShape = await Effect.runPromise(
  Effect.gen(function*() {
    return yield* OAuthClient
  }).pipe(Effect.provide(layer))
)

// ---------------------------------------------------------------------------
// Arbitraries: statuses, JSON shapes around the real fields, secrets planted.

const secretish = fc.constantFrom(...SENT_SECRETS)
const stringish = fc.oneof(
  fc.string(),
  secretish,
  fc.constantFrom("", " ", "Bearer", "null", "authorization_pending", "slow_down", "access_denied", "expired_token", "invalid_grant", "invalid_client"),
  secretish.map((s) => `token ${s} is invalid`),
  secretish.map((s) => `refresh_token=${s}&x=1`),
  secretish.map((s) => `{"refresh_token": "${s}"}`),
  secretish.map((s) => `Bearer ${s}`),
  secretish.map((s) => `refresh_token=${encodeURIComponent(s + "/+")}`),
  secretish.map((s) => `echo ${Buffer.from(`grant=${s}`).toString("base64")}`),
  secretish.map((s) => Buffer.from(s).toString("base64url")),
  secretish.map((s) => JSON.stringify({ got: `${s}/"` }).replace(/\//g, "\\/"))
)
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: stringish },
  { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1, 5, 900, 1e12, Number.MAX_SAFE_INTEGER)) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, undefined) },
  { weight: 1, arbitrary: fc.array(stringish, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 5 }), stringish, { maxKeys: 3 }) }
)
const fields = [
  "access_token", "refresh_token", "token_type", "expires_in", "scope", "device_code", "user_code", "verification_uri",
  "verification_uri_complete", "interval", "error", "error_description", "error_uri"
] as const
/** A received token: valid, or poisoned (CR/LF, spaces, quotes, too long) around the canary. */
const bodyToken = (c: string) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(c) },
    { weight: 1, arbitrary: fc.constantFrom(`${c}\r\nX-Injected: yes`, `${c} x`, `${c}"`, `${c}${"a".repeat(9000)}`, `\u001b[31m${c}`) }
  )
const lifetime = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 100_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 1e308, Number.MAX_VALUE, 2 * 366 * 86400, 0.0001, "900", "1e400") }
)
const validToken = fc.record({
  access_token: bodyToken(BODY_ACCESS),
  refresh_token: fc.option(bodyToken(BODY_REFRESH), { nil: undefined }),
  token_type: fc.option(fc.constantFrom("Bearer", "Bearer\r\nX: y"), { nil: undefined }),
  expires_in: fc.option(lifetime, { nil: undefined }),
  scope: fc.option(fc.constant("kimi-code"), { nil: undefined })
}, { requiredKeys: ["access_token"] })
/** The same tokens under the camelCase keys some servers use (not OAuth: never decoded, never shown). */
const camelToken = fc.record({
  accessToken: fc.constant(BODY_ACCESS),
  refreshToken: fc.constant(BODY_REFRESH),
  expiresIn: lifetime
})
const validDevice = fc.record({
  device_code: fc.constant(SENT_DEVICE),
  user_code: fc.constant("ABCD-EFGH"),
  verification_uri: fc.constantFrom("https://auth.kimi.com/device", "http://127.0.0.1/device", "javascript:alert(1)", ""),
  verification_uri_complete: fc.option(fc.constantFrom("https://auth.kimi.com/device?c=1", "nope"), { nil: undefined }),
  expires_in: fc.oneof(fc.integer({ min: 1, max: 900 }), value),
  interval: fc.option(fc.oneof(fc.integer({ min: 1, max: 10 }), value), { nil: undefined })
}, { requiredKeys: ["device_code", "user_code", "verification_uri", "expires_in"] })
const errorBody = fc.record({
  error: stringish,
  error_description: fc.option(stringish, { nil: undefined }),
  error_uri: fc.option(value, { nil: undefined })
}, { requiredKeys: ["error"] })
const anyObject = fc.dictionary(fc.constantFrom(...fields), value, { maxKeys: 8 })
// A valid-looking object with one field mangled.
const mangled = fc.tuple(fc.oneof(validToken, validDevice, errorBody), fc.constantFrom(...fields), value).map(([o, k, v]) => ({ ...o, [k]: v }))
const jsonBody = fc.oneof(validToken, camelToken, validDevice, errorBody, anyObject, mangled, value, fc.array(value, { maxLength: 3 })).map((v) => JSON.stringify(v) ?? "")
const rawBody = fc.oneof(
  { weight: 6, arbitrary: jsonBody },
  // Truncated or broken JSON that still carries secrets.
  { weight: 2, arbitrary: fc.tuple(jsonBody, fc.nat()).map(([s, n]) => s.slice(0, n % (s.length + 1))) },
  { weight: 1, arbitrary: secretish.map((s) => `<html><body>bad gateway ${s}</body></html>`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) }
)
// 205 and 304 are null-body statuses a `Response` with a body cannot have (the scripted client handles 204).
const status = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(200, 201, 204, 400, 401, 403, 429, 500, 502, 503) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }).filter((n) => n !== 205 && n !== 304) }
)
const headers = fc.record({
  "content-type": fc.constantFrom("application/json", "text/html", "text/plain", ""),
  "retry-after": fc.option(fc.oneof(fc.constantFrom("1", "-1", "abc", "Wed, 21 Oct 2015 07:28:00 GMT", "1e309", "999999999")), { nil: undefined })
}, { requiredKeys: ["content-type"] })
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 20, arbitrary: fc.record({ status, body: rawBody, headers }).map((s) => ({ ...s, headers: Object.fromEntries(Object.entries(s.headers).filter(([, v]) => v !== undefined)) as Record<string, string> })) },
  { weight: 1, arbitrary: fc.constant<Step>({ network: true }) }
)

// ---------------------------------------------------------------------------

interface Outcome {
  readonly kind: "success" | "typed" | "defect" | "hang"
  readonly detail: string
  readonly value?: unknown
  readonly message?: string
  /** The error's other fields, serialised (status, excerpt, error_description…). */
  readonly fields?: string
}

const runCall = async <A>(effect: Effect.Effect<A, { readonly _tag: string; readonly message: string }>): Promise<Outcome> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hang = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ kind: "hang", detail: "no answer within 2 s" }), HANG_MS)
  })
  const done = Effect.runPromiseExit(effect).then((exit): Outcome => {
    if (Exit.isSuccess(exit)) return { kind: "success", detail: "", value: exit.value }
    const e = Cause.findErrorOption(exit.cause)
    if (e._tag === "Some" && TYPED.has(e.value._tag)) {
      // Everything a user could see: the message and the error as printed or serialised; `fields` is everything
      // reachable from the error object (util.inspect at any depth, JSON of it and of its cause, every property).
      return { kind: "typed", detail: e.value._tag, message: `${e.value.message}\n${String(e.value)}`, fields: reachableText(e.value) }
    }
    return { kind: "defect", detail: Cause.pretty(exit.cause) }
  }, (thrown: unknown): Outcome => ({ kind: "defect", detail: `threw: ${String(thrown)}` }))
  const out = await Promise.race([done, hang])
  clearTimeout(timer)
  return out
}

const safeJson = (v: unknown) => {
  try {
    return JSON.stringify(v)
  } catch {
    return ""
  }
}

/** The secrets found in `text` in any encoding (raw, URL-encoded, JSON-escaped, base64 / base64url). */
const leaksOf = (text: string, secrets: ReadonlyArray<string>) => secrets.filter((s) => encodingsFound(text, s).length > 0)
const leaks = (text: string) => leaksOf(text, SECRETS)
const fieldLeaksIn = (text: string) => leaksOf(text, FIELD_SECRETS)

type Call = "requestDeviceAuthorization" | "pollDeviceToken" | "refreshToken"
/** The secrets a call puts on the wire. */
const sentBy = (call: Call): ReadonlyArray<string> =>
  call === "pollDeviceToken" ? [SENT_DEVICE] : call === "refreshToken" ? [SENT_REFRESH] : []

const callOf = (call: Call): Effect.Effect<unknown, { readonly _tag: string; readonly message: string }> =>
  call === "requestDeviceAuthorization"
    ? client.requestDeviceAuthorization
    : call === "pollDeviceToken"
    ? client.pollDeviceToken(Redacted.make(SENT_DEVICE))
    : client.refreshToken(Redacted.make(SENT_REFRESH))

const BEARER = /^[A-Za-z0-9\-._~+/]+=*$/
const isTokenSet = (t: unknown) =>
  t instanceof TokenSet && BEARER.test(Redacted.value(t.accessToken)) && BEARER.test(Redacted.value(t.refreshToken)) &&
  Redacted.value(t.accessToken).length <= 8192 && Number.isFinite(t.expiresAt) && t.expiresIn > 0 && t.expiresIn <= 366 * 86400 &&
  /^[\x20-\x7e]*$/.test(t.tokenType + t.scope)

const validShape = (call: Call, v: unknown): boolean => {
  if (call === "refreshToken") return isTokenSet(v)
  if (call === "pollDeviceToken") {
    const o = v as { _tag: string; tokens?: unknown }
    return o._tag === "Pending" || o._tag === "SlowDown" || (o._tag === "Authorized" && isTokenSet(o.tokens))
  }
  const d = v as { userCode: unknown; verificationUri: unknown; expiresIn: unknown; interval: unknown; deviceCode: unknown }
  return typeof d.userCode === "string" && /^[\x20-\x7e]+$/.test(d.userCode) && typeof d.verificationUri === "string" &&
    /^https?:[\x21-\x7e]+$/.test(d.verificationUri) && typeof d.expiresIn === "number" && d.expiresIn > 0 && d.expiresIn <= 3600 &&
    typeof d.interval === "number" && d.interval >= 1 && d.interval <= 60 && Redacted.isRedacted(d.deviceCode)
}

const fuzzCall = (call: Call) =>
  it(`${call}: ${RUNS} responses, only typed errors, valid shapes, no secret in a message`, async () => {
    const tally: Record<string, number> = {}
    const leaked: Array<string> = []
    const fieldLeaks: Record<string, number> = {}
    const echoed: Record<string, number> = {}
    await fc.assert(
      fc.asyncProperty(step, async (s) => {
        next = s
        const o = await runCall(callOf(call))
        tally[o.kind === "typed" ? o.detail : o.kind] = (tally[o.kind === "typed" ? o.detail : o.kind] ?? 0) + 1
        if (o.kind === "defect" || o.kind === "hang") return false
        if (o.kind === "success") return validShape(call, o.value)
        // Into the scanned log, where the secret scan checks every message a second time; only canaries this call
        // never sent (echoed in free text: unrecognisable, not claimed) are masked.
        const unsent = SENT_SECRETS.filter((x) => !sentBy(call).includes(x))
        record("fuzz-messages", unsent.reduce((t, x) => t.split(x).join("<unsent-canary>"), o.message ?? ""))
        const fl = leaks(o.fields ?? "")
        if (fl.length > 0) {
          const k = `${o.detail}:${fl.map((x) => x.slice(10, 16)).join("+")}`
          fieldLeaks[k] = (fieldLeaks[k] ?? 0) + 1
        }
        const message = o.message ?? ""
        const hard = fieldLeaksIn(message + (o.fields ?? ""))
        // Only what this call sent is a secret of this call (a device authorization request sends none).
        const sent = sentBy(call)
        const echo = leaksOf(message + (o.fields ?? ""), sent)
        if (echo.length > 0) echoed[o.detail] = (echoed[o.detail] ?? 0) + 1
        // A secret this call never sent, echoed into free text, cannot be recognised (counted, not failed).
        if (hard.length > 0 || (STRICT && echo.length > 0)) {
          leaked.push(`${o.detail} for HTTP ${"status" in s ? s.status : "-"}`)
          return false
        }
        return true
      }),
      { numRuns: RUNS, seed: Number(process.env["KIMI_FUZZ_SEED"] ?? 20261127), endOnFailure: true }
    ).catch((e: unknown) => {
      // fast-check's report holds the counterexample, secrets included: keep it out of the output.
      const text = String((e as Error).message ?? e)
      const redacted = SECRETS.reduce((t, sec) => t.split(sec).join("<canary>"), text)
      throw new Error(`${redacted.slice(0, 4000)}\nleaks: ${leaked.join("; ")}`)
    })
    console.log(
      `fault fuzz ${call}: ${RUNS} cases ${JSON.stringify(tally)}; secrets reachable from an error in any encoding ` +
        `(raw, URL-encoded, JSON-escaped, base64/base64url; message, util.inspect, JSON, every property): ` +
        `sent by the call ${JSON.stringify(echoed)}; token-field values 0; canaries the call never sent, echoed in free text ` +
        `(unrecognisable, not claimed) ${JSON.stringify(fieldLeaks)}`
    )
  }, 600_000)

describe("OAuth response decoders under fuzzing (fast-check)", () => {
  fuzzCall("requestDeviceAuthorization")
  fuzzCall("pollDeviceToken")
  fuzzCall("refreshToken")
})

describe("token file reader under fuzzing (fast-check)", () => {
  const fileField = value
  const fileObject = fc.oneof(
    fc.record({
      version: fc.option(fileField, { nil: undefined }),
      access_token: fc.oneof(fc.constant(FILE_ACCESS), value),
      refresh_token: fc.oneof(fc.constant(FILE_REFRESH), value),
      token_type: fc.option(fileField, { nil: undefined }),
      expires_in: fc.option(fileField, { nil: undefined }),
      scope: fc.option(fileField, { nil: undefined }),
      expires_at: fc.oneof(fc.integer(), fc.double(), value),
      device_id: fc.option(fileField, { nil: undefined })
    }, { requiredKeys: [] }),
    fc.dictionary(fc.string({ maxLength: 12 }), fileField, { maxKeys: 6 }),
    value
  )
  const fileText = fc.oneof(
    { weight: 5, arbitrary: fileObject.map((o) => JSON.stringify(o, null, 2) ?? "") },
    { weight: 2, arbitrary: fc.tuple(fileObject, fc.nat()).map(([o, n]) => (JSON.stringify(o) ?? "").slice(0, n % 200)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constantFrom("", " \n", "\u0000\u0000", "null", "[]", "{}", "{\"access_token\":") }
  )

  it(`decodeTokenFile: ${RUNS} files, only TokenFileDecodeError, valid token sets, no secret in a reason`, async () => {
    const tally: Record<string, number> = {}
    await fc.assert(
      fc.asyncProperty(fileText, async (text) => {
        const o = await runCall(decodeTokenFile(text).pipe(Effect.mapError((e) => ({ _tag: "InvalidResponseError", message: `${e._tag}: ${e.reason}` }))))
        tally[o.kind] = (tally[o.kind] ?? 0) + 1
        if (o.kind === "defect" || o.kind === "hang") return false
        if (o.kind === "success") {
          const f = o.value as { tokens: TokenSet }
          const access = Redacted.value(f.tokens.accessToken)
          const refresh = Redacted.value(f.tokens.refreshToken)
          const shown = String(f.tokens) + safeJson(f.tokens) + String(f.tokens.accessToken)
          // The two tokens stay redacted in memory: printing or serialising the set never shows them.
          // FILE_ACCESS / FILE_REFRESH only ever appear in the two token fields.
          return access !== "" && refresh !== "" && Number.isFinite(f.tokens.expiresAt) && fieldLeaksIn(shown).length === 0
        }
        record("fuzz-messages", o.message ?? "")
        return fieldLeaksIn(o.message ?? "").length === 0
      }),
      { numRuns: RUNS, seed: Number(process.env["KIMI_FUZZ_SEED"] ?? 20261127), endOnFailure: true }
    ).catch((e: unknown) => {
      const text = String((e as Error).message ?? e)
      throw new Error(SECRETS.reduce((t, sec) => t.split(sec).join("<canary>"), text).slice(0, 4000))
    })
    console.log(`fault fuzz decodeTokenFile: ${JSON.stringify(tally)}`)
  }, 180_000)
})
