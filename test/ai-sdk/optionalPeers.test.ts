/**
 * `ai` and `@ai-sdk/openai-compatible` are optional peers: with them made
 * unresolvable (module hooks, as for a user who never installed them), the
 * package root (the facade), the Effect API, the plugin bundle and the CLI
 * load and work; only the `opencode-kimi-auth/ai-sdk` subpath needs them.
 */
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../support/cli.js"
import { isBun } from "../support/runtime.js"

// Node: module hooks (`--import`); Bun, which has none: a Bun.plugin preload that refuses to load them.
const hide = isBun
  ? ["--preload", path.join(repoRoot, "test", "fixtures", "no-ai-sdk.bun.mjs")]
  : ["--import", path.join(repoRoot, "test", "fixtures", "no-ai-sdk.mjs")]
const node = (code: string) =>
  spawnSync(process.execPath, [...hide, "--input-type=module", "-e", code], { cwd: repoRoot, encoding: "utf8", timeout: 30_000 })

describe("optional AI SDK peers", () => {
  it("the root, the Effect API, the OpenCode bundle and the CLI load without them; the subpath says what is missing", () => {
    const root = node(`const m = await import("opencode-kimi-auth"); console.log(typeof m.KimiOAuthClient, typeof m.KimiAuthError)`)
    expect(root.stderr).toBe("")
    expect(root.stdout).toBe("function function\n")
    const effect = node(`const m = await import("opencode-kimi-auth/effect"); console.log(typeof m.KimiOAuthClient, typeof m.KimiApi.KimiApi)`)
    expect(effect.stderr).toBe("")
    expect(effect.stdout).toBe("function function\n")
    const bundle = node(`const m = await import("opencode-kimi-auth/server"); console.log(typeof m.kimiCodePlanCn.server)`)
    expect(bundle.stdout).toBe("function\n")
    const client = node(`const m = await import("opencode-kimi-auth/client"); console.log(typeof m.KimiOAuthClient)`)
    expect(client.stdout).toBe("function\n")
    const cli = spawnSync(process.execPath, [...hide, path.join(repoRoot, "dist", "cli", "main.js"), "usage", "--help"], { encoding: "utf8", timeout: 30_000 })
    expect(cli.status).toBe(0)
    expect(cli.stdout).toMatch(/usage/)
    const subpath = node(`await import("opencode-kimi-auth/ai-sdk")`)
    expect(subpath.status).not.toBe(0)
    expect(subpath.stderr).toMatch(/Cannot find package '@ai-sdk\/openai-compatible'/)
  })
})
