/**
 * README's quick start as data: the configuration lines it gives for each
 * OpenCode line, parsed (the `jsonc` blocks under "## Quick start"), with
 * README's placeholder checkout folder replaced by this checkout. The e2e
 * suites load exactly these entries into the real hosts.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { repoRoot } from "./cli.js"

/** README's placeholder for the folder of the checkout. */
export const README_CHECKOUT = "/home/you/src/opencode-kimi-auth"

/** The configuration objects of README's quick start, comments stripped, in order. */
export const quickStartConfigs = (): Array<Record<string, unknown>> => {
  const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8")
  const at = readme.indexOf("## Quick start")
  if (at < 0) throw new Error("README has no '## Quick start' section")
  const end = readme.indexOf("\n## ", at + 1)
  const section = readme.slice(at, end < 0 ? undefined : end)
  return [...section.matchAll(/```jsonc?\n([\s\S]*?)```/g)].map((m) =>
    // A comment starts a line or follows a blank; the `//` of a `file:///` URL inside a string follows a colon.
    JSON.parse(m[1]!.replace(/(^|\s)\/\/.*$/gm, "").trim()) as Record<string, unknown>
  )
}

/** The one plugin entry README gives under `key` (`plugins` for OpenCode 2.1, `plugin` for 1.18), pointed at this checkout (or its `plugin/` folder). */
export const quickStartEntry = (key: "plugins" | "plugin"): string => {
  const configs = quickStartConfigs().filter((c) => key in c)
  if (configs.length !== 1) throw new Error(`README's quick start has ${configs.length} configurations with "${key}"`)
  const config = configs[0]!
  const entries = config[key]
  if (Object.keys(config).length !== 1 || !Array.isArray(entries) || entries.length !== 1 || typeof entries[0] !== "string") {
    throw new Error(`README's quick start "${key}" configuration is not one entry: ${JSON.stringify(config)}`)
  }
  const entry = entries[0]
  if (entry === README_CHECKOUT) return repoRoot
  // OpenCode 2.1's line: the checkout's one-file `plugin/` folder (the host watches the folder it loads, recursively).
  if (entry === `${README_CHECKOUT}/plugin`) return path.join(repoRoot, "plugin")
  if (entry === pathToFileURL(README_CHECKOUT).href) return pathToFileURL(repoRoot).href
  throw new Error(`README's quick start "${key}" entry ${entry} does not name the checkout folder ${README_CHECKOUT}`)
}
