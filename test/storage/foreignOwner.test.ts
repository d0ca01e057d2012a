/**
 * A storage folder that belongs to another user: the CLI, run as a third
 * user, says so and how to fix it (`StoragePermissions`), for every command
 * that reads the device id first. Before: "Cannot read the device id …;
 * check the folder's permissions" (issue 22). Needs root, to hand the folder
 * to another user and run the CLI as a third (`setpriv`); skipped otherwise.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { cliPath, repoRoot } from "../support/cli.js"

const hasSetpriv = (() => {
  try {
    execFileSync("setpriv", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()
const asRoot = typeof process.getuid === "function" && process.getuid() === 0 && hasSetpriv

const temps: Array<string> = []
afterEach(() => {
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true })
})
beforeAll(() => {
  if (!fs.existsSync(cliPath)) execFileSync("npm", ["run", "build"], { cwd: repoRoot, stdio: "ignore" })
})

describe.runIf(asRoot)("a storage folder of another user", () => {
  it.each(["status", "token"])("`%s` as a third user says the folder belongs to another user", (command) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-foreign-"))
    temps.push(root)
    fs.chmodSync(root, 0o755)
    const dir = path.join(root, "store")
    fs.mkdirSync(dir, { mode: 0o700 })
    fs.writeFileSync(path.join(dir, "device_id"), "11111111-1111-4111-8111-111111111111\n", { mode: 0o600 })
    fs.writeFileSync(path.join(dir, "oauth.json"), "{}", { mode: 0o600 })
    execFileSync("chown", ["-R", "65534:65534", dir])
    const r = spawnSync("setpriv", ["--reuid", "1234", "--regid", "1234", "--clear-groups", process.execPath, cliPath, command], {
      // BUN_BE_BUN: under OpenCode's Bun, process.execPath is the opencode binary acting as Bun.
      env: { PATH: process.env["PATH"] ?? "", HOME: root, OPENCODE_KIMI_AUTH_DIR: dir, NO_COLOR: "1", ...(process.env["BUN_BE_BUN"] ? { BUN_BE_BUN: "1" } : {}) },
      encoding: "utf8",
      timeout: 20_000
    })
    expect(r.stderr + `(exit ${r.status})`).toContain("(exit 8)")
    expect(r.stderr).toContain(`The storage folder ${dir} belongs to another user (uid 65534)`)
    expect(r.stderr).not.toContain("Cannot read the device id")
  })
})
