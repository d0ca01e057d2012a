/**
 * The package's declarations as users type-check them: strict projects under
 * TypeScript 5.9 (the repository's) and npm's latest TypeScript (7.x, whose
 * `types` default is `[]`), with and without `@types/node`. The seed README's
 * snippet against the package root, and the Effect snippet against
 * `opencode-kimi-auth/effect` with the application's own `effect`. That the
 * public declarations name no Node type is checked, faster and in
 * `test:quick` too, by test/edge/PublishedDeclarations.test.ts.
 *
 * Needs `npm run build` first (`npm test` does it).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { installInto, packTarball } from "../../bench/footprint.mjs"
import { repoRoot } from "../support/cli.js"

const consumers = path.join(repoRoot, "test", "pack", "consumers")
const rootPackage = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
  readonly devDependencies: Record<string, string>
}

/** The two compilers: the repository's (5.9) and npm's `latest`, installed once into a cached folder. */
const compilers: Array<{ readonly name: string; bin: string }> = [
  { name: "TypeScript 5.9", bin: path.join(repoRoot, "node_modules", "typescript", "bin", "tsc") },
  { name: "TypeScript latest", bin: "" }
]

/** How a project has Node's types: none installed; installed and named in `types`; installed, `types` left out. */
const nodeTypes = ["without @types/node", "with @types/node in types", "with @types/node installed, types unset"] as const
type NodeTypes = (typeof nodeTypes)[number]

let work: string
const folders: Array<string> = []
let bundleUser: string
let effectUser: string

const latestCompiler = (): string => {
  const dir = path.join(os.tmpdir(), "opencode-kimi-auth-typescript-latest")
  const bin = path.join(dir, "node_modules", "typescript", "bin", "tsc")
  // Refreshed once a day: "latest" moves.
  const fresh = fs.existsSync(bin) && Date.now() - fs.statSync(bin).mtimeMs < 86_400_000
  if (!fresh) installInto(["typescript@latest", "--prefer-online"], { dir: fs.mkdirSync(dir, { recursive: true }) ?? dir })
  return bin
}

beforeAll(() => {
  if (!fs.existsSync(path.join(repoRoot, "dist", "bundle", "client.js"))) throw new Error("run `npm run build` first")
  compilers[1]!.bin = latestCompiler()
  work = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-auth-types-"))
  const tarball = packTarball(work)
  bundleUser = installInto([tarball, "--prefer-offline"], { prefix: "kimi-auth-types-bundle-" })
  effectUser = installInto(
    [
      tarball,
      `effect@${rootPackage.devDependencies["effect"]}`,
      `@effect/platform-node-shared@${rootPackage.devDependencies["@effect/platform-node-shared"]}`,
      "--prefer-offline"
    ],
    { prefix: "kimi-auth-types-effect-" }
  )
  folders.push(bundleUser, effectUser)
}, 300_000)

afterAll(() => {
  for (const f of [...folders, work]) if (f) fs.rmSync(f, { recursive: true, force: true })
})

/** A project folder beside `installed` (its node_modules linked), set up for `types`, holding `sources`. */
const project = (installed: string, sources: ReadonlyArray<string>, types: NodeTypes, skipLibCheck: boolean): string => {
  const folder = fs.mkdtempSync(path.join(work, "project-"))
  fs.writeFileSync(path.join(folder, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
  fs.mkdirSync(path.join(folder, "node_modules"))
  for (const entry of fs.readdirSync(path.join(installed, "node_modules"))) {
    if (entry === "@types") continue
    fs.symlinkSync(path.join(installed, "node_modules", entry), path.join(folder, "node_modules", entry))
  }
  if (types !== "without @types/node") {
    fs.mkdirSync(path.join(folder, "node_modules", "@types"))
    fs.symlinkSync(path.join(repoRoot, "node_modules", "@types", "node"), path.join(folder, "node_modules", "@types", "node"))
  }
  const files = sources.map((source, i) => {
    fs.writeFileSync(path.join(folder, `app${i}.ts`), source)
    return `app${i}.ts`
  })
  const compilerOptions: Record<string, unknown> = {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2022", "DOM"],
    strict: true,
    noEmit: true,
    skipLibCheck
  }
  if (types === "without @types/node") compilerOptions["types"] = []
  if (types === "with @types/node in types") compilerOptions["types"] = ["node"]
  fs.writeFileSync(path.join(folder, "tsconfig.json"), JSON.stringify({ compilerOptions, files }))
  return folder
}

const check = (bin: string, folder: string) => {
  const res = spawnSync(process.execPath, [bin, "-p", folder], { cwd: folder, encoding: "utf8", timeout: 180_000 })
  return { status: res.status, output: `${res.stdout}${res.stderr}` }
}

/** README's Effect snippets (the blocks that import `opencode-kimi-auth/effect`), from README and docs/. */
const effectSnippets = (): Array<string> => {
  const texts = [path.join(repoRoot, "README.md"), ...docsFiles()].map((f) => fs.readFileSync(f, "utf8"))
  const blocks = texts.flatMap((t) => [...t.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!))
  return blocks.filter((b) => b.includes('from "opencode-kimi-auth/effect"'))
}

const docsFiles = (): Array<string> => {
  const dir = path.join(repoRoot, "docs")
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".md")).map((f) => path.join(dir, f)) : []
}

describe.each(compilers)("$name", (compiler) => {
  it.each(nodeTypes)("the seed's snippet type-checks against the package root, declarations included, %s", (types) => {
    const folder = project(bundleUser, [fs.readFileSync(path.join(consumers, "seed-snippet.ts"), "utf8")], types, false)
    const res = check(compiler.bin, folder)
    expect(res.output).toBe("")
    expect(res.status).toBe(0)
  }, 180_000)

  it.each(nodeTypes)("the Effect snippets type-check against opencode-kimi-auth/effect, %s", (types) => {
    const snippets = effectSnippets()
    expect(snippets.length).toBeGreaterThan(0)
    // skipLibCheck as `tsc --init` sets it: effect's own declarations are effect's business, ours are checked
    // through what the snippets use (an unresolvable `node:*` or `NodeJS` in them still fails).
    const folder = project(effectUser, snippets, types, true)
    const res = check(compiler.bin, folder)
    expect(res.output).toBe("")
    expect(res.status).toBe(0)
  }, 180_000)
})
