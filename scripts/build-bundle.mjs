#!/usr/bin/env node
// Builds dist/bundle/index.js: the package root (src/index.ts) as one
// tree-shaken, minified ES module with Effect bundled in, for Bun (OpenCode's
// runtime) through the "bun" export condition. OpenCode cannot share its own
// copy of effect with a plugin, and a cold Bun start that resolves and
// evaluates ~200 unbundled Effect modules costs several times what a plugin
// should (BENCHMARKS.md, "Plugin load").
//
// Node and TypeScript users keep dist/index.js (tsc output, with types), which
// shares `effect` with their own application.
//
// Usage: node scripts/build-bundle.mjs [--analyze]
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const outdir = path.join(root, "dist", "bundle")
const outfile = path.join(outdir, "index.js")

// Two entries with code splitting: index.js (the package root) and server.js
// (OpenCode's entry, exports["./server"]: src/opencode/server.ts, which loads
// the Effect core with a dynamic import(), a chunk of its own, on first need).
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { index: path.join(root, "src", "index.ts"), server: path.join(root, "src", "opencode", "server.ts") },
  outdir,
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  treeShaking: true,
  // Every export of the root stays (the full API); only unreachable code goes.
  legalComments: "none",
  sourcemap: false,
  metafile: true,
  logLevel: "warning",
  banner: { js: "// opencode-kimi-auth: bundled build (effect included). Types: dist/index.d.ts, dist/opencode/server.d.ts." }
})
const serverOut = result.metafile.outputs[path.relative(root, path.join(outdir, "server.js"))]

const output = result.metafile.outputs[path.relative(root, outfile)]
const bytes = output?.bytes ?? fs.statSync(outfile).size
fs.writeFileSync(path.join(root, "dist", "bundle", "package.json"), JSON.stringify({ type: "module" }, null, 2) + "\n")

if (process.argv.includes("--analyze") && output) {
  const byPackage = new Map()
  for (const [input, info] of Object.entries(output.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)
    const key = m ? m[1] : "src"
    byPackage.set(key, (byPackage.get(key) ?? 0) + info.bytesInOutput)
  }
  for (const [k, v] of [...byPackage].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(36)} ${(v / 1024).toFixed(1)} KiB`)
}
console.log(`dist/bundle/index.js: ${(bytes / 1024).toFixed(1)} KiB (minified, effect bundled, target node20)`)
if (serverOut) console.log(`dist/bundle/server.js: ${(serverOut.bytes / 1024).toFixed(1)} KiB own, the Effect core in a chunk loaded on first need`)
