/**
 * README and docs/ back their claims with files that exist:
 *
 * - The side-by-side with OpenCode 2's built-in Kimi login (docs/opencode.md)
 *   backs each claim with a named test. Every file it names must exist and
 *   hold a test of that name (`…` stands for an interpolated part), so a
 *   renamed or deleted test cannot leave a citation of a proof that is gone.
 * - Every relative link of README.md, CHANGELOG.md and docs/*.md points at a
 *   file or folder that exists (and, for a heading anchor in a Markdown
 *   file, at a heading that exists); every `test/…`, `src/…`, `examples/…`
 *   or `scripts/…` path quoted in backticks exists.
 * - Every `npm run <script>` they tell people to run is a script of
 *   package.json.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "./support/cli.js"

const read = (file: string) => fs.readFileSync(path.join(repoRoot, file), "utf8")
const docsDir = path.join(repoRoot, "docs")
const docs = fs.existsSync(docsDir) ? fs.readdirSync(docsDir).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`) : []
const documents = ["README.md", "CHANGELOG.md", ...docs]

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Markdown without its fenced code blocks (links and paths inside code are examples, not claims). */
const prose = (text: string) => text.replace(/^```[\s\S]*?^```/gm, "")

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string): string =>
  heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-")

const anchorsOf = (markdown: string): Set<string> => {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const m of prose(markdown).matchAll(/^#{1,6}\s+(.+)$/gm)) {
    const base = slug(m[1]!)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

describe("docs/opencode.md: the side-by-side with OpenCode 2's built-in login", () => {
  const page = read("docs/opencode.md")
  const heading = "## Beside OpenCode 2's built-in Kimi login"
  const at = page.indexOf(heading)
  const next = page.indexOf("\n## ", at + heading.length)
  const section = at === -1 ? "" : page.slice(at, next === -1 ? undefined : next)
  const rows = section.split("\n").filter((l) => l.startsWith("| **"))

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
        const source = read(file!)
        for (const title of titles) {
          const pattern = new RegExp(escape(title).replace(/…/g, ".*?"))
          expect(source, `${file} has a test "${title}"`).toMatch(pattern)
        }
      }
    })
  }
})

describe("README, CHANGELOG and docs/: what they point at exists", () => {
  it("docs/ holds the pages README's contents name", () => {
    const wanted = ["opencode", "cli", "api", "safety", "platforms", "faults", "architecture", "troubleshooting"]
    expect(docs).toEqual(expect.arrayContaining(wanted.map((n) => `docs/${n}.md`)))
  })

  for (const doc of documents) {
    it(`${doc}: every relative link resolves, anchors included`, () => {
      const text = prose(read(doc))
      const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!)
      const broken: Array<string> = []
      for (const link of links) {
        if (/^[a-z]+:/i.test(link)) continue // https:, mailto:
        const [target, anchor] = link.split("#") as [string, string | undefined]
        const file = target === "" ? doc : path.normalize(path.join(path.dirname(doc), target))
        if (!fs.existsSync(path.join(repoRoot, file))) {
          broken.push(`${link} (no ${file})`)
          continue
        }
        if (anchor !== undefined && anchor !== "" && file.endsWith(".md") && !anchorsOf(read(file)).has(anchor)) {
          broken.push(`${link} (no heading #${anchor} in ${file})`)
        }
      }
      expect(broken, `${doc} links to what is not there`).toEqual([])
    })

    it(`${doc}: every quoted repository path exists`, () => {
      const text = prose(read(doc))
      const paths = [...text.matchAll(/`((?:test|src|examples|scripts|bench)\/[^`\s*<>…]+)`/g)].map((m) => m[1]!)
      const missing = paths.filter((p) => !fs.existsSync(path.join(repoRoot, p)))
      expect(missing, `${doc} names paths that do not exist`).toEqual([])
    })

    it(`${doc}: every npm script it names is in package.json`, () => {
      const scripts = Object.keys((JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts)
      const text = read(doc)
      const named = [
        ...[...text.matchAll(/\bnpm run ([a-z][\w:-]*)/g)].map((m) => m[1]!),
        ...(/\bnpm test\b/.test(text) ? ["test"] : [])
      ]
      expect(named.filter((s) => !scripts.includes(s)), `${doc} names scripts package.json lacks`).toEqual([])
    })
  }

  it("README: under 3,000 words, and the quick start in its first 40 lines", () => {
    const readme = read("README.md")
    expect(readme.split(/\s+/).filter((w) => w.length > 0).length).toBeLessThan(3000)
    const first40 = readme.split("\n").slice(0, 40).join("\n")
    for (const step of ["npm install && npm run build", '"plugins"', '"plugin"', "/connect", "--method kimi-device", "kimi-auth login", "npm run demo"]) {
      expect(first40, `the quick start names ${step}`).toContain(step)
    }
  })
})
