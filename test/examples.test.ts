/**
 * Every program in examples/ runs as a real child process against the
 * emulator (after `npm run build`, as `npm test` does), with the same
 * environment a user sets, and exits 0 after printing the model's answer.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as KimiEmulator from "../src/emulator/KimiEmulator.js"
import { isolatedEnv, makeTemp, repoRoot, rmTemp } from "./support/cli.js"
import { seedLogin } from "./support/tokens.js"

let home: string
let emu: KimiEmulator.StartedEmulator | undefined
beforeEach(() => {
  home = makeTemp("kimi-examples-")
})
afterEach(async () => {
  await emu?.close()
  emu = undefined
  rmTemp(home)
})

const runExample = (name: string, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, "examples", name)], { env, cwd: repoRoot })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${name} timed out; stdout: ${stdout}; stderr: ${stderr}`))
    }, 60_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const examples = fs.readdirSync(path.join(repoRoot, "examples")).filter((f) => f.endsWith(".mjs") && f !== "options.mjs")

describe("examples/", () => {
  it("has the facade, Effect and AI SDK programs", () => {
    expect(examples.sort()).toEqual(["ai-sdk.mjs", "effect.mjs", "facade.mjs"])
  })

  it("each imports the entry README documents for it: the facade from the root, Effect from ./effect", () => {
    const imports = (name: string) =>
      [...fs.readFileSync(path.join(repoRoot, "examples", name), "utf8").matchAll(/from "(opencode-kimi-auth[^"]*)"/g)].map((m) => m[1])
    expect(imports("facade.mjs")).toEqual(["opencode-kimi-auth"])
    expect(imports("effect.mjs")).toEqual(["opencode-kimi-auth/effect"])
    expect(imports("ai-sdk.mjs")).toEqual(["opencode-kimi-auth/ai-sdk"])
  })

  it("facade.mjs logs in through the device flow (auto-approved), gets a token and prints the answer", async () => {
    emu = await KimiEmulator.start({ autoApproveAfterMillis: 200, interval: 1 })
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emu.oauthHost, KIMI_CODE_BASE_URL: emu.apiBaseUrl, KIMI_EXAMPLE_PROMPT: "facade" })
    const r = await runExample("facade.mjs", env)
    expect(r.stderr).toMatch(/^\(a valid access token of \d+ characters\)\n$/)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Open http:\/\/127\.0\.0\.1:\d+\/device\?user_code=\S+ and confirm the code \S+\nLogged in\.\n/)
    expect(r.stdout.trimEnd().split("\n").at(-1)).toBe(`${KimiEmulator.GREETING}. You said: facade`)
    // Logged in now: a second run goes straight to what it computes: the quota, the models, the answer.
    const again = await runExample("facade.mjs", env)
    expect(again.code).toBe(0)
    const [usage, models, answer, ...rest] = again.stdout.split("\n")
    expect(usage).toMatch(/^usage: 5-hour \d+%, weekly \d+%, monthly total \d+%, monthly code \d+%$/)
    expect(models).toMatch(/^models: kimi-for-coding(, [\w-]+)+$/)
    expect(answer).toBe(`${KimiEmulator.GREETING}. You said: facade`)
    expect(rest).toEqual([""])
  })

  it("effect.mjs without a login prints the message that says what to do, not a stack", async () => {
    // No server needed: nothing is sent without a login.
    const r = await runExample("effect.mjs", isolatedEnv(home))
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^error: You are not logged in to Kimi \(no tokens at .+\); run `kimi-auth login` .+\n$/)
    expect(r.stderr).not.toMatch(/^\s+at /m)
    expect(r.stdout).toBe("")
  })

  for (const name of ["effect.mjs", "ai-sdk.mjs"]) {
    it(`${name} prints the streamed answer with a stored login`, async () => {
      emu = await KimiEmulator.start()
      const tokens = emu.issueTokens()
      const dir = path.join(home, ".opencode-kimi-auth")
      seedLogin(path.join(dir, "oauth.json"), {
        access: tokens.accessToken,
        refresh: tokens.refreshToken,
        expiresAt: Math.floor(emu.now() / 1000) + tokens.expiresIn,
        extra: { expires_in: tokens.expiresIn }
      })
      const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emu.oauthHost, KIMI_CODE_BASE_URL: emu.apiBaseUrl, KIMI_EXAMPLE_PROMPT: name })
      const r = await runExample(name, env)
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      expect(r.stdout.trimEnd().split("\n").at(-1)).toBe(`${KimiEmulator.GREETING}. You said: ${name}`)
      expect(emu.requests("/coding/v1/chat/completions").at(-1)?.json).toMatchObject({ stream: true })
      if (name === "effect.mjs") expect(r.stdout).toMatch(/^models: kimi-for-coding(, [\w-]+)+\nusage: 5-hour 0%, weekly 0%, monthly total 0%, monthly code 0%\n/)
    })
  }
})
