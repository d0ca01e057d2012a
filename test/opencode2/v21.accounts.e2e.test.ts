/**
 * OpenCode 2.1's rows as Kimi accounts, in the real 2.1.2 against the
 * emulator with two Kimi users (Alice and Bob), each logged in through
 * `opencode auth login kimi-code-plan-cn --method kimi-device` and approved
 * as that user: each row is one account (its own token file, lock and
 * rotation family), labelled with the account's name; `auth switch` changes
 * the account the next request through the host uses, not the package's
 * own choice (`kimi-auth token`); both logins refreshed when due, once each;
 * `auth logout <row>` stops that host using the account at once; with both
 * rows gone nothing is sent. Then the three-host storm with two accounts.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { isolatedEnv, repoRoot, runCli } from "../support/cli.js"
import { ensureOpencode, makeOpencodeEnv } from "../support/opencode.js"
import {
  EMULATOR_GREETING as GREETING,
  KIMI_CN as CN,
  KIMI_GLOBAL as GLOBAL,
  type V2Env,
  v21SuiteMissing,
  v21Suite
} from "../support/opencode2.js"

const TEST_TIMEOUT = 300_000
const missing = v21SuiteMissing("accounts suite")

describe.skipIf(missing !== undefined)("Kimi accounts as OpenCode 2.1.2 rows", () => {
  const suite = v21Suite({
    interval: 1,
    users: [
      { userId: "alice", nickname: "Alice", email: "alice@example.com" },
      { userId: "bob", nickname: "Bob", email: "bob@example.com" }
    ]
  })
  const envs = suite.envs
  const world = async () => {
    const e = await suite.world()
    return { e, storage: path.join(e.home, ".opencode-kimi-auth") }
  }
  const chats = () => suite.emulator.requests("/coding/v1/chat/completions")
  const read = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"))

  /** `opencode auth login` approved in the emulator as `userId`. */
  const loginAs = async (e: V2Env, userId: string, provider = CN) => {
    const before = suite.emulator.deviceCodes().length
    const running = e.login(provider)
    let approved = false
    for (let i = 0; i < 300 && !approved; i++) {
      const code = suite.emulator.deviceCodes()[before]
      if (code !== undefined) approved = suite.emulator.approve(code.userCode, userId)
      else await new Promise((r) => setTimeout(r, 100))
    }
    const r = await running
    expect(approved, "the device code was approved").toBe(true)
    expect(r.code, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`).toBe(0)
  }
  const run = async (e: V2Env, provider = CN) => {
    suite.emulator.clearRequests()
    const r = await e.run(`${provider}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 })
    return { r, bearers: [...new Set(chats().map((c) => c.bearer))] }
  }
  const switchTo = async (e: V2Env, id: string) => {
    const s = await e.cli(["auth", "switch", CN, id, "--standalone"])
    expect(s.code, `${s.stdout}\n${s.stderr}`).toBe(0)
  }
  const accessOf = (storage: string, file: string) => read(path.join(storage, file)).access_token as string
  /** A world logged in as each of `users`, in order; its rows (one per login). */
  const loggedIn = async (...users: ReadonlyArray<string>) => {
    const w = await world()
    for (const u of users) await loginAs(w.e, u)
    const rows = await w.e.credentials()
    expect(rows).toHaveLength(users.length)
    return { ...w, rows }
  }

  it("two accounts: labelled apart, switched, both refreshed when due (one each, no reuse), and a logout that sticks", async () => {
    const { e, storage, rows } = await loggedIn("alice", "bob")
    const alice = rows.find((x) => x.label.includes("Alice"))!
    const bob = rows.find((x) => x.label.includes("Bob"))!
    expect(alice.label).toBe("Kimi Alice (alice@example.com), mainland-cn")
    expect(bob.label).toBe("Kimi Bob (bob@example.com), mainland-cn")
    expect(alice.value.metadata.account).not.toBe(bob.value.metadata.account)
    for (const row of rows) expect(row.value.refresh).toBe("opencode-kimi-auth:token-file")
    const aliceFile = alice.value.metadata.account as string
    const bobFile = bob.value.metadata.account as string
    // the newest login is active: Bob
    let { r, bearers } = await run(e)
    expect(r.stdout, r.stderr).toContain(GREETING)
    expect(bearers).toEqual([accessOf(storage, bobFile)])
    // switch the host to Alice: the next request carries Alice's login; the package's own choice stays Bob's
    await switchTo(e, alice.id)
    ;({ r, bearers } = await run(e))
    expect(r.stdout, r.stderr).toContain(GREETING)
    expect(bearers).toEqual([accessOf(storage, aliceFile)])
    const cli = await runCli(["token"], isolatedEnv(e.home, { KIMI_OAUTH_HOST: suite.emulator.oauthHost, KIMI_CODE_BASE_URL: suite.emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage }))
    expect(cli.stdout.trim()).toBe(accessOf(storage, bobFile))
    // both logins due: each refreshed once, through its own file and lock, when a request uses it
    for (const f of [aliceFile, bobFile]) {
      const t = read(path.join(storage, f))
      fs.writeFileSync(path.join(storage, f), JSON.stringify({ ...t, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    }
    suite.emulator.expireAccessTokens()
    const { refreshes, spentTokenReplays, familiesRevoked } = suite.emulator.stats()
    ;({ r } = await run(e))
    expect(r.stdout, r.stderr).toContain(GREETING)
    await switchTo(e, bob.id)
    ;({ r } = await run(e))
    expect(r.stdout, r.stderr).toContain(GREETING)
    expect(suite.emulator.stats().refreshes - refreshes).toBe(2)
    expect(suite.emulator.stats().spentTokenReplays - spentTokenReplays).toBe(0)
    expect(suite.emulator.stats().familiesRevoked - familiesRevoked).toBe(0)
    // logout of Bob's (active) row: the host moves to Alice's at once, and stops using Bob's
    const out = await e.cli(["auth", "logout", CN, bob.id, "--standalone"])
    expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(0)
    ;({ r, bearers } = await run(e))
    expect(r.stdout, r.stderr).toContain(GREETING)
    expect(bearers).toEqual([accessOf(storage, aliceFile)])
    // and with no Kimi row left nothing is sent, though both accounts keep their logins in the package
    expect((await e.cli(["auth", "logout", CN, alice.id, "--standalone"])).code).toBe(0)
    ;({ r } = await run(e))
    expect(r.stdout).not.toContain(GREETING)
    expect(`${r.stdout}\n${r.stderr}`).toContain(`opencode auth login ${CN} --method kimi-device`)
    expect(chats()).toEqual([])
    expect(fs.existsSync(path.join(storage, aliceFile)) && fs.existsSync(path.join(storage, bobFile))).toBe(true)
  }, TEST_TIMEOUT)

  it("the same user logged in twice: two rows, one account; after one row is logged out the other keeps working with that account", async () => {
    const { e, storage, rows } = await loggedIn("alice", "alice")
    expect(new Set(rows.map((x) => x.value.metadata.account)).size).toBe(1)
    const file = rows[0]!.value.metadata.account as string
    const active = rows.find((x) => x.active)!
    expect((await e.cli(["auth", "logout", CN, active.id, "--standalone"])).code).toBe(0)
    const { r, bearers } = await run(e)
    expect(r.stdout, r.stderr).toContain(GREETING)
    expect(bearers).toEqual([accessOf(storage, file)])
  }, TEST_TIMEOUT)

  it("both regions at once: a login on kimi-code-plan-global, then one on kimi-code-plan-cn; each provider answers with its own region's login", async () => {
    const { e, storage } = await world()
    await loginAs(e, "alice", GLOBAL)
    await loginAs(e, "alice", CN)
    const rows = await e.credentials()
    const globalRow = rows.find((x) => x.integration_id === GLOBAL)!
    const cnRow = rows.find((x) => x.integration_id === CN)!
    expect(globalRow.label).toBe("Kimi Alice (alice@example.com), global")
    expect(cnRow.label).toBe("Kimi Alice (alice@example.com), mainland-cn")
    const globalFile = globalRow.value.metadata.account as string
    const cnFile = cnRow.value.metadata.account as string
    expect(read(path.join(storage, globalFile)).region).toBe("global")
    expect(read(path.join(storage, cnFile)).region).toBe("mainland-cn")
    for (const [provider, file] of [[GLOBAL, globalFile], [CN, cnFile]] as const) {
      const { r, bearers } = await run(e, provider)
      expect(r.stdout, `${provider}: ${r.stdout}\n${r.stderr}`).toContain(GREETING)
      expect(bearers).toEqual([accessOf(storage, file)])
    }
  }, TEST_TIMEOUT)

  it("the three-host storm with two accounts, all due: 2.1.2 on Bob's row, 1.18.33 and kimi-auth token on the active account (Alice), kimi-auth token --account bob: one refresh per account, no reuse", async () => {
    await ensureOpencode()
    const { e, storage } = await world()
    await loginAs(e, "bob")
    await loginAs(e, "alice")
    // the package's active account is Alice's (the last login); 2.1.2 uses Bob's row
    const bob = (await e.credentials()).find((x) => x.label.includes("Bob"))!
    await switchTo(e, bob.id)
    const v1 = await makeOpencodeEnv({
      plugin: repoRoot,
      catalog: "bundled",
      env: { KIMI_OAUTH_HOST: suite.emulator.oauthHost, KIMI_CODE_BASE_URL: suite.emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage }
    })
    envs.push(v1)
    for (const f of fs.readdirSync(storage).filter((x) => /^oauth.*\.json$/.test(x))) {
      const t = read(path.join(storage, f))
      fs.writeFileSync(path.join(storage, f), JSON.stringify({ ...t, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    }
    suite.emulator.expireAccessTokens()
    suite.emulator.clearRequests()
    const { refreshes, spentTokenReplays, familiesRevoked } = suite.emulator.stats()
    const cliEnv = isolatedEnv(e.home, { KIMI_OAUTH_HOST: suite.emulator.oauthHost, KIMI_CODE_BASE_URL: suite.emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage })
    const [v2run, v1run, cli, cli2] = await Promise.all([
      e.run(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 }),
      v1.prompt(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 }),
      runCli(["token"], cliEnv, { timeoutMs: 60_000 }),
      runCli(["token", "--account", "bob"], cliEnv, { timeoutMs: 60_000 })
    ])
    expect(v2run.stdout, `${v2run.stdout}\n${v2run.stderr}`).toContain(GREETING)
    expect(v1run.stdout, v1run.stderr).toContain(GREETING)
    expect(cli.code, cli.stderr).toBe(0)
    expect(cli2.code, cli2.stderr).toBe(0)
    expect(cli.stdout.trim()).not.toBe(cli2.stdout.trim())
    expect(suite.emulator.stats().refreshes - refreshes).toBe(2)
    expect(suite.emulator.stats().spentTokenReplays - spentTokenReplays).toBe(0)
    expect(suite.emulator.stats().familiesRevoked - familiesRevoked).toBe(0)
  }, TEST_TIMEOUT)
})
