/**
 * A storage folder the login cannot be stored in: found before the device
 * flow (nothing sent to Kimi, nothing to approve), in the CLI, the promise
 * facade and the OpenCode plugin core; and approved tokens whose save still
 * fails are kept in a rescue file the error names. Real folders made
 * unwritable as root (immutable with `chattr +i`, or the child run as
 * `nobody` with `setpriv`; each test skips where the machine cannot), real
 * loopback servers, the built CLI as a child.
 *
 * Before the fix, `kimi-auth login` in an immutable folder showed the code,
 * polled, received the tokens and then failed "Cannot create the lock file":
 * the approval was spent and the login lost.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { cannotStoreMessage, unsavedLoginMessage, writeRescueFile } from "../../src/storage/LoginStorage.js"
import { makePluginCore } from "../../src/opencode/PluginCore.js"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { type Reply, type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

const granted: Reply = {
  status: 200,
  body: { access_token: "at-granted-secret", refresh_token: "rt-granted-secret", expires_in: 900, token_type: "Bearer" }
}

let server: ScriptedServer | undefined
const temps: Array<string> = []
const undo: Array<() => void> = []
afterEach(async () => {
  for (const u of undo.splice(0)) u()
  await server?.close()
  server = undefined
  for (const t of temps.splice(0)) rmTemp(t)
})

/** A server that hands out a device code, then grants at the first poll (after `onPoll`). */
const oauthServer = (onPoll: () => void = () => {}) =>
  startScriptedServer((req) => {
    if (req.path === "/api/oauth/device_authorization") {
      return {
        status: 200,
        body: { device_code: "dc", user_code: "KIMI-1357", verification_uri: "http://127.0.0.1/device", expires_in: 60, interval: 1 }
      }
    }
    onPoll()
    return granted
  })

const home = () => {
  const h = makeTemp("kimi-login-storage-")
  temps.push(h)
  return h
}

/** An existing empty 0700 folder made immutable (`chattr +i`); `undefined` where that is not possible. */
const immutableDir = (parent: string): string | undefined => {
  const dir = path.join(parent, ".opencode-kimi-auth")
  fs.mkdirSync(dir, { mode: 0o700 })
  if (spawnSync("chattr", ["+i", dir]).status !== 0) return undefined
  undo.push(() => spawnSync("chattr", ["-i", dir]))
  return dir
}

const canSetpriv = process.getuid?.() === 0 && spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "true"]).status === 0
const canChattr = (() => {
  if (process.platform !== "linux") return false
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-chattr-"))
  const ok = spawnSync("chattr", ["+i", d]).status === 0
  if (ok) spawnSync("chattr", ["-i", d])
  fs.rmSync(d, { recursive: true, force: true })
  return ok
})()

describe("kimi-auth login: the folder is checked before the device flow", () => {
  it.runIf(canChattr)("an immutable storage folder: exit 8 before any request, saying what to fix", async () => {
    const h = home()
    const dir = immutableDir(h)!
    server = await oauthServer()
    const r = await runCli(["login", "--no-browser"], isolatedEnv(h, { KIMI_OAUTH_HOST: server.url, OPENCODE_KIMI_AUTH_DIR: dir }))
    expect(r.code).toBe(8)
    expect(server.requests).toEqual([])
    expect(r.stdout).not.toContain("KIMI-1357")
    expect(r.stderr).toContain(`A Kimi login could not be stored in ${dir}, so the login was not started`)
    expect(r.stderr).toContain("OPENCODE_KIMI_AUTH_DIR")
  })

  it.runIf(canSetpriv)("as an unprivileged user whose storage folder's parent is root's: exit 8 before any request", async () => {
    const h = home()
    fs.chmodSync(h, 0o755)
    server = await oauthServer()
    const env = isolatedEnv(h, { KIMI_OAUTH_HOST: server.url })
    const cli = path.join(process.cwd(), "dist", "cli", "main.js")
    const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, cli, "login", "--no-browser"], {
      env,
      encoding: "utf8",
      timeout: 30_000
    })
    expect(r.status).toBe(8)
    expect(server.requests).toEqual([])
    expect(r.stderr).toContain("so the login was not started")
  })

  it("the folder vanishes while the user approves: the tokens go to a rescue file the error names, and mv restores the login", async () => {
    const h = home()
    const dir = path.join(h, ".opencode-kimi-auth")
    // At the first poll (the user has approved), the storage folder is replaced by a file.
    server = await oauthServer(() => {
      if (fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
        fs.rmSync(dir, { recursive: true, force: true })
        fs.writeFileSync(dir, "in the way")
      }
    })
    const r = await runCli(["login", "--no-browser"], isolatedEnv(h, { KIMI_OAUTH_HOST: server.url, OPENCODE_KIMI_AUTH_DIR: dir }))
    expect(r.code).toBe(8)
    expect(r.stdout + r.stderr).not.toContain("granted-secret")
    expect(r.stderr).toContain("Kimi approved the login, but it could not be saved")
    const rescued = /kept in (\S+oauth\.json)/.exec(r.stderr)?.[1]
    expect(rescued).toBeDefined()
    temps.push(path.dirname(rescued!))
    expect(fs.statSync(rescued!).mode & 0o777).toBe(0o600)
    expect(fs.statSync(path.dirname(rescued!)).mode & 0o777).toBe(0o700)
    const saved = JSON.parse(fs.readFileSync(rescued!, "utf8")) as Record<string, unknown>
    expect(saved["refresh_token"]).toBe("rt-granted-secret")
    // The fix the message gives works: the login is back without a new approval.
    fs.rmSync(dir)
    execFileSync("sh", ["-c", /with: (.*) \(no new login/.exec(r.stderr)![1]!])
    const status = await runCli(["token"], isolatedEnv(h, { KIMI_OAUTH_HOST: server.url, OPENCODE_KIMI_AUTH_DIR: dir }))
    expect(status.code).toBe(0)
    expect(status.stdout.trim()).toBe("at-granted-secret")
  })
})

