/**
 * Reading the login state writes nothing: `loginStatus`, the facade's
 * `status()` and `kimi-auth status` over an empty storage folder create no
 * `device_id` (nor anything else); the first request or save does.
 */
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import { KimiAuthConfig } from "../../src/config/KimiAuthConfig.js"
import { loginStatus } from "../../src/oauth/LoginStatus.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"
import { TokenStore } from "../../src/storage/TokenStore.js"

const layerOver = (storageDir: string) =>
  TokenStore.layerFile.pipe(
    Layer.provideMerge(DeviceIdentity.layer),
    Layer.provideMerge(KimiAuthConfig.layer({ storageDir })),
    Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
  )

describe("reading the status writes nothing", () => {
  it("loginStatus over a missing folder creates neither the folder nor device_id; the first save does", async () => {
    const root = makeTemp()
    try {
      const dir = path.join(root, "store")
      const status = await Effect.runPromise(loginStatus.pipe(Effect.provide(layerOver(dir))))
      expect(status.tokens).toBeUndefined()
      expect(status.deviceId).toBe("")
      expect(fs.existsSync(dir)).toBe(false)
      const t = new TokenSet({
        accessToken: Redacted.make("at-1"),
        refreshToken: Redacted.make("rt-1"),
        tokenType: "Bearer",
        expiresIn: 900,
        scope: "kimi-code",
        expiresAt: Math.floor(Date.now() / 1000) + 900
      })
      const after = await Effect.runPromise(
        Effect.flatMap(TokenStore, (s) => s.save(t)).pipe(Effect.andThen(loginStatus), Effect.provide(layerOver(dir)))
      )
      const stored = fs.readFileSync(path.join(dir, "device_id"), "utf8").trim()
      expect(stored).toMatch(/^[0-9a-f-]{36}$/)
      expect(after.deviceId).toBe(stored)
      expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).device_id).toBe(stored)
    } finally {
      rmTemp(root)
    }
  })

  it("the facade's status() in an empty folder creates nothing", async () => {
    const root = makeTemp()
    const dir = path.join(root, "store")
    fs.mkdirSync(dir, { mode: 0o700 })
    const client = new KimiOAuthClient({ tokenFilePath: path.join(dir, "oauth.json") })
    try {
      const s = await client.status()
      expect(s.loggedIn).toBe(false)
      expect(fs.readdirSync(dir)).toEqual([])
    } finally {
      await client.dispose?.()
      rmTemp(root)
    }
  })

  it("`kimi-auth status` in a fresh home creates nothing", async () => {
    const home = makeTemp()
    try {
      const r = await runCli(["status"], isolatedEnv(home))
      expect(r.code, r.stderr).not.toBe(0)
      expect(r.stdout).toContain("Not logged in")
      const left = fs.readdirSync(home, { recursive: true })
      expect(left).toEqual([])
    } finally {
      rmTemp(home)
    }
  }, 30_000)
})
