/**
 * The package as users install it: `npm pack` of the built tree, installed
 * from the tarball into empty folders (the registry serves the peers).
 *
 * - A bundle user: nothing but the package. The footprint stays within the
 *   goal, no runtime dependency is installed, and the facade, the CLI and the
 *   OpenCode entry work (a real device login against the packaged emulator).
 *   The seed's own snippet (`import { KimiOAuthClient } from "opencode-kimi-auth"`,
 *   its constructor options, `authorize()`, `getValidAccessToken()`) runs as
 *   written and type-checks without `skipLibCheck`: the root is the facade.
 * - An Effect user: the package with `effect` and `@effect/platform-node-shared`.
 *   One copy of `effect` (`npm ls effect`), the layers of
 *   `opencode-kimi-auth/effect` compose with the application's effect, errors
 *   are recognised across the bundle and the tsc build, and README's examples
 *   type-check.
 *
 * Needs `npm run build` first (`npm test` does it).
 */
import { execFile, execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { createHash } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { footprint, installInto, megabytes, packTarball } from "../../bench/footprint.mjs"
import { start } from "../../src/emulator/KimiEmulator.js"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const consumers = path.join(repoRoot, "test", "pack", "consumers")
const tsc = path.join(repoRoot, "node_modules", "typescript", "bin", "tsc")
const rootPackage = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
  readonly devDependencies: Record<string, string>
}
const GOAL_MB = 10

let work: string
let tarball: string
const folders: Array<string> = []

beforeAll(() => {
  if (!fs.existsSync(path.join(repoRoot, "dist", "bundle", "server.js"))) throw new Error("run `npm run build` first")
  work = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-auth-pack-"))
  tarball = packTarball(work)
}, 120_000)

afterAll(() => {
  for (const f of [...folders, work]) if (f) fs.rmSync(f, { recursive: true, force: true })
})

const node = (cwd: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, args, { cwd, encoding: "utf8", timeout: 90_000, env: { ...cleanEnv(), ...env } })

const cleanEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" }
  for (const k of ["DEBUG", "KIMI_OAUTH_HOST", "KIMI_CODE_OAUTH_HOST", "KIMI_CODE_BASE_URL", "OPENCODE_KIMI_AUTH_DIR"]) delete env[k]
  return env
}

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split("\n").pop() ?? "null") as Record<string, unknown>

/**
 * Every fenced ```ts block of a document's section under `heading` (up to the next `## `), as modules:
 * README.md's quick example, or docs/api.md, where the facade and Effect examples live.
 */
const readmeBlocks = (heading: string, file = "README.md"): Array<string> => {
  const readme = fs.readFileSync(path.join(repoRoot, file), "utf8")
  const at = readme.indexOf(heading)
  expect(at, `${file} heading ${heading}`).toBeGreaterThanOrEqual(0)
  const end = readme.indexOf("\n## ", at + heading.length)
  const section = readme.slice(at, end === -1 ? undefined : end)
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!)
  expect(blocks.length, `ts blocks under ${heading} in ${file}`).toBeGreaterThan(0)
  return blocks
}

/**
 * Type-checks `sources` as the modules of an application in `folder` (strict,
 * NodeNext, the folder's node_modules, Node's types as a Node application has them).
 * `skipLibCheck: false` also checks the package's declarations: an import they
 * make of a package that is not installed is then an error, not a silent `any`.
 */
const typecheck = (folder: string, sources: ReadonlyArray<string>, { skipLibCheck = true } = {}) => {
  const files = sources.map((source, i) => {
    fs.writeFileSync(path.join(folder, `app${i}.ts`), source)
    return `app${i}.ts`
  })
  fs.writeFileSync(
    path.join(folder, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022", "DOM"],
        typeRoots: [path.join(repoRoot, "node_modules", "@types")],
        types: ["node"],
        strict: true,
        noEmit: true,
        skipLibCheck
      },
      files
    })
  )
  return spawnSync(process.execPath, [tsc, "-p", folder], { cwd: folder, encoding: "utf8", timeout: 120_000 })
}

