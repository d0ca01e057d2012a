/**
 * The CLI's start-up: what `kimi-auth` loads for each command, and the
 * effect-free fast path of `kimi-auth token` (`src/cli/FastToken.ts`).
 *
 * - In process, with real files: the fast path answers only when the full
 *   command would print the same token without a request, a write or a
 *   message, and never returns a token that is not a valid bearer token.
 * - As child processes of the built CLI (`dist/cli/main.js`, the shipped
 *   bundle; `npm run build` first), with a module-load trace: `token` with a
 *   fresh token loads no Effect code, `--help` and `status` never load the
 *   emulator or an HTTP server, and a bad token is never printed.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { spawnSync } from "node:child_process"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { DEFAULT_REFRESH_WINDOW_SECONDS, fastToken } from "../../src/cli/FastToken.js"
import { resolve } from "../../src/config/KimiAuthConfig.js"
import { resolveSettings } from "../../src/light/ResolveSettings.js"
import { cliPath, isolatedEnv, makeTemp, repoRoot, rmTemp } from "../support/cli.js"
import { seedText } from "../support/tokens.js"

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"
const now = () => Date.now()

let home: string
let storage: string
let env: NodeJS.ProcessEnv

const writeTokens = (fields: Record<string, unknown> = {}, mode = 0o600) => {
  const seconds = Math.floor(now() / 1000)
  const text = seedText({ access: TOKEN, refresh: "refresh-1", expiresAt: seconds + 900, extra: { version: 1, ...fields } })
  fs.writeFileSync(path.join(storage, "oauth.json"), text, { mode })
  fs.chmodSync(path.join(storage, "oauth.json"), mode)
}

beforeEach(() => {
  home = makeTemp("kimi-auth-fast-")
  storage = path.join(home, ".opencode-kimi-auth")
  fs.mkdirSync(storage, { mode: 0o700 })
  fs.writeFileSync(path.join(storage, "device_id"), "11111111-2222-4333-8444-555555555555", { mode: 0o600 })
  env = isolatedEnv(home)
})
afterEach(() => rmTemp(home))

describe("fastToken (in process, real files)", () => {
  it("returns the stored token when it is valid and not due", () => {
    writeTokens()
    expect(fastToken(env, now())).toBe(TOKEN)
  })

  it("uses the CLI's refresh window, the default of KimiAuthConfig", async () => {
    const settings = await Effect.runPromise(resolve())
    expect(DEFAULT_REFRESH_WINDOW_SECONDS).toBe(Duration.toSeconds(settings.refreshWindow))
  })

  it("leaves a due or expired token to the full command (which refreshes it)", () => {
    const seconds = Math.floor(now() / 1000)
    // Lifetime 900 s: due below max(300, 450) s left.
    writeTokens({ expires_at: seconds + 449 })
    expect(fastToken(env, now())).toBeUndefined()
    writeTokens({ expires_at: seconds + 452 })
    expect(fastToken(env, now())).toBe(TOKEN)
    writeTokens({ expires_at: seconds - 10 })
    expect(fastToken(env, now())).toBeUndefined()
    // An absurd lifetime or expiry is never trusted.
    writeTokens({ expires_at: 1e308 })
    expect(fastToken(env, now())).toBeUndefined()
  })

  it("never returns a token that is not a valid bearer token", () => {
    for (const bad of ["", "two words", "abc\r\nX-Injected: 1", "x".repeat(8193), "tok\u00e9n"]) {
      writeTokens({ access_token: bad })
      expect(fastToken(env, now())).toBeUndefined()
    }
  })

  it("leaves to the full command: loose modes, links, a missing device id, a missing or torn file, DEBUG, a bad setting", () => {
    writeTokens({}, 0o644)
    expect(fastToken(env, now())).toBeUndefined()
    writeTokens()
    fs.chmodSync(storage, 0o755)
    expect(fastToken(env, now())).toBeUndefined()
    fs.chmodSync(storage, 0o700)
    expect(fastToken(env, now())).toBe(TOKEN)

    expect(fastToken({ ...env, DEBUG: "opencode-kimi-auth" }, now())).toBeUndefined()
    expect(fastToken({ ...env, OPENCODE_KIMI_AUTH_DIR: "relative/dir" }, now())).toBeUndefined()
    expect(fastToken({ ...env, KIMI_OAUTH_HOST: "http://example.com" }, now())).toBeUndefined()

    fs.rmSync(path.join(storage, "device_id"))
    expect(fastToken(env, now())).toBeUndefined()
    fs.writeFileSync(path.join(storage, "device_id"), "11111111-2222-4333-8444-555555555555", { mode: 0o600 })

    // A token file that is a link (the store refuses it) is never read here either.
    const real = path.join(home, "elsewhere.json")
    fs.renameSync(path.join(storage, "oauth.json"), real)
    fs.symlinkSync(real, path.join(storage, "oauth.json"))
    expect(fastToken(env, now())).toBeUndefined()
    fs.rmSync(path.join(storage, "oauth.json"))
    fs.renameSync(real, path.join(storage, "oauth.json"))
    expect(fastToken(env, now())).toBe(TOKEN)
    // A symlinked storage folder is left to the store too.
    fs.renameSync(storage, `${storage}-real`)
    fs.symlinkSync(`${storage}-real`, storage)
    expect(fastToken(env, now())).toBeUndefined()
    fs.rmSync(storage)
    fs.renameSync(`${storage}-real`, storage)

    fs.writeFileSync(path.join(storage, "oauth.json"), '{"access_token":', { mode: 0o600 })
    expect(fastToken(env, now())).toBeUndefined()
    fs.rmSync(path.join(storage, "oauth.json"))
    expect(fastToken(env, now())).toBeUndefined()
  })
})

/** Runs the built CLI with a module-load trace; returns its output and the modules it loaded. */
const traced = (args: ReadonlyArray<string>, extra: NodeJS.ProcessEnv = {}) => {
  const trace = path.join(home, `trace-${Math.random().toString(16).slice(2)}`)
  const res = spawnSync(
    process.execPath,
    ["--import", path.join(repoRoot, "test", "pack", "fixtures", "trace-loads.mjs"), cliPath, ...args],
    { env: { ...env, ...extra, KIMI_TRACE_LOADS: trace }, encoding: "utf8", timeout: 60_000 }
  )
  const loaded = fs.existsSync(trace) ? fs.readFileSync(trace, "utf8").trim().split("\n") : []
  const files = loaded.filter((u) => u.startsWith("file:")).map((u) => new URL(u).pathname)
  const effectCode = files.filter((f) => fs.readFileSync(f, "utf8").includes("~effect/"))
  return { ...res, loaded, files, effectCode }
}

