/**
 * One of each (issue 23): `DEBUG` is parsed in one place, the "below the API
 * base" rule lives in one place, and the "logged out elsewhere" rule in one
 * place, each tested as a table here, and the sources are held to it. Before,
 * `DEBUG` was read by four modules with drifted parsers (the plugins took
 * only commas, the CLI's fast path gave up on any `DEBUG` at all), and the
 * API base check was written out twice.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { debugFromEnv } from "../../src/light/Debug.js"
import { isBelowApiBase, rebased } from "../../src/request/ApiBase.js"
import { removedByLogout } from "../../src/storage/Notes.js"
import { fastToken } from "../../src/cli/FastToken.js"
import { repoRoot } from "../support/cli.js"

const sources = (): Array<[string, string]> => {
  const out: Array<[string, string]> = []
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith(".ts")) out.push([path.relative(repoRoot, p), fs.readFileSync(p, "utf8")])
    }
  }
  walk(path.join(repoRoot, "src"))
  return out
}

describe("one DEBUG parse", () => {
  it.each([
    ["*", true],
    ["opencode-kimi-auth", true],
    ["opencode-kimi-auth:*", true],
    ["other,opencode-kimi-auth", true],
    ["other, opencode-kimi-auth:*", true],
    ["express:* opencode-kimi-auth", true],
    ["", false],
    ["1", false],
    ["other", false],
    ["opencode-kimi-auth-x", false],
    ["opencode-kimi-auth:lock", false]
  ] as const)("DEBUG=%j: %s", (value, on) => {
    expect(debugFromEnv({ DEBUG: value })).toBe(on)
  })

  it("is the only reader of DEBUG in src/", () => {
    const readers = sources().filter(([, text]) => /env\[["']DEBUG["']\]|env\.DEBUG\b/.test(text)).map(([file]) => file)
    expect(readers).toEqual([path.join("src", "light", "Debug.ts")])
  })

  it("the CLI's fast token path leaves to the full command only when DEBUG names this package", () => {
    // The full command would print debug lines then; another package's DEBUG changes nothing it prints.
    const env = { OPENCODE_KIMI_AUTH_DIR: path.join(repoRoot, "does-not-exist") }
    expect(fastToken({ ...env, DEBUG: "opencode-kimi-auth" }, Date.now())).toBeUndefined()
  })
})

describe("one 'below the API base' rule", () => {
  const base = "https://api.kimi.com/coding/v1"
  it.each([
    [base, true],
    [`${base}/chat/completions`, true],
    [`${base}/`, true],
    [`${base}x/chat`, false],
    ["https://api.kimi.com/coding/v2/chat", false],
    ["https://evil.example/coding/v1/chat", false]
  ] as const)("isBelowApiBase(%s) = %s", (url, below) => {
    expect(isBelowApiBase(url, base)).toBe(below)
  })

  it.each([
    [`${base}/chat/completions`, "https://api.kimi.ai/coding/v1/chat/completions"],
    [base, "https://api.kimi.ai/coding/v1"],
    [`${base}x/chat`, undefined],
    ["https://elsewhere.example/v1/models", undefined]
  ] as const)("rebased(%s) = %s", (url, moved) => {
    expect(rebased(url, base, "https://api.kimi.ai/coding/v1")).toBe(moved)
  })

  it("is the only place that writes the rule out", () => {
    const writers = sources().filter(([, text]) => /startsWith\(base\.endsWith\("\/"\)/.test(text)).map(([file]) => file)
    expect(writers).toEqual([path.join("src", "request", "ApiBase.ts")])
  })
})

describe("one 'logged out elsewhere' rule", () => {
  it.each([
    ["the file is there", false, true, false],
    ["the file is gone, the logout recorded this login", true, true, true],
    ["the file is gone, no logout of this login (a move, a crash)", true, false, false]
  ] as const)("%s", (_, fileGone, recorded, removed) => {
    let asked = false
    expect(removedByLogout(fileGone, () => (asked = true, recorded))).toBe(removed)
    // The marker (a file read) is asked only when the token file is gone.
    expect(asked).toBe(fileGone)
  })
})
