/** `npm run demo` end to end: the built demo exits 0 and tells the whole story, offline, with colour only where wanted. */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "./support/cli.js"
import { hasScript } from "./support/pty.js"

const demo = path.join(repoRoot, "dist", "demo.js")
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** Runs the demo on a pseudo-terminal (util-linux `script`), with `env`; returns what the terminal showed. */
const demoInPty = (env: NodeJS.ProcessEnv) =>
  spawnSync("script", ["-qfec", `exec ${quote(process.execPath)} ${quote(demo)}`, "/dev/null"], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...env, SHELL: "/bin/sh", TERM: "xterm-256color" }
  })

const withoutColourEnv = () => {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env["NO_COLOR"]
  delete env["FORCE_COLOR"]
  return env
}

describe("npm run demo", () => {
  it("logs in on the emulator, chats through the plugin fetch, rotates, thinks, hits the quota; piped: no colour, no token", () => {
    const r = spawnSync(process.execPath, [demo], { encoding: "utf8", timeout: 60_000, env: withoutColourEnv() })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/✓ Logged in to Kimi/)
    expect(r.stdout).toMatch(/HTTP 200: "Hello from the Kimi emulator/)
    expect(r.stdout).toMatch(/HTTP 200 after one 401, one refresh \(1 in all\) and one retry/)
    expect(r.stdout).toMatch(/refresh #[0-9a-f]{8} -> #[0-9a-f]{8} \(rotated/)
    // thinking
    expect(r.stdout).toContain(`the server received thinking {"type":"enabled"}`)
    expect(r.stdout).toMatch(/HTTP 200, \d+ reasoning chunks, then the answer/)
    expect(r.stdout).toMatch(/reasoning: Thinking: the user said "Why is the sky blue\?"/)
    // the quota: Kimi's refusal, shown with its reset, then `kimi-auth usage`
    expect(r.stdout).toMatch(/the next chat: HTTP 403, no refresh, no retry/)
    // The emulator answers the new plans' /usages shape: shares and resets, no counts, and the booster wallet.
    expect(r.stdout).toMatch(/usage limit is used up \(5-hour window: 100% used\); it resets at /)
    expect(r.stdout).toMatch(/You've reached your usage limit/)
    expect(r.stdout).toMatch(/^ {3}│ 5-hour +█{20} 100% +resets .* used up$/m)
    expect(r.stdout).toMatch(/^ {3}│ weekly +░{20} +0% +resets /m)
    expect(r.stdout).toMatch(/^ {3}│ monthly total +░{20} +0% +resets /m)
    expect(r.stdout).toMatch(/^ {3}│ monthly code +░{20} +0% +resets /m)
    expect(r.stdout).toMatch(/^ {3}│ booster wallet: \$12\.50 left of \$20\.00$/m)
    expect(r.stdout).toMatch(/^ {3}│ monthly charge limit: \$17\.50 of \$20\.00 used$/m)
    expect(r.stdout + r.stderr).not.toMatch(/emu_(at|rt|dc)_/)
    // Piped: plain text, as the CLI prints it.
    expect(r.stdout).not.toMatch(/\x1b/)
  })

  it.skipIf(!hasScript)("on a terminal: bold step titles, and none at all with NO_COLOR=1", () => {
    const coloured = demoInPty(withoutColourEnv())
    expect(coloured.status, coloured.stdout).toBe(0)
    expect(coloured.stdout).toMatch(/\x1b\[1m1\. The bundled Kimi emulator/)

    const plain = demoInPty({ ...withoutColourEnv(), NO_COLOR: "1" })
    expect(plain.status, plain.stdout).toBe(0)
    expect(plain.stdout).toMatch(/1\. The bundled Kimi emulator/)
    expect(plain.stdout).not.toMatch(/\x1b/)
  })
})
