/**
 * Accounts through the real `kimi-auth` (built CLI, child processes) against
 * the emulator with several users: two users logged in, listed, switched;
 * both refreshed when due by racing processes (one refresh each, no reuse);
 * the same user replacing, logout of one account; and the upgrade: an
 * existing `oauth.json` is kept byte for byte and is the default account.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { seedLogin } from "../support/tokens.js"

const USERS = [
  { userId: "u-ada", nickname: "Ada", email: "ada@example.com" },
  { userId: "u-bob", nickname: "Bob", email: "bob@example.com" }
]

let home: string
let emulator: StartedEmulator

beforeEach(async () => {
  home = makeTemp()
  emulator = await start({ interval: 1, users: USERS })
})
afterEach(async () => {
  await emulator.close()
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const env = () => isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl })
/** `kimi-auth login --no-browser --json`, approved in the emulator as `userId` once the code is issued. */
const loginAs = async (userId: string, args: ReadonlyArray<string> = []) => {
  const before = emulator.deviceCodes().length
  const run = runCli(["login", "--no-browser", "--json", ...args], env())
  for (let i = 0; i < 200 && emulator.deviceCodes().length === before; i++) await new Promise((r) => setTimeout(r, 50))
  const code = emulator.deviceCodes().at(-1)!
  expect(emulator.approve(code.userCode, userId)).toBe(true)
  const r = await run
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, any>
}

/** Who the emulator says holds `token` (`GET /me`). */
const whoHolds = async (token: string) => {
  const response = await fetch(`${emulator.apiBaseUrl}/me`, { headers: { authorization: `Bearer ${token}` } })
  return ((await response.json()) as { user_id?: string }).user_id
}

/** Moves a token file's expiry into the past (as time passing would). */
const makeDue = (file: string) => {
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>
  fs.writeFileSync(file, JSON.stringify({ ...json, expires_at: Math.floor(Date.now() / 1000) - 10 }), { mode: 0o600 })
}

const accounts = async () => {
  const r = await runCli(["accounts", "--json"], env())
  expect(r.code, r.stderr).toBe(0)
  return (JSON.parse(r.stdout) as { accounts: Array<Record<string, any>> }).accounts
}

const token = async (...args: ReadonlyArray<string>) => {
  const r = await runCli(["token", ...args], env())
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.trim()
}

