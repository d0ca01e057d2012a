// Install footprint: `npm pack` of this package, installed into an empty
// folder as a user installs it, and the size of what lands in node_modules.
// Used by `npm run bench` (beside the lightest peer) and by test/pack.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const quiet = ["--no-audit", "--no-fund", "--loglevel=error"]

/** `npm pack` of the repository (built first by the caller; `--ignore-scripts`: `prepare` would rebuild dist/ under the running tests) into `dir`; returns the tarball's path. */
export const packTarball = (dir) => {
  const out = execFileSync(npm, ["pack", "--json", "--ignore-scripts", "--pack-destination", dir], { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  return path.join(dir, JSON.parse(out)[0].filename)
}

/** A fresh folder with an empty ESM package.json and `npm install <specs…>` run in it. */
export const installInto = (specs, { prefix = "kimi-auth-install-", dir } = {}) => {
  const folder = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.writeFileSync(path.join(folder, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2) + "\n")
  execFileSync(npm, ["install", ...quiet, ...specs], { cwd: folder, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  return folder
}

/** Bytes of every file under `dir` (apparent size, symlinks not followed). */
export const treeBytes = (dir) => tree(dir).bytes

/** Apparent bytes and bytes on disk (allocated blocks, what `du` shows) of every file under `dir`. */
export const tree = (dir) => {
  let bytes = 0
  let diskBytes = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const st = fs.statSync(path.join(entry.parentPath ?? entry.path, entry.name))
    bytes += st.size
    diskBytes += st.blocks * 512
  }
  return { bytes, diskBytes }
}

/** The packages npm installed in `folder` (name@version, from `npm ls --all`), the root excluded. */
export const installedPackages = (folder) => {
  const lock = JSON.parse(fs.readFileSync(path.join(folder, "node_modules", ".package-lock.json"), "utf8"))
  return Object.entries(lock.packages)
    .filter(([p]) => p.startsWith("node_modules/"))
    .map(([p, info]) => `${p.replace(/^.*node_modules\//, "")}@${info.version}`)
    .sort()
}

/** The footprint of `npm install <specs>` into an empty folder: bytes of node_modules (apparent, on disk) and the packages. */
export const footprint = (specs, options) => {
  const folder = installInto(specs, options)
  return { folder, ...tree(path.join(folder, "node_modules")), packages: installedPackages(folder) }
}

export const megabytes = (bytes) => bytes / 1e6
