/**
 * `kimi-auth status` answered without Effect (src/cli/FastStatus.ts) says
 * exactly what the Effect command says, byte for byte and with the same exit
 * code, in every login state: none, valid, due, expired, refused, logged out,
 * another region, an account named by `--account`; text and `--json`. The
 * fast path runs as `dist/cli/main.js`; the Effect command as the bundle's
 * `runCli` (dist/bundle/cli.js), which has no fast path. Where the fast path
 * declines (a refusal note: the full command reads it), it must say so.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fastStatus } from "../../src/cli/FastStatus.js"
import { isolatedEnv, makeTemp, repoRoot, rmTemp, runCli, runScript } from "../support/cli.js"
import { seedText } from "../support/tokens.js"

let scratch: string
let fullCli: string
beforeAll(() => {
  scratch = makeTemp("kimi-status-fast-")
  // The Effect command line alone: the same argv shape as bin, without main.ts's fast paths.
  fullCli = path.join(scratch, "full.mjs")
  fs.writeFileSync(fullCli, `import { runCli } from ${JSON.stringify(path.join(repoRoot, "dist", "bundle", "cli.js"))}\nrunCli()\n`)
})
afterAll(() => rmTemp(scratch))

const runFull = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) => runScript(fullCli, args, env)

const DEVICE_ID = "0f0e0d0c-0b0a-4909-8807-060504030201"
const now = () => Math.floor(Date.now() / 1000)

const tokenText = (expiresAt: number, extra: Record<string, unknown> = {}) =>
  seedText({ access: "at-status-0", refresh: "rt-status-0", expiresAt, extra })

/** A storage folder as a login leaves it: 0700, `device_id`, and `files`. */
const seed = (storage: string, files: Record<string, string>) => {
  fs.mkdirSync(storage, { recursive: true, mode: 0o700 })
  fs.writeFileSync(path.join(storage, "device_id"), `${DEVICE_ID}\n`, { mode: 0o600 })
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(storage, name), text, { mode: 0o600 })
}

const registry = JSON.stringify({
  version: 1,
  accounts: [
    { file: "oauth.json", user_id: "u1", nickname: "Ada", email: "ada@example.com", region: "mainland-cn", added_at: "2026-12-06T20:00:00Z" },
    { file: "oauth.global.u2.json", user_id: "u2", nickname: "Bob", email: "bob@example.com", region: "global", added_at: "2026-12-06T20:00:00Z" }
  ],
  active: { "mainland-cn": "oauth.json", global: "oauth.global.u2.json" },
  current: "oauth.json"
})

/** The login states: each seeds a storage folder; `fast` says whether the fast path answers it. */
const states: ReadonlyArray<{ name: string; fast: boolean; args?: ReadonlyArray<string>; seed: (storage: string) => void }> = [
  { name: "none", fast: true, seed: (s) => seed(s, {}) },
  { name: "valid", fast: true, seed: (s) => seed(s, { "oauth.json": tokenText(now() + 7230) }) },
  { name: "due", fast: true, seed: (s) => seed(s, { "oauth.json": tokenText(now() + 330) }) },
  { name: "expired", fast: true, seed: (s) => seed(s, { "oauth.json": tokenText(now() - 600) }) },
  {
    name: "refused",
    fast: false,
    seed: (s) =>
      seed(s, {
        "oauth.json": tokenText(now() + 7230),
        "oauth.json.refused": JSON.stringify({
          at: "2026-12-06T20:00:00.000Z",
          detail: "HTTP 400 invalid_grant",
          refresh_token_sha256: crypto.createHash("sha256").update("rt-status-0").digest("hex").slice(0, 16)
        })
      })
  },
  {
    name: "logged out",
    fast: true,
    seed: (s) =>
      seed(s, {
        "logged-out.json": JSON.stringify({ fingerprints: [crypto.createHash("sha256").update("rt-status-0").digest("hex").slice(0, 32)] })
      })
  },
  {
    name: "other region",
    fast: true,
    seed: (s) =>
      seed(s, {
        "oauth.json": tokenText(now() + 7230, { region: "global", oauth_host: "https://auth.kimi.ai", api_base_url: "https://api.kimi.ai/coding/v1" })
      })
  },
  {
    name: "--account (registered, other region)",
    fast: true,
    args: ["--account", "bob"],
    seed: (s) =>
      seed(s, {
        "accounts.json": registry,
        "oauth.json": tokenText(now() + 7230, { region: "mainland-cn" }),
        "oauth.global.u2.json": tokenText(now() + 7230, { region: "global" })
      })
  },
  {
    name: "--account= (current account)",
    fast: true,
    args: ["--account=ada"],
    seed: (s) =>
      seed(s, { "accounts.json": registry, "oauth.json": tokenText(now() + 7230, { region: "mainland-cn" }) })
  }
]