describe("kimi-auth with two Kimi users", () => {
  it("logs both in, lists them by name, switches, and serves each account's own token", async () => {
    const first = await loginAs("u-ada")
    expect(first).toMatchObject({ event: "logged_in", token_file: path.join(storage(), "oauth.json"), replaced_login: false })
    const second = await loginAs("u-bob")
    expect(second).toMatchObject({
      token_file: path.join(storage(), "oauth.mainland-cn.u-bob.json"),
      replaced_login: false,
      account: { user_id: "u-bob", label: "Bob (bob@example.com), mainland-cn", added: true }
    })
    // The first login is untouched: Ada's family lives on in oauth.json.
    const list = await accounts()
    expect(list.map((a) => [a.label, a.active, a.current, a.state])).toEqual([
      ["Ada (ada@example.com), mainland-cn", false, false, "valid"],
      ["Bob (bob@example.com), mainland-cn", true, true, "valid"]
    ])
    expect(await whoHolds(await token())).toBe("u-bob")
    expect(await whoHolds(await token("--account", "ada"))).toBe("u-ada")
    expect(await whoHolds(await token("--account", "ada@example.com"))).toBe("u-ada")

    const text = await runCli(["accounts"], env())
    expect(text.stdout).toMatch(/\* Bob \(bob@example\.com\), mainland-cn \(active for mainland-cn, current\)/)
    expect(text.stdout).toMatch(/ {2}Ada \(ada@example\.com\), mainland-cn\n/)

    const sw = await runCli(["switch", "Ada"], env())
    expect(sw.code, sw.stderr).toBe(0)
    expect(sw.stdout).toMatch(/Now using Ada \(ada@example\.com\), mainland-cn for mainland-cn/)
    // The fast path (no Effect) follows the switch too.
    expect(await whoHolds(await token())).toBe("u-ada")
    expect(await whoHolds(await token("--account", "bob"))).toBe("u-bob")

    const unknown = await runCli(["switch", "zed"], env())
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/No Kimi account matches "zed"\. The accounts are: Ada .*; Bob /)
    const status = await runCli(["status", "--json", "--account", "u-bob"], env())
    expect(JSON.parse(status.stdout)).toMatchObject({
      token_file: path.join(storage(), "oauth.mainland-cn.u-bob.json"),
      account: { label: "Bob (bob@example.com), mainland-cn", user_id: "u-bob" }
    })
    expect((await runCli(["status"], env())).stdout).toMatch(/^ {2}account: {6}Ada \(ada@example\.com\), mainland-cn$/m)
    const usage = await runCli(["usage", "--json", "--account", "bob"], env())
    expect(usage.code, usage.stderr).toBe(0)
    expect(await whoHolds(emulator.requests("/coding/v1/usages").at(-1)!.bearer!)).toBe("u-bob")
    expect(emulator.stats().spentTokenReplays).toBe(0)
  })

  it("refreshes each due account once, from racing processes, with no reuse", async () => {
    await loginAs("u-ada")
    await loginAs("u-bob")
    // Both due: expired at Kimi and on disk.
    emulator.expireAccessTokens()
    for (const file of ["oauth.json", "oauth.mainland-cn.u-bob.json"]) makeDue(path.join(storage(), file))
    const runs = await Promise.all(
      [0, 1, 2, 3].flatMap(() => [runCli(["token", "--account", "ada"], env()), runCli(["token", "--account", "bob"], env())])
    )
    for (const r of runs) expect(r.code, r.stderr).toBe(0)
    const stats = emulator.stats()
    expect(stats.refreshes).toBe(2)
    expect(stats.spentTokenReplays).toBe(0)
    expect(stats.familiesRevoked).toBe(0)
    const tokens = runs.map((r) => r.stdout.trim())
    expect(new Set(tokens).size).toBe(2)
    expect(await whoHolds(tokens[0]!)).toBe("u-ada")
    expect(await whoHolds(tokens[1]!)).toBe("u-bob")
  }, 60_000)

  it("the same user again replaces that account's login; logout of one account leaves the other", async () => {
    await loginAs("u-ada")
    await loginAs("u-bob")
    const again = await loginAs("u-ada")
    expect(again).toMatchObject({ token_file: path.join(storage(), "oauth.json"), replaced_login: true, account: { added: false } })
    expect(await accounts()).toHaveLength(2)
    expect(await whoHolds(await token())).toBe("u-ada")

    // OpenCode 1.18's copies: its cn provider uses the region's active account (Ada, logged in last).
    const authJson = path.join(home, ".local", "share", "opencode", "auth.json")
    fs.mkdirSync(path.dirname(authJson), { recursive: true })
    const copies = JSON.stringify({
      "kimi-code-plan-cn": { type: "oauth", refresh: "cn-copy-refresh", access: "cn-copy-access", expires: 0 },
      "kimi-code-plan-global": { type: "oauth", refresh: "global-copy-refresh", access: "global-copy-access", expires: 0 }
    })
    fs.writeFileSync(authJson, copies, { mode: 0o600 })

    const out = await runCli(["logout", "--account", "bob"], env())
    expect(out.code, out.stderr).toBe(0)
    expect(out.stdout).toMatch(/account: Bob \(bob@example\.com\), mainland-cn is no longer in the account list/)
    expect(fs.existsSync(path.join(storage(), "oauth.mainland-cn.u-bob.json"))).toBe(false)
    expect((await accounts()).map((a) => a.label)).toEqual(["Ada (ada@example.com), mainland-cn"])
    expect(await whoHolds(await token())).toBe("u-ada")
    // Bob is active in no region: OpenCode 1.18 keeps the logins it uses, byte for byte, and is told so.
    expect(fs.readFileSync(authJson, "utf8")).toBe(copies)
    expect(out.stdout).toContain("active in neither")

    // The last account: both providers' copies go.
    const last = await runCli(["logout"], env())
    expect(last.code, last.stderr).toBe(0)
    expect(JSON.parse(fs.readFileSync(authJson, "utf8"))).toEqual({})
    expect(last.stdout).toContain("kimi-code-plan-cn, kimi-code-plan-global")
  }, 60_000)
})

describe("two logins at once on a fresh machine", () => {
  it("never pick the same free file: both users end up as accounts, no login lost", async () => {
    const runs = [runCli(["login", "--no-browser", "--json"], env()), runCli(["login", "--no-browser", "--json"], env())]
    for (let i = 0; i < 200 && emulator.deviceCodes().length < 2; i++) await new Promise((r) => setTimeout(r, 50))
    const [a, b] = emulator.deviceCodes()
    expect(emulator.approve(a!.userCode, "u-ada")).toBe(true)
    expect(emulator.approve(b!.userCode, "u-bob")).toBe(true)
    for (const r of await Promise.all(runs)) expect(r.code, r.stderr).toBe(0)
    const list = await accounts()
    expect(list.map((x) => x.user_id).sort()).toEqual(["u-ada", "u-bob"])
    expect(list.every((x) => x.state === "valid")).toBe(true)
    expect(await whoHolds(await token("--account", "ada"))).toBe("u-ada")
    expect(await whoHolds(await token("--account", "bob"))).toBe("u-bob")
  }, 60_000)
})

