/**
 * Clocks that disagree between processes must not defeat the one forced
 * refresh a minute (the forced-refresh note, `Notes.forcedRefreshSeen`). An
 * API that refuses every token; processes one after another, their wall
 * clocks 5 minutes ahead, right, or 5 minutes behind (as on another machine
 * sharing the folder, or a VM whose clock drifted). Before: each process saw
 * the other's forced refresh, and the token it issued, as "in the future" or
 * "5 minutes old", and refreshed again: one rotation per process (hunt case
 * 7). Real child processes (the built facade) against a loopback server.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { preloadEnv } from "../support/runtime.js"
import { startScriptedServer, type ScriptedServer } from "../support/scriptedServer.js"
import { repoRoot, spawnNode } from "../support/tmp.js"
import { storageWithLogin } from "../support/tokens.js"

let server: ScriptedServer | undefined
const temps: Array<string> = []
afterEach(async () => {
  await server?.close()
  server = undefined
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true })
})

const MINUTES_5 = 5 * 60_000

describe("an API that refuses every token, processes whose clocks disagree", () => {
  it.each([
    ["ahead and right", [MINUTES_5, 0, MINUTES_5, 0, MINUTES_5, 0]],
    ["behind and right", [-MINUTES_5, 0, -MINUTES_5, 0, -MINUTES_5, 0]],
    ["ahead, right and behind", [MINUTES_5, 0, -MINUTES_5, MINUTES_5, 0, -MINUTES_5]]
  ] as const)("%s: one forced refresh in all", async (_, offsets) => {
    const dist = path.join(repoRoot, "dist")
    let n = 0
    server = await startScriptedServer((req) => {
      if (req.path === "/api/oauth/token") {
        n++
        return { status: 200, body: { access_token: `at-${n}`, refresh_token: `rt-${n}`, expires_in: 900, token_type: "Bearer" } }
      }
      return { status: 401, body: { error: { message: "invalid token", type: "invalid_authentication_error" } } }
    })
    // A login issued 100 s ago with 800 s left: not due on any of these clocks, old enough to be refreshed once.
    const dir = storageWithLogin("kimi-skew-", 800)
    temps.push(dir)
    const url = server.url
    for (const offset of offsets) {
      const env = {
        ...preloadEnv(path.join(repoRoot, "test", "fixtures", "clock-skew.mjs"), "import"),
        KIMI_TEST_CLOCK_OFFSET_MS: String(offset)
      }
      const output = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const child = yield* spawnNode(path.join(repoRoot, "test", "fixtures", "refused-fetches.mjs"), [dist, url, dir, "3"], env)
        yield* child.exited
        return child.output()
      })))
      const result = JSON.parse(output.trim().split("\n").pop()!) as { statuses: Array<unknown> }
      // Every request answered (401), never thrown.
      expect(result.statuses).toEqual([401, 401, 401])
    }
    expect(server.requests.filter((r) => r.path === "/api/oauth/token")).toHaveLength(1)
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")) as { refresh_token: string }
    expect(onDisk.refresh_token).toBe("rt-1")
  }, 90_000)
})
