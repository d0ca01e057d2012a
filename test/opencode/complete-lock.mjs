#!/usr/bin/env node
// Adds lock entries for the opencode-ai platform packages that npm left out.
//
// Why: opencode-ai lists 12 platform binaries as optionalDependencies. When the
// registry a lock is made against does not serve some of them (the mirror on
// these machines only serves opencode-linux-x64 and -baseline), npm writes a lock
// without them, and `npm ci` then refuses the lock on every platform with
// "Missing: opencode-darwin-arm64@ from lock file". A stub entry (version, os,
// cpu, libc, optional, no integrity) satisfies `npm ci`; npm skips it on other
// platforms and fetches it by version on its own platform.
//
// Usage: node test/opencode/complete-lock.mjs [path/to/package-lock.json ...]
// (default: the fixture lock beside this file). Idempotent; `npm install`
// keeps the stubs, deleting and regenerating the lock drops them.
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const files = process.argv.slice(2)
if (files.length === 0) files.push(path.join(here, "fixture", "package-lock.json"))

for (const file of files) {
  const lock = JSON.parse(fs.readFileSync(file, "utf8"))
  const packages = lock.packages ?? {}
  let added = 0
  for (const [key, entry] of Object.entries(packages)) {
    if (!/(^|\/)node_modules\/opencode-ai$/.test(key)) continue
    const base = key.slice(0, -"opencode-ai".length)
    for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
      const stubKey = base + name
      if (packages[stubKey]) continue
      const m = /^opencode-(darwin|linux|windows)-(x64|arm64)(-baseline)?(-musl)?$/.exec(name)
      if (!m) throw new Error(`${file}: unknown opencode platform package ${name}`)
      const stub = {
        version,
        cpu: [m[2]],
        ...(entry.dev ? { dev: true } : {}),
        ...(m[4] ? { libc: ["musl"] } : {}),
        optional: true,
        os: [m[1] === "windows" ? "win32" : m[1]]
      }
      packages[stubKey] = stub
      added++
    }
  }
  lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)))
  fs.writeFileSync(file, JSON.stringify(lock, null, 2) + "\n")
  console.log(`${file}: added ${added} stub entr${added === 1 ? "y" : "ies"}`)
}