it.skipIf(typeof process.getuid !== "function" || process.getuid() !== 0)("leaves a token file or folder of another user to the full command (run as root)", () => {
  writeTokens()
  expect(fastToken(env, now())).toBe(TOKEN)
  fs.chownSync(path.join(storage, "oauth.json"), 12345, 12345)
  expect(fastToken(env, now())).toBeUndefined()
  fs.chownSync(path.join(storage, "oauth.json"), 0, 0)
  fs.chownSync(storage, 12345, 12345)
  expect(fastToken(env, now())).toBeUndefined()
  fs.chownSync(storage, 0, 0)
  expect(fastToken(env, now())).toBe(TOKEN)
})

describe("the built CLI (child processes, module-load trace)", () => {
  it("token with a fresh token prints it and loads no Effect code", () => {
    writeTokens()
    const res = traced(["token"])
    expect(res.status, res.stderr).toBe(0)
    expect(res.stdout).toBe(`${TOKEN}\n`)
    expect(res.stderr).toBe("")
    expect(res.files.length).toBeGreaterThan(0)
    expect(res.effectCode).toEqual([])
  })

  it("token with a token file that is a symbolic link prints nothing: the store refuses it", () => {
    writeTokens()
    const real = path.join(home, "elsewhere.json")
    fs.renameSync(path.join(storage, "oauth.json"), real)
    fs.symlinkSync(real, path.join(storage, "oauth.json"))
    const res = traced(["token"])
    expect(res.status).not.toBe(0)
    expect(res.stdout).toBe("")
    expect(res.stderr).toContain("symbolic link")
  })

  it("token with a token that is not a valid bearer token prints nothing on stdout", () => {
    writeTokens({ access_token: "abc\r\nX-Injected: 1" })
    const res = traced(["token"])
    expect(res.status).not.toBe(0)
    expect(res.stdout).toBe("")
    expect(res.effectCode.length).toBeGreaterThan(0) // the full command ran and said why
  })

  it("a bad setting exits 2 with the resolver's message, as before", () => {
    writeTokens()
    const res = traced(["token"], { OPENCODE_KIMI_AUTH_DIR: "relative/dir" })
    expect(res.status).toBe(2)
    expect(res.stdout).toBe("")
    const expected = resolveSettings({}, { OPENCODE_KIMI_AUTH_DIR: "relative/dir" })
    expect(expected.ok).toBe(false)
    // The message ends with an example path below the home folder, which differs between the two processes.
    if (!expected.ok) expect(res.stderr).toContain(expected.message.slice(0, expected.message.indexOf("Give an absolute path")))
  })

  it("--help and status never load the emulator or an HTTP server", () => {
    writeTokens()
    for (const args of [["--help"], ["status"], ["token", "--help"]]) {
      const res = traced(args)
      expect(res.status, `${args.join(" ")}: ${res.stderr}`).toBe(0)
      expect(res.loaded.filter((u) => /^node:(http|https|http2|net)$/.test(u)), args.join(" ")).toEqual([])
      expect(res.files.filter((f) => f.endsWith(path.join("bundle", "emulator.js"))), args.join(" ")).toEqual([])
    }
  })
})
