/**
 * README's side-by-side with OpenCode 2's built-in Kimi login backs each of
 * its claims with a named test. Every file it names must exist and hold a
 * test of that name (`…` stands for an interpolated part), so a renamed or
 * deleted test cannot leave README citing a proof that is gone.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "./support/cli.js"

const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8")
const heading = "### Beside OpenCode 2's built-in Kimi login"
const at = readme.indexOf(heading)
const section = at === -1 ? "" : readme.slice(at, readme.indexOf("\n### ", at + heading.length))
const rows = section.split("\n").filter((l) => l.startsWith("| **"))

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

describe("README: the side-by-side with OpenCode 2's built-in login", () => {
  it("has its rows: regions, refresh across processes, a 5xx while polling, quota, thinking", () => {
    expect(rows.map((r) => /^\| \*\*([^*]+)\*\*/.exec(r)?.[1])).toEqual([
      "Regions",
      "Refresh across processes",
      "A 5xx while waiting for approval",
      "Quota",
      "Thinking variants"
    ])
  })

  for (const row of rows) {
    const name = /^\| \*\*([^*]+)\*\*/.exec(row)![1]!
    it(`${name}: every test it names exists`, () => {
      const proof = row.split(" | ").at(-1)!
      // Citations are `; `-separated: a file, then the names of its tests in quotes (none: the whole file).
      const cited = proof.replace(/<!--[\s\S]*?-->/g, "").split("; ").map((c) => ({
        file: /`(test\/[^`]+)`/.exec(c)?.[1],
        titles: [...c.matchAll(/"([^"]+)"/g)].map((m) => m[1]!)
      }))
      expect(cited.length).toBeGreaterThan(0)
      for (const { file, titles } of cited) {
        expect(file, `a citation names a test file: ${proof}`).toBeDefined()
        const source = fs.readFileSync(path.join(repoRoot, file!), "utf8")
        for (const title of titles) {
          const pattern = new RegExp(escape(title).replace(/…/g, ".*?"))
          expect(source, `${file} has a test "${title}"`).toMatch(pattern)
        }
      }
    })
  }
})
