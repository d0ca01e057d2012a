/**
 * `kimi-auth help [command|topic]`, `--help`, `<command> --help`, `version`
 * and `--version`, as real child processes: short pages (a summary, usage,
 * flags, examples), the exit codes and the completions' installation on
 * their own pages, the package's version, and the commands written as the
 * person runs them (`npx kimi-auth` after a local install). Each command's
 * page names exactly the flags the Effect command line accepts.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ExitCode } from "../../src/cli/ExitCode.js"
import { COMMAND_PAGES } from "../../src/cli/HelpPages.js"
import { cliPath, isolatedEnv, makeTemp, repoRoot, rmTemp, runCli, runScript } from "../support/cli.js"

const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string }).version
const commands = Object.keys(COMMAND_PAGES)

let home: string
let env: NodeJS.ProcessEnv
beforeAll(() => {
  home = makeTemp("kimi-help-")
  env = isolatedEnv(home)
})
afterAll(() => rmTemp(home))

const lines = (s: string) => s.trimEnd().split("\n")

describe("kimi-auth help", () => {
  it.each([["help"], ["--help"], ["-h"]])("%s: the short root page, exit 0", async (arg) => {
    const r = await runCli([arg], env)
    expect(r.code).toBe(0)
    expect(r.stderr).toBe("")
    expect(r.stdout.split("\n")[0]).toBe(`kimi-auth ${version}: log in to Kimi (Kimi For Coding) with the OAuth device flow; the tokens stay fresh.`)
    expect(r.stdout).toContain("Usage: kimi-auth <command> [flags]")
    for (const c of commands) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, "m"))
    expect(r.stdout).toContain("kimi-auth help exit-codes")
    expect(r.stdout).toContain("kimi-auth help completions")
    // Short and scannable: no wall of exit codes, no line longer than a wide terminal.
    expect(r.stdout).not.toMatch(/130 interrupted/)
    expect(lines(r.stdout).length).toBeLessThanOrEqual(30)
    for (const l of lines(r.stdout)) expect(l.length).toBeLessThanOrEqual(120)
  })

  it("no command: the root page, exit 2 (a usage error)", async () => {
    const r = await runCli([], env)
    expect(r.code).toBe(ExitCode.usage)
    expect(r.stdout).toContain("Usage: kimi-auth <command> [flags]")
  })

  it.each(commands)("help %s and <command> --help: the same short page", async (c) => {
    const [a, b, c2] = await Promise.all([runCli(["help", c], env), runCli([c, "--help"], env), runCli([c, "-h"], env)])
    expect(a.code).toBe(0)
    expect(a.stderr).toBe("")
    expect(b.stdout).toBe(a.stdout)
    expect(c2.stdout).toBe(a.stdout)
    expect(a.stdout.split("\n")[0]).toBe(`kimi-auth ${c}: ${COMMAND_PAGES[c as keyof typeof COMMAND_PAGES].summary}`)
    expect(a.stdout).toContain(`Usage: kimi-auth ${c} `)
    expect(a.stdout).toContain("Flags:")
    expect(a.stdout).toMatch(/Examples:\n {2}# .+\n {2}.*kimi-auth /)
    expect(lines(a.stdout).length).toBeLessThanOrEqual(30)
  })

  it("help exit-codes: every exit code on its own page", async () => {
    const r = await runCli(["help", "exit-codes"], env)
    expect(r.code).toBe(0)
    for (const code of Object.values(ExitCode)) expect(r.stdout).toMatch(new RegExp(`^ +${code}  \\S`, "m"))
  })

  it("help completions: how to install them for bash, zsh and fish", async () => {
    const r = await runCli(["help", "completions"], env)
    expect(r.code).toBe(0)
    for (const shell of ["bash", "zsh", "fish"]) expect(r.stdout).toMatch(new RegExp(`^ +${shell}: .*kimi-auth --completions ${shell} > `, "m"))
    // The command it names prints a script.
    const script = await runCli(["--completions", "bash"], env)
    expect(script.code).toBe(0)
    expect(script.stdout).toContain("kimi-auth")
    // It completes every command the root page lists, help and version included.
    const words = /compgen -W '([^']*)'/.exec(script.stdout)?.[1]?.split(" ") ?? []
    expect(words).toEqual(["login", "accounts", "switch", "status", "token", "usage", "logout", "emulator", "help", "version"])
    const fish = await runCli(["--completions", "fish"], env)
    for (const c of ["help", "version"]) expect(fish.stdout).toContain(`-n '__fish_use_subcommand' -f -a '${c}'`)
  })

  it("help environment names the variables", async () => {
    const r = await runCli(["help", "environment"], env)
    for (const v of ["OPENCODE_KIMI_AUTH_DIR", "KIMI_OAUTH_HOST", "KIMI_CODE_BASE_URL", "DEBUG"]) expect(r.stdout).toContain(v)
  })

  it("help of something unknown: exit 2, what exists on stderr", async () => {
    const r = await runCli(["help", "lgoin"], env)
    expect(r.code).toBe(ExitCode.usage)
    expect(r.stdout).toBe("")
    expect(r.stderr).toContain('no command or topic "lgoin"')
    expect(r.stderr).toContain("login")
  })
})

describe("kimi-auth version", () => {
  it.each([["version"], ["--version"], ["-v"]])("%s prints the package's version, exit 0", async (arg) => {
    const r = await runCli([arg], env)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(`kimi-auth v${version}\n`)
  })

  it("the Effect command line prints the same version", async () => {
    const r = await runCli(["--version", "--debug"], env)
    // `--debug` beside `--version` is not the fast path's: effect/cli answers it.
    expect(r.stdout).toContain(`v${version}`)
  })
})

/** The long flags in the FLAGS section of `effect/cli`'s page (the bundle's `runCli`, no fast path). */
const effectFlags = (page: string): Set<string> => {
  const section = page.split(/^FLAGS$/m)[1]?.split(/^[A-Z ]+$/m)[0] ?? ""
  return new Set([...section.matchAll(/^ {2}(--[a-z0-9-]+)/gm)].map((m) => m[1]!))
}