/** Durations tick between two processes: `5m 29s`/`5m 30s`, and the JSON's seconds left. */
const steady = (stdout: string) =>
  stdout.replace(/\b\d+m \d\ds\b/g, "<m s>").replace(/"expires_in_seconds":-?\d+/g, '"expires_in_seconds":<n>')

describe("kimi-auth status: the fast path says what the Effect command says", () => {
  it.each(states)("$name, text and --json", async (state) => {
    const home = path.join(scratch, state.name.replace(/\W+/g, "-"))
    const env = isolatedEnv(home)
    const storage = env["OPENCODE_KIMI_AUTH_DIR"]!
    state.seed(storage)
    const before = fs.readdirSync(storage).sort()
    for (const json of [false, true]) {
      const args = ["status", ...(state.args ?? []), ...(json ? ["--json"] : [])]
      const answered = fastStatus(args, env, Date.now(), { bold: String, dim: String, red: String, green: String }, () => "kimi-auth")
      expect(answered !== undefined, `the fast path ${state.fast ? "answers" : "declines"} ${args.join(" ")}`).toBe(state.fast)
      const [fast, full] = await Promise.all([runCli(args, env), runFull(args, env)])
      expect(full.stderr).toBe("")
      expect(fast.stderr).toBe("")
      expect(steady(fast.stdout)).toBe(steady(full.stdout))
      expect(fast.code).toBe(full.code)
      if (answered !== undefined) expect(steady(answered.stdout)).toBe(steady(fast.stdout))
    }
    // Neither wrote anything: status only reads.
    expect(fs.readdirSync(storage).sort()).toEqual(before)
  })

  it("declines what only the full command may say: --debug, DEBUG, an unknown account, a damaged file", () => {
    const home = path.join(scratch, "declines")
    const env = isolatedEnv(home)
    const storage = env["OPENCODE_KIMI_AUTH_DIR"]!
    seed(storage, { "oauth.json": tokenText(now() + 7230) })
    const plain = { bold: String, dim: String, red: String, green: String }
    const ask = (args: ReadonlyArray<string>, e: NodeJS.ProcessEnv = env) => fastStatus(args, e, Date.now(), plain, () => "kimi-auth")
    expect(ask(["status"])).toBeDefined()
    expect(ask(["status", "--debug"])).toBeUndefined()
    expect(ask(["status"], { ...env, DEBUG: "opencode-kimi-auth:*" })).toBeUndefined()
    expect(ask(["status", "--account", "nobody"])).toBeUndefined()
    expect(ask(["status", "--json", "--json"])).toBeUndefined()
    fs.writeFileSync(path.join(storage, "oauth.json"), '{"access_token": "at-0", "refresh_tok')
    expect(ask(["status"])).toBeUndefined()
    fs.rmSync(path.join(storage, "oauth.json"))
    fs.chmodSync(storage, 0o755)
    expect(ask(["status"])).toBeUndefined()
  })
})
