/**
 * The published declarations name no Node type (`NodeJS.*`, `node:*`,
 * `Buffer`): a strict project without `@types/node` cannot resolve them
 * (test/pack/types.test.ts type-checks such projects under TypeScript 5.9 and
 * 7). Every `.d.ts` reachable from package.json's `exports` is read, through
 * relative imports. Quick, so `test:quick` catches what the pack suite would:
 * a `light/` helper typed with `fs.Stats` once reached CI this way.
 *
 * Needs `npm run build` first (`npm test` and `npm run test:quick` do it).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../support/cli.js"

describe("the published declarations", () => {
  /** Every .d.ts reachable from the `types` of package.json's exports, through relative imports. */
  const reachableDeclarations = (): Map<string, string> => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
      readonly exports: Record<string, string | { readonly types?: string }>
    }
    const seen = new Map<string, string>()
    const visit = (file: string) => {
      if (seen.has(file) || !fs.existsSync(file)) return
      const text = fs.readFileSync(file, "utf8")
      seen.set(file, text)
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
        visit(path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, ".d.ts")))
      }
    }
    for (const target of Object.values(pkg.exports)) {
      if (typeof target === "object" && target.types) visit(path.join(repoRoot, target.types))
    }
    return seen
  }

  it("name no Node type: no NodeJS namespace, no node: module, no Buffer", () => {
    const declarations = reachableDeclarations()
    expect(declarations.size).toBeGreaterThan(10)
    const offenders = [...declarations].flatMap(([file, text]) =>
      text
        .split("\n")
        .map((line, i) => ({ line, at: `${path.relative(repoRoot, file)}:${i + 1}` }))
        .filter(({ line }) => !/^\s*(?:\*|\/\/)/.test(line) && /\bNodeJS\.|["']node:[a-z_/]+["']|\bBuffer\b/.test(line))
        .map(({ at, line }) => `${at}: ${line.trim()}`)
    )
    expect(offenders).toEqual([])
  })
})
