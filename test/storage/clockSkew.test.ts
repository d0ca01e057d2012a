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
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it, onTestFinished } from "vitest"
import { runRefusedFetches, startRefusingApi } from "../support/refusingApi.js"
import { preloadEnv } from "../support/runtime.js"
import { repoRoot } from "../support/tmp.js"
import { storageWithLogin } from "../support/tokens.js"

const MINUTES_5 = 5 * 60_000
const skewed = (offsetMillis: number) => ({
  ...preloadEnv(path.join(repoRoot, "test", "fixtures", "clock-skew.mjs"), "import"),
  KIMI_TEST_CLOCK_OFFSET_MS: String(offsetMillis)
})

describe("an API that refuses every token, processes whose clocks disagree", () => {
  it.each([
    ["ahead and right", [MINUTES_5, 0, MINUTES_5, 0, MINUTES_5, 0]],
    ["behind and right", [-MINUTES_5, 0, -MINUTES_5, 0, -MINUTES_5, 0]],
    ["ahead, right and behind", [MINUTES_5, 0, -MINUTES_5, MINUTES_5, 0, -MINUTES_5]]
  ] as const)("%s: one forced refresh in all", async (_, offsets) => {
    const server = await startRefusingApi()
    // A login issued 100 s ago with 800 s left: not due on any of these clocks, old enough to be refreshed once.
    const dir = storageWithLogin("kimi-skew-", 800)
    onTestFinished(async () => {
      await server.close()
      fs.rmSync(dir, { recursive: true, force: true })
    })
    for (const offset of offsets) {
      // Every request answered (401), never thrown.
      expect((await runRefusedFetches(server.url, dir, 3, skewed(offset))).statuses).toEqual([401, 401, 401])
    }
    expect(server.requests.filter((r) => r.path === "/api/oauth/token")).toHaveLength(1)
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")) as { refresh_token: string }
    expect(onDisk.refresh_token).toBe("rt-1")
  }, 90_000)
})
