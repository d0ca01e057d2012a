#!/usr/bin/env node
// Builds the self-contained entries of the package, after tsc has written
// dist/ (the Effect API, with types). One esbuild run over every entry with
// `splitting: true`, so the entries share chunks (one copy of the Effect core
// in the tarball) and every dynamic import becomes a chunk loaded only when
// reached:
//
//   dist/bundle/server.js    exports["./server"]: the OpenCode plugin (Bun runs it)
//   dist/bundle/server-v2.js exports["./server"] under `bun`: the OpenCode 2 plugin
//   dist/bundle/client.js    exports["."] (and "./client"): the promise facade, KimiOAuthClient
//   dist/bundle/emulator.js  exports["./emulator"]: the local Kimi emulator
//   dist/bundle/ai-sdk.js    exports["./ai-sdk"]: createKimi (its AI SDK peers stay external)
//   dist/bundle/cli.js       the Effect command line (src/cli/run.ts)
//   dist/bundle/chunks/*.js  shared code (effect, the core) and lazy parts
//   dist/cli/main.js         bin kimi-auth (replaces tsc's file of that name): one
//                            file of its own, the effect-free fast path of `token`
//                            inlined, loading dist/bundle/cli.js only when needed
//
// These need no package at run time: `effect` and the platform code are
// inside, so the package root works after a plain `npm install` (optional
// peers are not installed). The Effect API is exports["./effect"]
// (dist/index.js, tsc output) for applications that bring their own `effect`
// (a peer dependency): one copy of it, theirs.
//
// Usage: node scripts/build-bundle.mjs [--analyze]
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const dist = path.join(root, "dist")
const src = (...p) => path.join(root, "src", ...p)

fs.rmSync(path.join(dist, "bundle"), { recursive: true, force: true })

const common = {
  absWorkingDir: root,
  outdir: dist,
  // The AI SDK entry's peers: the application's own copies, never bundled.
  external: ["@ai-sdk/openai-compatible", "ai"],
  bundle: true,
  platform: "node",
  format: "esm",
  // Node 20.19 and Bun; esbuild keeps the entry's `#!/usr/bin/env node` line.
  target: "node20",
  minify: true,
  treeShaking: true,
  legalComments: "none",
  // `ws` (pulled in by the emulator's HTTP server) is CommonJS and calls require(): give ESM output one.
  banner: { js: 'import { createRequire as __kimiCreateRequire } from "node:module"; const require = __kimiCreateRequire(import.meta.url);' },
  sourcemap: false,
  metafile: true,
  logLevel: "warning"
}

const shared = await esbuild.build({
  ...common,
  entryPoints: [
    { in: src("opencode", "server.ts"), out: "bundle/server" },
    { in: src("opencode", "server-v2.ts"), out: "bundle/server-v2" },
    { in: src("promise", "KimiOAuthClient.ts"), out: "bundle/client" },
    { in: src("emulator", "KimiEmulator.ts"), out: "bundle/emulator" },
    { in: src("ai-sdk", "index.ts"), out: "bundle/ai-sdk" },
    { in: src("cli", "run.ts"), out: "bundle/cli" },
    // The OpenCode plugins' core, loaded by src/opencode/LoadCore.ts through a computed specifier.
    { in: src("opencode", "PluginCore.ts"), out: "bundle/chunks/opencode-core" }
  ],
  chunkNames: "bundle/chunks/[name]-[hash]",
  define: { KIMI_BUNDLED_CORE: JSON.stringify("./opencode-core.js") },
  splitting: true
})

// LoadCore's computed specifier must reach the core from wherever esbuild put the loader (a shared chunk).
for (const [file, o] of Object.entries(shared.metafile.outputs)) {
  if (!Object.keys(o.inputs).some((i) => i.endsWith("src/opencode/LoadCore.ts"))) continue
  const target = path.resolve(root, path.dirname(file), "./opencode-core.js")
  if (!fs.existsSync(target)) throw new Error(`${file} holds LoadCore, but ./opencode-core.js from there (${target}) does not exist`)
  if (/import\(["']\.[^"']*PluginCore/.test(fs.readFileSync(path.join(root, file), "utf8"))) throw new Error(`${file} still imports PluginCore by a literal specifier`)
}

// The bin on its own, so `kimi-auth token` reads one small file before it can answer; its
// `import("./run.js")` becomes the shared build's dist/bundle/cli.js.
const bin = await esbuild.build({
  ...common,
  entryPoints: [{ in: src("cli", "main.ts"), out: "cli/main" }],
  plugins: [{
    name: "cli-run-external",
    setup: (build) => build.onResolve({ filter: /^\.\/run\.js$/ }, () => ({ path: "../bundle/cli.js", external: true }))
  }]
})
const result = { metafile: { outputs: { ...shared.metafile.outputs, ...bin.metafile.outputs } } }

// tsc's maps point at ../src, which is not shipped, and the bundles have none: drop them all.
for (const file of fs.readdirSync(dist, { recursive: true })) {
  if (String(file).endsWith(".js.map") || String(file).endsWith(".d.ts.map")) fs.rmSync(path.join(dist, String(file)))
}

const outputs = Object.entries(result.metafile.outputs)
const total = outputs.reduce((n, [, o]) => n + o.bytes, 0)
if (process.argv.includes("--analyze")) {
  for (const [file, o] of outputs.sort((a, b) => b[1].bytes - a[1].bytes)) {
    const byPackage = new Map()
    for (const [input, info] of Object.entries(o.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)
      const key = m ? m[1] : "src"
      byPackage.set(key, (byPackage.get(key) ?? 0) + info.bytesInOutput)
    }
    const parts = [...byPackage].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / 1024).toFixed(1)}`)
    console.log(`  ${file.padEnd(44)} ${(o.bytes / 1024).toFixed(1).padStart(7)} KiB  ${parts.join(", ")}`)
  }
}
console.log(`bundles: ${outputs.length} files, ${(total / 1024).toFixed(1)} KiB (minified, effect included, target node20)`)