describe("installed from the tarball, nothing else", () => {
  let folder: string
  let bytes: number
  let diskBytes: number
  let packages: Array<string>
  beforeAll(() => {
    ;({ folder, bytes, diskBytes, packages } = footprint([tarball], { prefix: "kimi-auth-bundle-user-" }))
    folders.push(folder)
  }, 180_000)

  it(`installs no other package, within ${GOAL_MB} MB`, () => {
    expect(packages).toEqual(["opencode-kimi-auth@0.1.0"])
    expect(megabytes(bytes)).toBeLessThanOrEqual(GOAL_MB)
    expect(megabytes(diskBytes)).toBeLessThanOrEqual(GOAL_MB)
    const shipped = fs.readdirSync(path.join(folder, "node_modules", "opencode-kimi-auth", "dist"), { recursive: true }).map(String)
    expect(shipped.filter((f) => f.endsWith(".map") || f.startsWith("demo."))).toEqual([])
    expect(fs.existsSync(path.join(folder, "node_modules", "opencode-kimi-auth", "LICENSE"))).toBe(true)
    // OpenCode 2.1's folder to list (`<package>/plugin`): one file, whose import resolves in the installed package.
    const pluginFolder = path.join(folder, "node_modules", "opencode-kimi-auth", "plugin")
    expect(fs.readdirSync(pluginFolder)).toEqual(["server.js"])
    const loaded = node(folder, ["--input-type=module", "-e", `const m = await import(${JSON.stringify(pathToFileURL(path.join(pluginFolder, "server.js")).href)}); console.log(JSON.stringify({ id: m.default.id, setup: typeof m.default.setup }))`])
    expect(loaded.status, loaded.stderr).toBe(0)
    expect(lastJson(loaded.stdout)).toEqual({ id: "opencode-kimi-auth", setup: "function" })
  })

  it("the facade, the OpenCode entry and the emulator work, then the CLI reads the same login", () => {
    const storage = path.join(folder, "store")
    fs.copyFileSync(path.join(consumers, "bundle-user.mjs"), path.join(folder, "bundle-user.mjs"))
    const res = node(folder, ["bundle-user.mjs", storage])
    expect(res.status, res.stderr.slice(-3000)).toBe(0)
    const out = lastJson(res.stdout)
    expect(out).toMatchObject({
      before: false,
      after: true,
      tokenMatchesFile: true,
      failure: { is: true, instanceOf: true, code: "NOT_LOGGED_IN" },
      pluginId: "opencode-kimi-auth",
      provider: out["apiBaseUrl"],
      chatStatus: 200,
      chatBearerIsToken: true
    })

    // The CLI from node_modules/.bin: --help, status, token (the fresh token on disk).
    const bin = path.join(folder, "node_modules", ".bin", "kimi-auth")
    const env = { ...cleanEnv(), HOME: folder, OPENCODE_KIMI_AUTH_DIR: storage }
    const help = spawnSync(bin, ["--help"], { encoding: "utf8", env, timeout: 30_000 })
    expect(help.status, help.stderr).toBe(0)
    expect(help.stdout).toContain("kimi-auth")
    const status = spawnSync(bin, ["status"], { encoding: "utf8", env, timeout: 30_000 })
    expect(status.status, status.stdout + status.stderr).toBe(0)
    expect(status.stdout).toContain("Logged in")
    const token = spawnSync(bin, ["token"], { encoding: "utf8", env, timeout: 30_000 })
    expect(token.status, token.stderr).toBe(0)
    expect(token.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(storage, "oauth.json"), "utf8")).access_token)
  }, 120_000)

  it("the seed's snippet runs as written: import from the root, its options, authorize(), getValidAccessToken(), and it exits", async () => {
    const emulator = await start({ autoApproveAfterMillis: 200, interval: 1, clientId: "your-client-id" })
    try {
      const tokenFile = path.join(folder, "seed", "oauth.json")
      fs.copyFileSync(path.join(consumers, "seed-user.ts"), path.join(folder, "seed-user.mjs"))
      // Asynchronous: the emulator answers from this process.
      const res = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, ["seed-user.mjs", tokenFile], {
          cwd: folder,
          encoding: "utf8",
          timeout: 90_000,
          env: { ...cleanEnv(), HOME: folder, KIMI_OAUTH_HOST: emulator.oauthHost }
        }, (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }))
        child.stdin?.end()
      })
      expect(res.stderr, res.stderr.slice(-3000)).toBe("")
      expect(res.status).toBe(0)
      const [visit, code] = res.stdout.split("\n")
      expect(visit).toBe(`Visit: ${emulator.oauthHost}/device`)
      expect(code).toMatch(/^Enter code: [A-Z0-9]{4}-[A-Z0-9]{4}$/)
      const stored = JSON.parse(fs.readFileSync(tokenFile, "utf8")) as { readonly access_token: string }
      expect(lastJson(res.stdout)["sha256"]).toBe(createHash("sha256").update(stored.access_token).digest("hex"))
      // The seed's client id reached Kimi; its secret and scopes are accepted and not sent (a public client, no scope).
      const grants = emulator.requests("/api/oauth/device_authorization")
      expect(grants).toHaveLength(1)
      expect(grants[0]!.form).toMatchObject({ client_id: "your-client-id" })
      expect(grants[0]!.form).not.toHaveProperty("client_secret")
    } finally {
      await emulator.close()
    }
  }, 120_000)

  it("the seed's snippet, its OAuthConfig and the facade examples of README and docs/api.md type-check without effect, declarations included", () => {
    const seed = fs.readFileSync(path.join(consumers, "seed-user.ts"), "utf8")
    const types = fs.readFileSync(path.join(consumers, "seed-types.ts"), "utf8")
    const facade = [...readmeBlocks("## From TypeScript"), ...readmeBlocks("## From TypeScript", "docs/api.md")]
    const res = typecheck(folder, [seed, types, ...facade], { skipLibCheck: false })
    expect(res.status, res.stdout + res.stderr).toBe(0)
  }, 120_000)

  it("the Effect API is a subpath that says it needs effect", () => {
    const res = node(folder, ["--input-type=module", "-e", 'await import("opencode-kimi-auth/effect")'])
    expect(res.status).not.toBe(0)
    expect(res.stderr).toMatch(/Cannot find package 'effect'/)
  })
})