describe("upgrade: a login from before accounts", () => {
  it("keeps oauth.json byte for byte as the default account, learns who it is, and a new user is added beside it", async () => {
    const issued = emulator.issueTokens("u-ada")
    fs.mkdirSync(storage(), { recursive: true, mode: 0o700 })
    // The seed's format, as an older release wrote it.
    const seed = JSON.stringify({
      version: 1, access_token: issued.accessToken, refresh_token: issued.refreshToken, token_type: "Bearer",
      expires_in: 900, scope: "kimi-code", expires_at: Math.floor(Date.now() / 1000) + 900,
      device_id: "0f0e0d0c-0b0a-4909-8807-060504030201", region: "mainland-cn"
    }, null, 2) + "\n"
    fs.writeFileSync(path.join(storage(), "oauth.json"), seed, { mode: 0o600 })
    fs.writeFileSync(path.join(storage(), "device_id"), "0f0e0d0c-0b0a-4909-8807-060504030201", { mode: 0o600 })

    expect(await token()).toBe(issued.accessToken)
    const listed = await accounts()
    expect(listed).toEqual([expect.objectContaining({ label: "Ada (ada@example.com), mainland-cn", default: true, active: true, user_id: "u-ada" })])
    await loginAs("u-bob")
    expect(fs.readFileSync(path.join(storage(), "oauth.json"), "utf8")).toBe(seed)
    expect((await accounts()).map((a) => a.label)).toEqual(["Ada (ada@example.com), mainland-cn", "Bob (bob@example.com), mainland-cn"])
    expect(await token("--account", "default")).toBe(issued.accessToken)
    // The same user as the default account replaces it in place (no twin account).
    const again = await loginAs("u-ada")
    expect(again).toMatchObject({ token_file: path.join(storage(), "oauth.json"), replaced_login: true })
    expect(await accounts()).toHaveLength(2)
    expect(emulator.stats().spentTokenReplays).toBe(0)
  }, 60_000)

  it("an older release logged another user into oauth.json: a login of the user the list names there keeps it and goes beside it", async () => {
    await loginAs("u-ada")
    expect(await accounts()).toEqual([expect.objectContaining({ default: true, user_id: "u-ada" })])
    // An older release (one login per folder) beside this one logs Bob in: it writes oauth.json in the seed's format.
    const bob = emulator.issueTokens("u-bob")
    const deviceId = fs.readFileSync(path.join(storage(), "device_id"), "utf8").trim()
    const seed = JSON.stringify({
      version: 1, access_token: bob.accessToken, refresh_token: bob.refreshToken, token_type: "Bearer",
      expires_in: 900, scope: "kimi-code", expires_at: Math.floor(Date.now() / 1000) + 900, device_id: deviceId,
      region: "mainland-cn"
    }, null, 2) + "\n"
    fs.writeFileSync(path.join(storage(), "oauth.json"), seed, { mode: 0o600 })
    // Ada logs in again: the list said oauth.json was hers, but it holds Bob's login now, which is kept.
    const again = await loginAs("u-ada")
    expect(again).toMatchObject({ replaced_login: false })
    expect(again["token_file"]).not.toBe(path.join(storage(), "oauth.json"))
    expect(fs.readFileSync(path.join(storage(), "oauth.json"), "utf8")).toBe(seed)
    const listed = await accounts()
    expect(listed.map((a) => [a.user_id, a.default === true])).toEqual([["u-bob", true], ["u-ada", false]])
    expect(await whoHolds(await token("--account", "default"))).toBe("u-bob")
    expect(await whoHolds(await token())).toBe("u-ada")
    expect(emulator.stats().spentTokenReplays).toBe(0)
  }, 60_000)

  it("an unknown default is asked who it is before a login, so the same user replaces it", async () => {
    const issued = emulator.issueTokens("u-ada")
    seedLogin(path.join(storage(), "oauth.json"), {
      access: issued.accessToken,
      refresh: issued.refreshToken,
      expiresAt: Math.floor(Date.now() / 1000) + 900
    })
    const r = await loginAs("u-ada")
    expect(r).toMatchObject({ token_file: path.join(storage(), "oauth.json"), replaced_login: true })
    expect(await accounts()).toHaveLength(1)
  }, 30_000)
})

describe("a damaged account list", () => {
  it("reads as empty: the default account still serves, a login still works, and the list is rewritten whole", async () => {
    expect((await runCli(["accounts"], env())).stdout).toBe("No Kimi account is logged in here. Run `kimi-auth login`.\n")
    await loginAs("u-ada")
    fs.writeFileSync(path.join(storage(), "accounts.json"), "{\"accounts\": [ {\"file\": \"../../etc/passwd\"", { mode: 0o600 })
    expect(await whoHolds(await token())).toBe("u-ada")
    expect((await accounts()).map((a) => a.label)).toEqual(["Ada (ada@example.com), mainland-cn"])
    await loginAs("u-bob")
    expect((await accounts()).map((a) => [a.label, a.active])).toEqual([
      ["Ada (ada@example.com), mainland-cn", false],
      ["Bob (bob@example.com), mainland-cn", true]
    ])
    expect(JSON.parse(fs.readFileSync(path.join(storage(), "accounts.json"), "utf8")).accounts).toHaveLength(2)
  }, 60_000)
})
