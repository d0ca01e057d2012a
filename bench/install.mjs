// Install footprint: `npm install` of the packed package into an empty folder
// (what OpenCode does for every user) beside the lightest peer,
// opencode-anthropic-auth at the version pinned in bench/fixture. Uses the
// npm registry (the peer's dependencies; npm's cache when warm).
import * as fs from "node:fs"
import * as path from "node:path"
import { footprint, megabytes, packTarball } from "./footprint.mjs"
import { fixtureDir, fmt, tempDir } from "./lib.mjs"

export const runInstall = async () => {
  const work = tempDir("kimi-bench-install-")
  const peerVersion = JSON.parse(fs.readFileSync(path.join(fixtureDir, "package.json"), "utf8")).devDependencies["opencode-anthropic-auth"]
  try {
    const ours = footprint([packTarball(work)], { prefix: "kimi-bench-install-ours-" })
    const peer = footprint([`opencode-anthropic-auth@${peerVersion}`], { prefix: "kimi-bench-install-peer-" })
    for (const f of [ours.folder, peer.folder]) fs.rmSync(f, { recursive: true, force: true })
    const result = {
      ours: { megabytes: megabytes(ours.bytes), diskMegabytes: megabytes(ours.diskBytes), packages: ours.packages },
      peer: {
        name: `opencode-anthropic-auth@${peerVersion}`,
        megabytes: megabytes(peer.bytes),
        diskMegabytes: megabytes(peer.diskBytes),
        packages: peer.packages.length
      },
      ratio: ours.bytes / peer.bytes,
      diskRatio: ours.diskBytes / peer.diskBytes
    }
    console.log(
      `install footprint (npm install into an empty folder): ${fmt(result.ours.megabytes)} MB (${fmt(result.ours.diskMegabytes)} MB on disk), ` +
        `${ours.packages.length} package(s) [${ours.packages.join(", ")}] vs the lightest peer ${result.peer.name} ` +
        `${fmt(result.peer.megabytes)} MB (${fmt(result.peer.diskMegabytes)} MB on disk), ${result.peer.packages} packages: ` +
        `ratio ${fmt(result.ratio)}x (on disk ${fmt(result.diskRatio)}x); goal <= 10 MB, stretch <= 7.5 MB`
    )
    return result
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}
