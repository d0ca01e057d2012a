/** `npm run demo` end to end: the built demo exits 0 and tells the whole story, offline. */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "./support/cli.js"

describe("npm run demo", () => {
  it("logs in on the emulator, chats through the plugin fetch, rotates on a forced refresh, and prints no token", () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, "dist", "demo.js")], { encoding: "utf8", timeout: 60_000 })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/✓ Logged in to Kimi/)
    expect(r.stdout).toMatch(/HTTP 200: "Hello from the Kimi emulator/)
    expect(r.stdout).toMatch(/HTTP 200 after one 401, one refresh \(1 in all\) and one retry/)
    expect(r.stdout).toMatch(/refresh #[0-9a-f]{8} -> #[0-9a-f]{8} \(rotated/)
    expect(r.stdout + r.stderr).not.toMatch(/emu_(at|rt|dc)_/)
  })
})
