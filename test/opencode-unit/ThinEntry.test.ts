/**
 * OpenCode's entries stay light: nothing that `src/opencode/server.ts` (or the
 * OpenCode 2 entry `server-v2.ts`) imports
 * statically (followed through every relative import) reaches `effect` or the
 * Effect core; `PluginCore.ts` is only loaded by a dynamic `import()`. This is
 * what keeps OpenCode's start-up (import, `server()`, `config`) free of Effect
 * (BENCHMARKS.md, "Plugin load"). The bundle is checked the same way.
 *
 * And the layout shows it: every module those entries and the CLI's fast
 * path (`src/cli/main.ts`) reach statically lives in `src/light/` or the
 * entry's own folder, and nothing in `src/light/` imports `effect` or any
 * module outside `src/light/`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../support/cli.js"

/** Static value imports of a TypeScript module (type-only imports and dynamic `import()` excluded). */
const staticImports = (source: string): Array<string> =>
  [...source.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']/gm)].map((m) => m[1]!)

const reachable = (entry: string): Map<string, Array<string>> => {
  const seen = new Map<string, Array<string>>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    const specs = staticImports(fs.readFileSync(file, "utf8"))
    seen.set(file, specs)
    for (const s of specs) if (s.startsWith(".")) visit(path.resolve(path.dirname(file), s.replace(/\.js$/, ".ts")))
  }
  visit(entry)
  return seen
}

const relative = (file: string) => path.relative(repoRoot, file).split(path.sep).join("/")

describe("the light layer", () => {
  it.each([
    ["src/opencode/server.ts", "src/opencode/"],
    ["src/opencode/server-v2.ts", "src/opencode/"],
    ["src/cli/main.ts", "src/cli/"]
  ])("%s reaches statically only src/light/ and its own folder", (entry, own) => {
    const files = [...reachable(path.join(repoRoot, entry)).keys()].map(relative)
    expect(files.length).toBeGreaterThan(1)
    for (const f of files) expect(f.startsWith("src/light/") || f.startsWith(own), `${entry} reaches ${f}`).toBe(true)
  })

  it("src/cli/main.ts reaches its fast paths (token, status, help) and nothing that imports effect", () => {
    const graph = reachable(path.join(repoRoot, "src", "cli", "main.ts"))
    const files = [...graph.keys()].map(relative)
    for (const fast of ["src/cli/FastToken.ts", "src/cli/FastStatus.ts", "src/cli/StatusView.ts", "src/cli/Help.ts", "src/cli/HelpPages.ts", "src/light/LoginState.ts"]) {
      expect(files).toContain(fast)
    }
    expect(files).not.toContain("src/cli/run.ts")
    for (const [file, specs] of graph) {
      for (const s of specs) expect(s.startsWith("effect") || s.startsWith("@effect/"), `${relative(file)} imports ${s}`).toBe(false)
    }
  })

  it("src/light/ imports no effect and nothing outside src/light/ (node: built-ins aside)", () => {
    const dir = path.join(repoRoot, "src", "light")
    const modules = fs.readdirSync(dir).filter((f) => f.endsWith(".ts"))
    expect(modules.length).toBeGreaterThan(3)
    for (const m of modules) {
      const file = path.join(dir, m)
      // Type-only imports count too: a light module must not even name the core's types.
      const specs = [...fs.readFileSync(file, "utf8").matchAll(/^\s*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']/gm)].map((x) => x[1]!)
      for (const s of specs) {
        const ok = s.startsWith("node:") || (s.startsWith("./") && !s.includes("/..") && fs.existsSync(path.join(dir, s.replace(/\.js$/, ".ts"))))
        expect(ok, `src/light/${m} imports ${s}`).toBe(true)
      }
    }
  })
})

describe("the OpenCode entry", () => {
  it.each(["server.ts", "server-v2.ts"])("%s imports no effect and not the core, statically, in the sources", (entry) => {
    const graph = reachable(path.join(repoRoot, "src", "opencode", entry))
    const files = [...graph.keys()].map((f) => path.relative(repoRoot, f))
    expect(files).toContain("src/opencode/KimiPlugin.ts")
    expect(files).not.toContain("src/opencode/PluginCore.ts")
    for (const [file, specs] of graph) {
      for (const s of specs) expect(s.startsWith("effect") || s.startsWith("@effect/"), `${path.relative(repoRoot, file)} imports ${s}`).toBe(false)
    }
    // The core is loaded on first need through LoadCore.ts (both plugins), never imported statically.
    expect(fs.readFileSync(path.join(repoRoot, "src", "opencode", "KimiPlugin.ts"), "utf8")).toContain('import { loadCore } from "./LoadCore.js"')
    expect(fs.readFileSync(path.join(repoRoot, "src", "opencode", "LoadCore.ts"), "utf8")).toMatch(/import\("\.\/PluginCore\.js"\)/)
  })

  it.each(["server.js", "server-v2.js"])("in the bundle, %s and its static chunks are small and the Effect chunk is loaded only by import()", (name) => {
    const dir = path.join(repoRoot, "dist", "bundle")
    const entry = path.join(dir, name)
    expect(fs.existsSync(entry), "run `npm run build` first").toBe(true)
    let bytes = 0
    const seen = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      const text = fs.readFileSync(file, "utf8")
      bytes += text.length
      for (const m of text.matchAll(/(?:^|[;\s}])import\s*(?:[^"'();]*?from\s*)?["'](\.[^"']+)["']/g)) visit(path.resolve(path.dirname(file), m[1]!))
    }
    visit(entry)
    expect(bytes).toBeLessThan(40 * 1024) // the Effect chunk alone is ~200 KiB
    // The core is loaded by import() of a specifier computed at run time (LoadCore.ts): OpenCode 2.1 reads and
    // watches every module a literal import(), dynamic ones included, reaches (NOTES.md §15, "Cost").
    const dynamic = [...seen].flatMap((f) => [...fs.readFileSync(f, "utf8").matchAll(/import\(["'](\.[^"']+)["']\)/g)].map((m) => m[1]!))
    expect(dynamic.filter((d) => /PluginCore|opencode-core/.test(d))).toEqual([])
    const computed = [...seen].filter((f) => fs.readFileSync(f, "utf8").includes('import(new URL("./opencode-core.js",import.meta.url).href)'))
    expect(computed).toHaveLength(1)
    expect(fs.existsSync(path.join(path.dirname(computed[0]!), "opencode-core.js"))).toBe(true)
  })
})
