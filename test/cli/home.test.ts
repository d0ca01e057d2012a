/**
 * An empty, relative or missing home folder, as real child processes: every
 * command that needs the storage folder exits 2 with a message naming HOME
 * and OPENCODE_KIMI_AUTH_DIR, before any I/O or request; nothing is created
 * in the current folder, and a missing home is never created. An absolute
 * OPENCODE_KIMI_AUTH_DIR still works without a home.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { spawn } from "node:child_process"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { cliPath, isolatedEnv, makeTemp, rmTemp } from "../support/cli.js"
import { type RotatingServer, startRotatingServer } from "../support/rotatingServer.js"
import { type KimiAuthError, KimiOAuthClient } from "../../src/index.js"

let work: string
let server: RotatingServer

beforeEach(async () => {
  work = makeTemp("kimi-home-")
  server = await startRotatingServer()
})
afterEach(async () => {
  await server.close()
  rmTemp(work)
})

/** Runs the CLI in `cwd` with `env`. */
const runIn = (cwd: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`timed out: ${stderr}`))
    }, 30_000)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const envWithHome = (home: string) => {
  const env = isolatedEnv(work, { KIMI_OAUTH_HOST: server.url })
  delete env["OPENCODE_KIMI_AUTH_DIR"]
  // Under Bun the runtime itself creates `$HOME/.bun/install/cache` (its transpiler cache) before our code
  // runs; turned off, so that what this checks is only what kimi-auth creates. Node ignores the variable.
  return { ...env, HOME: home, BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" }
}

describe("kimi-auth with an unusable home folder", () => {
  const homes: ReadonlyArray<[string, (w: string) => string, RegExp]> = [
    ["empty", () => "", /HOME is empty/],
    ["relative", () => "relative-home", /relative path/],
    ["missing", (w) => path.join(w, "nonexistent", "x"), /does not exist; it is never created/]
  ]
  for (const [name, home, why] of homes) {
    it(`${name} HOME: login, status, token and logout exit 2 naming HOME; nothing is created`, async () => {
      const project = path.join(work, "project")
      fs.mkdirSync(project)
      for (const args of [["login", "--no-browser"], ["status"], ["token"], ["logout"]]) {
        const r = await runIn(project, args, envWithHome(home(work)))
        expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2)
        expect(r.stderr).toMatch(why)
        expect(r.stderr).toContain("OPENCODE_KIMI_AUTH_DIR")
        expect(r.stderr).not.toMatch(/\n\s+at /)
      }
      expect(fs.readdirSync(project)).toEqual([])
      expect(fs.existsSync(path.join(work, "nonexistent"))).toBe(false)
      expect(server.requests).toEqual([])
    })
  }

  it("an absolute OPENCODE_KIMI_AUTH_DIR works with an empty HOME", async () => {
    const dir = path.join(work, "tokens")
    const r = await runIn(work, ["status"], { ...envWithHome(""), OPENCODE_KIMI_AUTH_DIR: dir })
    expect(r.code, r.stderr).toBe(7)
    expect(r.stdout).toContain("Not logged in")
  })

  it("the facade: a typed CONFIG_ERROR naming HOME, and nothing created in the current folder", async () => {
    const saved = process.env["HOME"]
    const savedDir = process.env["OPENCODE_KIMI_AUTH_DIR"]
    const cwd = process.cwd()
    process.env["HOME"] = ""
    delete process.env["OPENCODE_KIMI_AUTH_DIR"]
    process.chdir(work)
    const client = new KimiOAuthClient({ oauthHost: server.url })
    try {
      const e = (await client.getValidAccessToken().catch((x: unknown) => x)) as KimiAuthError
      expect(e.code).toBe("CONFIG_ERROR")
      expect(e.message).toMatch(/HOME is empty.*OPENCODE_KIMI_AUTH_DIR/)
      expect(fs.readdirSync(work)).toEqual([])
    } finally {
      await client.dispose()
      process.chdir(cwd)
      if (saved === undefined) delete process.env["HOME"]
      else process.env["HOME"] = saved
      if (savedDir !== undefined) process.env["OPENCODE_KIMI_AUTH_DIR"] = savedDir
    }
  })
})
