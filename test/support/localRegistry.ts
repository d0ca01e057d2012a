/**
 * A local npm registry for one package: it serves the packed tarballs it is
 * given (a packument with their versions, `latest` the last) and passes every
 * other request to the public registry. With `npm_config_registry` pointed at
 * it, a host installs "the published package" from this checkout's `npm pack`,
 * before the package is published (test/opencode2/v21.install.e2e.test.ts).
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** Where requests for other packages go. */
export const UPSTREAM_REGISTRY = "https://registry.npmjs.org"

/** One served version: its `package.json` and its tarball. */
export interface ServedVersion {
  readonly manifest: Record<string, unknown> & { readonly name: string; readonly version: string }
  readonly tarball: string
}

/** A running registry. */
export interface LocalRegistry {
  /** The registry's address, with a trailing slash (`npm_config_registry`). */
  readonly url: string
  /** The paths asked for, in order (the served package's and the passed-on ones). */
  readonly requests: ReadonlyArray<string>
  readonly close: () => Promise<void>
}

const integrityOf = (bytes: Buffer) => ({
  shasum: createHash("sha1").update(bytes).digest("hex"),
  integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`
})

/** Starts a registry on loopback serving `versions` (all of one package). */
export const startLocalRegistry = async (versions: ReadonlyArray<ServedVersion>): Promise<LocalRegistry> => {
  const name = versions[0]!.manifest.name
  const requests: Array<string> = []
  const tarballs = new Map(versions.map((v) => [`/${name}/-/${name}-${v.manifest.version}.tgz`, fs.readFileSync(v.tarball)]))
  let base = ""
  const packument = () => ({
    name,
    "dist-tags": { latest: versions[versions.length - 1]!.manifest.version },
    versions: Object.fromEntries(versions.map((v) => {
      const file = `/${name}/-/${name}-${v.manifest.version}.tgz`
      return [v.manifest.version, { ...v.manifest, _id: `${name}@${v.manifest.version}`, dist: { tarball: `${base}${file.slice(1)}`, ...integrityOf(tarballs.get(file)!) } }]
    }))
  })
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/"
    requests.push(url)
    const pathname = decodeURIComponent(url.split("?")[0]!)
    if (pathname === `/${name}`) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(packument()))
      return
    }
    const tarball = tarballs.get(pathname)
    if (tarball !== undefined) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": tarball.length }).end(tarball)
      return
    }
    const headers: Record<string, string> = {}
    for (const h of ["accept", "npm-command", "user-agent"]) if (typeof req.headers[h] === "string") headers[h] = req.headers[h] as string
    fetch(`${UPSTREAM_REGISTRY}${url}`, { headers, redirect: "follow" }).then(
      async (up) => {
        const body = Buffer.from(await up.arrayBuffer())
        res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/octet-stream", "content-length": body.length }).end(body)
      },
      (e: unknown) => res.writeHead(502, { "content-type": "text/plain" }).end(String(e))
    )
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  return {
    url: base,
    requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}