describe("the facade and the plugin check the folder before the device flow", () => {
  it.runIf(canChattr)("KimiOAuthClient.authorize rejects STORAGE_ERROR with no request sent", async () => {
    const dir = immutableDir(home())!
    server = await oauthServer()
    const client = new KimiOAuthClient({ oauthHost: server.url, storageDir: dir })
    try {
      await expect(client.authorize()).rejects.toMatchObject({ code: "STORAGE_ERROR", message: expect.stringContaining("so the login was not started") })
      expect(server.requests).toEqual([])
    } finally {
      await client.dispose()
    }
  })

  it.runIf(canChattr)("the plugin's startLogin throws before any request", async () => {
    const dir = immutableDir(home())!
    server = await oauthServer()
    const core = makePluginCore({ options: { oauthHost: server.url, storageDir: dir }, region: "mainland-cn", providerId: "kimi-code-plan-cn" })
    try {
      await expect(core.startLogin()).rejects.toThrow(/so the login was not started/)
      expect(server.requests).toEqual([])
    } finally {
      await core.dispose()
    }
  })

  it("the facade's completion names the rescue file when the save fails after approval", async () => {
    const dir = path.join(home(), "store")
    server = await oauthServer(() => {
      if (fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
        fs.rmSync(dir, { recursive: true, force: true })
        fs.writeFileSync(dir, "in the way")
      }
    })
    const client = new KimiOAuthClient({ oauthHost: server.url, storageDir: dir })
    try {
      const session = await client.authorize()
      const failure = await session.waitForCompletion().then(() => undefined, (e: unknown) => e as { code: string; message: string })
      expect(failure?.code).toBe("STORAGE_ERROR")
      expect(failure?.message).toContain("Kimi approved the login")
      const rescued = /kept in (\S+oauth\.json)/.exec(failure!.message)![1]!
      temps.push(path.dirname(rescued))
      expect(JSON.parse(fs.readFileSync(rescued, "utf8"))["access_token"]).toBe("at-granted-secret")
      // And this process keeps serving the new login from memory meanwhile.
      expect(await client.getValidAccessToken()).toBe("at-granted-secret")
    } finally {
      await client.dispose()
    }
  })
})

describe("the messages and the rescue file", () => {
  it("say what happened and what to run", () => {
    expect(cannotStoreMessage("/x", "Cannot create the lock file /x/l (EROFS).")).toBe(
      "A Kimi login could not be stored in /x, so the login was not started (nothing was sent to Kimi and there is " +
        "nothing to approve yet): Cannot create the lock file /x/l (EROFS). To log in, fix that (or set " +
        "OPENCODE_KIMI_AUTH_DIR to a folder you can write), then log in again."
    )
    expect(unsavedLoginMessage("/s/oauth.json", "disk full.", "/tmp/r/oauth.json")).toContain(
      "mkdir -p -m 700 /s && mv /tmp/r/oauth.json /s/oauth.json"
    )
    expect(unsavedLoginMessage("/s/oauth.json", "disk full", undefined)).toContain("could not be kept anywhere else")
  })

  it("the rescue file falls back to the next folder and is 0600", () => {
    const root = home()
    const file = writeRescueFile("{}\n", [path.join(root, "missing", "deeper"), root])!
    expect(path.dirname(path.dirname(file))).toBe(root)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(writeRescueFile("{}\n", [path.join(root, "missing")])).toBeUndefined()
  })
})