describe("each page names the flags the command accepts", () => {
  let full: string
  beforeAll(() => {
    full = path.join(home, "full.mjs")
    fs.writeFileSync(full, `import { runCli } from ${JSON.stringify(path.join(repoRoot, "dist", "bundle", "cli.js"))}\nrunCli()\n`)
  })
  const runFull = async (args: ReadonlyArray<string>): Promise<string> => (await runScript(full, args, env)).stdout

  it.each(commands)("%s", async (c) => {
    const [ours, theirs] = await Promise.all([runCli(["help", c], env), runFull([c, "--help"])])
    const named = new Set([...ours.stdout.matchAll(/--[a-z0-9-]+/g)].map((m) => m[0]).filter((f) => f !== "--no-browser"))
    const accepted = effectFlags(theirs)
    expect(accepted.size).toBeGreaterThan(0)
    expect([...named].filter((f) => !accepted.has(f) && f !== "--completions")).toEqual([])
    expect([...accepted].filter((f) => !named.has(f))).toEqual([])
  })
})

describe("after a local install (no kimi-auth on PATH)", () => {
  let bin: string
  let localEnv: NodeJS.ProcessEnv
  beforeAll(() => {
    // The package as npm lays it out in a project: its bin runs from node_modules, and PATH has only node.
    const pkg = path.join(home, "project", "node_modules", "opencode-kimi-auth")
    fs.mkdirSync(path.join(pkg, "dist", "cli"), { recursive: true })
    fs.copyFileSync(cliPath, path.join(pkg, "dist", "cli", "main.js"))
    fs.copyFileSync(path.join(repoRoot, "package.json"), path.join(pkg, "package.json"))
    bin = path.join(pkg, "dist", "cli", "main.js")
    localEnv = { ...env, PATH: path.dirname(process.execPath) }
  })
  const runLocal = (args: ReadonlyArray<string>) => runScript(bin, args, localEnv)

  it("the pages name `npx kimi-auth`", async () => {
    const [root, status, completions] = await Promise.all([runLocal(["--help"]), runLocal(["help", "status"]), runLocal(["help", "completions"])])
    expect(root.stdout).toContain("Usage: npx kimi-auth <command> [flags]")
    expect(root.stdout).not.toMatch(/(?<!npx )kimi-auth (login|status|help)/)
    expect(status.stdout).toContain("Usage: npx kimi-auth status ")
    expect(completions.stdout).toContain("npx kimi-auth --completions bash > ")
  })

  it("status without a login names `npx kimi-auth login`", async () => {
    const storage = localEnv["OPENCODE_KIMI_AUTH_DIR"]!
    fs.mkdirSync(storage, { recursive: true, mode: 0o700 })
    fs.writeFileSync(path.join(storage, "device_id"), "0f0e0d0c-0b0a-4909-8807-060504030201\n", { mode: 0o600 })
    const r = await runLocal(["status"])
    expect(r.code).toBe(ExitCode.notLoggedIn)
    expect(r.stdout).toContain("Not logged in to Kimi. Run npx kimi-auth login.")
  })
})
