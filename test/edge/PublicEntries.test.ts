/**
 * What the Effect entry (`opencode-kimi-auth/effect`, src/index.ts) offers:
 * its services, layers, errors and their options, never a module's decisions.
 * Decisions live in each module's own `*Decisions.ts` (named pure functions,
 * tested as tables) and stay internal, as Effect keeps `internal/`: a
 * namespace of the entry that re-exported one would make it public API.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Entry from "../../src/index.js"
import { repoRoot } from "../support/cli.js"

/** Every `*Decisions.ts` under src/. */
const decisionModules = (): Array<string> =>
  fs.readdirSync(path.join(repoRoot, "src"), { recursive: true }).map(String).filter((f) => f.endsWith("Decisions.ts"))

/** Exported on purpose although defined beside the decisions: an option's type that a user constructs. */
const ALLOWED = new Set(["HeldBackRefreshTokens", "mayHaveRotated" /* Errors.answerMayBeLost under its decision name */])

describe("the Effect entry", () => {
  it("re-exports no decision of any *Decisions.ts module", async () => {
    const modules = decisionModules()
    expect(modules.length).toBeGreaterThan(4)
    const decisions = new Map<unknown, string>()
    for (const m of modules) {
      const mod = (await import(path.join(repoRoot, "src", m))) as Record<string, unknown>
      for (const [name, value] of Object.entries(mod)) {
        if (!ALLOWED.has(name) && (typeof value === "function" || typeof value === "object")) decisions.set(value, `${m}#${name}`)
      }
    }
    const leaks: Array<string> = []
    for (const [ns, members] of Object.entries(Entry)) {
      if (typeof members !== "object" || members === null) continue
      for (const [name, value] of Object.entries(members)) {
        const from = decisions.get(value)
        if (from !== undefined) leaks.push(`${ns}.${name} (${from})`)
      }
    }
    expect(leaks).toEqual([])
  })
})