describe("an Effect application with its own effect", () => {
  let folder: string
  beforeAll(() => {
    folder = installInto(
      [
        tarball,
        `effect@${rootPackage.devDependencies["effect"]}`,
        `@effect/platform-node-shared@${rootPackage.devDependencies["@effect/platform-node-shared"]}`,
        "--prefer-offline"
      ],
      { prefix: "kimi-auth-effect-user-" }
    )
    folders.push(folder)
  }, 180_000)

  it("has exactly one copy of effect", () => {
    const ls = execFileSync("npm", ["ls", "effect", "--all", "--parseable"], { cwd: folder, encoding: "utf8" })
    const copies = ls.trim().split("\n").filter((l) => /node_modules\/effect$/.test(l))
    expect(copies).toEqual([path.join(fs.realpathSync(folder), "node_modules", "effect")])
  })

  it("opencode-kimi-auth/effect composes with the application's effect; errors are recognised across the root bundle and the tsc build", () => {
    fs.copyFileSync(path.join(consumers, "effect-user.mjs"), path.join(folder, "effect-user.mjs"))
    const res = node(folder, ["effect-user.mjs", path.join(folder, "store")])
    expect(res.status, res.stderr.slice(-3000)).toBe(0)
    const out = lastJson(res.stdout)
    expect(out["tokenLength"]).toBeGreaterThan(0)
    expect(out).toMatchObject({
      layerIsApps: true,
      classesDiffer: true,
      rootIsClient: true,
      bundleErrorSeenByEffectApi: { is: true, instanceOf: true, code: "NOT_LOGGED_IN" },
      effectApiErrorSeenByBundle: { is: true, instanceOf: true, code: "NOT_LOGGED_IN" },
      plainErrorIsNot: false
    })
  }, 120_000)

  it("is tree-shakable (sideEffects: false): a bundle importing only Errors stays small", async () => {
    const esbuild = await import("esbuild")
    fs.writeFileSync(path.join(folder, "errors-only.mjs"), 'import { Errors } from "opencode-kimi-auth/effect"\nconsole.log(Object.keys(Errors))\n')
    const result = await esbuild.build({
      absWorkingDir: folder,
      entryPoints: ["errors-only.mjs"],
      bundle: true,
      write: false,
      platform: "node",
      format: "esm",
      minify: true,
      logLevel: "silent"
    })
    // About 14 KB with the flag; about 200 KB (the whole core and its effect modules) without it.
    expect(result.outputFiles[0]!.contents.length).toBeLessThan(40_000)
  })

  it("docs/api.md's Effect examples type-check", () => {
    const res = typecheck(folder, readmeBlocks("## From Effect", "docs/api.md"))
    expect(res.status, res.stdout + res.stderr).toBe(0)
  }, 120_000)
})

describe("an application on effect 4.0.x", () => {
  // The Effect API needs effect 4.1 (e.g. Semaphore.takeScoped); the bundles carry their own effect and need none.
  const npmInstall = (folder: string, specs: ReadonlyArray<string>) =>
    spawnSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...specs], { cwd: folder, encoding: "utf8", timeout: 120_000 })

  it("with a caret range (^4.0.6): npm moves the app to one copy of effect 4.1", () => {
    const folder = installInto(["effect@^4.0.6", "--prefer-offline"], { prefix: "kimi-auth-effect40-user-" })
    folders.push(folder)
    const res = npmInstall(folder, [tarball])
    expect(res.status, res.stderr).toBe(0)
    const ls = JSON.parse(execFileSync("npm", ["ls", "effect", "--all", "--json"], { cwd: folder, encoding: "utf8" })) as {
      readonly dependencies: Record<string, { readonly version: string }>
    }
    expect(ls.dependencies["effect"]?.version).toMatch(/^4\.(?:[1-9]|\d{2,})\./)
    const copies = execFileSync("npm", ["ls", "effect", "--all", "--parseable"], { cwd: folder, encoding: "utf8" }).trim().split("\n")
    expect(copies.filter((l) => /node_modules\/effect$/.test(l))).toHaveLength(1)
  }, 180_000)

  it("pinned to 4.0.6: refused at install with a peer conflict naming effect ^4.1.0, never given a second copy", () => {
    const folder = installInto(["effect@4.0.6", "--save-exact", "--prefer-offline"], { prefix: "kimi-auth-effect406-user-" })
    folders.push(folder)
    const res = npmInstall(folder, [tarball])
    expect(res.status).not.toBe(0)
    expect(res.stdout + res.stderr).toMatch(/ERESOLVE[\s\S]*peerOptional effect@"\^4\.1\.0" from opencode-kimi-auth/)
    expect(fs.existsSync(path.join(folder, "node_modules", "opencode-kimi-auth"))).toBe(false)
  }, 180_000)
})
