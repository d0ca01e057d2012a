/** Resolving options and environment: precedence, regions, and every refusal before any I/O. */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as os from "node:os"
import * as path from "node:path"
import { resolve } from "../../src/config/KimiAuthConfig.js"
import { REGIONS, regionOfProvider } from "../../src/light/Region.js"
import { checkHome, homeFolder, issuerFor, resolveSettings } from "../../src/light/ResolveSettings.js"
import * as fs from "node:fs"

const ok = (r: ReturnType<typeof resolveSettings>) => {
  if (!r.ok) throw new Error(`expected settings, got: ${r.message}`)
  return r.value
}
const refused = (r: ReturnType<typeof resolveSettings>) => {
  if (r.ok) throw new Error("expected a refusal")
  return r.message
}

describe("regions", () => {
  it("the default region is mainland-cn (kimi.com), as in Moonshot's clients", () => {
    const s = ok(resolveSettings({}, {}))
    assert.strictEqual(s.region, "mainland-cn")
    assert.strictEqual(s.oauthHost, "https://auth.kimi.com")
    assert.strictEqual(s.apiBaseUrl, "https://api.kimi.com/coding/v1")
    assert.isFalse(s.oauthHostPinned)
    assert.isFalse(s.apiBaseUrlPinned)
  })

  it("region global picks kimi.ai for both the OAuth host and the API base", () => {
    const s = ok(resolveSettings({ region: "global" }, {}))
    assert.strictEqual(s.oauthHost, "https://auth.kimi.ai")
    assert.strictEqual(s.apiBaseUrl, "https://api.kimi.ai/coding/v1")
  })

  it("an unknown region is refused with the two valid names", () => {
    assert.match(refused(resolveSettings({ region: "eu" as never }, {})), /"mainland-cn".*"global"/)
  })

  it("OpenCode's catalog providers map to their regions", () => {
    assert.strictEqual(regionOfProvider("kimi-code-plan-cn"), "mainland-cn")
    assert.strictEqual(regionOfProvider("kimi-code-plan-global"), "global")
    assert.strictEqual(regionOfProvider("kimi"), undefined)
    assert.strictEqual(REGIONS.global.providerId, "kimi-code-plan-global")
  })
})

describe("precedence: option, then environment, then the region", () => {
  it("KIMI_CODE_OAUTH_HOST beats KIMI_OAUTH_HOST (kimi-cli's order), and pins the host", () => {
    const s = ok(resolveSettings({}, { KIMI_OAUTH_HOST: "https://a.example", KIMI_CODE_OAUTH_HOST: "https://b.example" }))
    assert.strictEqual(s.oauthHost, "https://b.example")
    assert.isTrue(s.oauthHostPinned)
    assert.strictEqual(ok(resolveSettings({}, { KIMI_OAUTH_HOST: "https://a.example" })).oauthHost, "https://a.example")
  })

  it("an option beats the environment; a blank value counts as unset", () => {
    const s = ok(resolveSettings({ oauthHost: "https://opt.example/" }, { KIMI_CODE_OAUTH_HOST: "https://env.example" }))
    assert.strictEqual(s.oauthHost, "https://opt.example")
    assert.strictEqual(ok(resolveSettings({ oauthHost: "  " }, { KIMI_OAUTH_HOST: " " })).oauthHost, "https://auth.kimi.com")
  })

  it("an env host still wins over the chosen region's default", () => {
    const s = ok(resolveSettings({ region: "global" }, { KIMI_CODE_BASE_URL: "http://127.0.0.1:9/coding/v1" }))
    assert.strictEqual(s.apiBaseUrl, "http://127.0.0.1:9/coding/v1")
    assert.isTrue(s.apiBaseUrlPinned)
    assert.strictEqual(s.oauthHost, "https://auth.kimi.ai")
  })

  it("the Effect wrapper reads the environment through the ConfigProvider", () =>
    Effect.gen(function*() {
      const s = yield* resolve({}).pipe(
        Effect.provideService(
          ConfigProvider.ConfigProvider,
          ConfigProvider.fromUnknown({ KIMI_OAUTH_HOST: "https://low.example", KIMI_CODE_OAUTH_HOST: "https://high.example" })
        )
      )
      assert.strictEqual(s.oauthHost, "https://high.example")
    }).pipe(Effect.runPromise))
})

describe("refusals, before any I/O", () => {
  it("a URL with user:password is refused and the password is never echoed", () => {
    const message = refused(resolveSettings({}, { KIMI_OAUTH_HOST: "http://user:hunter2@127.0.0.1:8080" }))
    assert.notInclude(message, "hunter2")
    assert.notMatch(message, /\/\/user/)
    assert.include(message, "KIMI_OAUTH_HOST")
    assert.match(message, /user name or password/)
    // Even when the URL is unusable for another reason.
    assert.notInclude(refused(resolveSettings({ apiBaseUrl: "ftp://u:hunter2@x" }, {})), "hunter2")
    assert.notInclude(refused(resolveSettings({ apiBaseUrl: "http://u:hunter2@example.com" }, {})), "hunter2")
  })

  it("plain http off loopback, a query, a fragment and a non-URL are refused", () => {
    assert.match(refused(resolveSettings({ oauthHost: "http://auth.kimi.com" }, {})), /plain http/)
    assert.match(refused(resolveSettings({ oauthHost: "https://auth.kimi.com/?x=1" }, {})), /query or fragment/)
    assert.match(refused(resolveSettings({ oauthHost: "https://auth.kimi.com/#x" }, {})), /query or fragment/)
    assert.match(refused(resolveSettings({ oauthHost: "auth.kimi.com" }, {})), /not a URL/)
    assert.strictEqual(ok(resolveSettings({ oauthHost: "http://[::1]:8080" }, {})).oauthHost, "http://[::1]:8080")
  })

  it("a relative storage folder (env or option) or token file is refused, naming its source", () => {
    const message = refused(resolveSettings({}, { OPENCODE_KIMI_AUTH_DIR: "relative/dir" }))
    assert.include(message, "OPENCODE_KIMI_AUTH_DIR")
    assert.match(message, /relative path/)
    assert.match(refused(resolveSettings({ storageDir: "./x" }, {})), /storageDir/)
    assert.match(refused(resolveSettings({ tokenFilePath: "oauth.json" }, {})), /tokenFilePath/)
  })

  it("storage paths default below the home folder and follow the token file's folder", () => {
    const s = ok(resolveSettings({}, {}))
    assert.strictEqual(s.tokenFilePath, path.join(os.homedir(), ".opencode-kimi-auth", "oauth.json"))
    const t = ok(resolveSettings({ tokenFilePath: "/tmp/k/tokens.json" }, {}))
    assert.strictEqual(t.deviceIdPath, "/tmp/k/device_id")
    assert.strictEqual(t.lockPath, "/tmp/k/tokens.json.lock")
  })

  it("the Effect wrapper fails with a ConfigError carrying the same message", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolve({ storageDir: "rel" }))
      assert.strictEqual(error._tag, "ConfigError")
      assert.match(error.message, /relative path/)
      const bad = yield* Effect.flip(resolve({ requestTimeout: "soon" as never }))
      assert.match(bad.message, /requestTimeout/)
    }).pipe(Effect.runPromise))
})

describe("issuerFor: a login is only good at the region that issued it", () => {
  const unpinned = ok(resolveSettings({}, {}))
  const pinned = ok(resolveSettings({}, { KIMI_OAUTH_HOST: "http://127.0.0.1:1", KIMI_CODE_BASE_URL: "http://127.0.0.1:1/coding/v1" }))
  const global = { oauthHost: REGIONS.global.oauthHost, apiBaseUrl: REGIONS.global.apiBaseUrl }

  it("the stored issuer beats the settings' region", () => {
    assert.deepStrictEqual(issuerFor(unpinned, global), global)
  })
  it("a host pinned by an option or the environment beats the stored issuer", () => {
    assert.deepStrictEqual(issuerFor(pinned, global), { oauthHost: "http://127.0.0.1:1", apiBaseUrl: "http://127.0.0.1:1/coding/v1" })
  })
  it("without a stored issuer (an older login) the settings apply", () => {
    assert.deepStrictEqual(issuerFor(unpinned, undefined), { oauthHost: unpinned.oauthHost, apiBaseUrl: unpinned.apiBaseUrl })
    assert.deepStrictEqual(issuerFor(unpinned, {}), { oauthHost: unpinned.oauthHost, apiBaseUrl: unpinned.apiBaseUrl })
  })
})

describe("the home folder", () => {
  it("empty, relative, missing or a file: refused, naming HOME and OPENCODE_KIMI_AUTH_DIR; never created", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-home-"))
    try {
      const file = path.join(tmp, "a-file")
      fs.writeFileSync(file, "")
      const missing = path.join(tmp, "nonexistent", "x")
      const cases: ReadonlyArray<[string, RegExp]> = [
        ["", /HOME is empty/],
        ["  ", /HOME is empty/],
        ["rel/home", /relative path/],
        [missing, /does not exist; it is never created/],
        [file, /is not a folder/]
      ]
      for (const [home, why] of cases) {
        const r = checkHome(home)
        if (r.ok) throw new Error(`expected a refusal for ${JSON.stringify(home)}`)
        assert.match(r.message, why)
        assert.match(r.message, /Set HOME to your home folder, or OPENCODE_KIMI_AUTH_DIR/)
      }
      assert.isFalse(fs.existsSync(path.join(tmp, "nonexistent")))
      assert.deepStrictEqual(checkHome(tmp), { ok: true, value: tmp })
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  })

  it("resolveSettings refuses a bad home only when no storage folder or token file is given", () => {
    const saved = process.env["HOME"]
    try {
      process.env["HOME"] = ""
      assert.match(refused(resolveSettings({}, {})), /HOME is empty/)
      assert.strictEqual(ok(resolveSettings({}, { OPENCODE_KIMI_AUTH_DIR: "/abs/kimi" })).tokenFilePath, "/abs/kimi/oauth.json")
      assert.strictEqual(ok(resolveSettings({ storageDir: "/abs/s" }, {})).storageDir, "/abs/s")
      assert.strictEqual(ok(resolveSettings({ tokenFilePath: "/abs/t/oauth.json" }, {})).storageDir, "/abs/t")
      // The relative-path example no longer builds on the empty home.
      assert.match(refused(resolveSettings({ storageDir: "rel" }, {})), /such as \/home\/you\/\.opencode-kimi-auth/)
    } finally {
      if (saved === undefined) delete process.env["HOME"]
      else process.env["HOME"] = saved
    }
  })

  it("the Effect wrapper fails with a ConfigError", () =>
    Effect.gen(function*() {
      const saved = process.env["HOME"]
      process.env["HOME"] = "relative"
      const error = yield* Effect.flip(resolve({})).pipe(Effect.ensuring(Effect.sync(() => {
        if (saved === undefined) delete process.env["HOME"]
        else process.env["HOME"] = saved
      })))
      assert.strictEqual(error._tag, "ConfigError")
      assert.match(error.message, /HOME/)
    }).pipe(Effect.runSync))
})

describe("homeFolder: $HOME as set, the same under Node and Bun", () => {
  // Bun's os.homedir() answers the password database's folder for an empty $HOME, Node's answers "":
  // an empty $HOME must reach checkHome (and be refused) under both.
  it.runIf(process.platform !== "win32")("an empty or relative $HOME is returned as it is, not replaced", () => {
    assert.strictEqual(homeFolder({ HOME: "" }), "")
    assert.strictEqual(homeFolder({ HOME: "rel/home" }), "rel/home")
    assert.strictEqual(homeFolder({ HOME: "/home/someone" }), "/home/someone")
  })
  it("no $HOME at all: the runtime's own answer (the password database)", () => {
    assert.strictEqual(homeFolder({}), os.homedir())
  })
})

describe("X-Msh-Platform", () => {
  it("kimi_cli by default; KIMI_MSH_PLATFORM changes it (blank is ignored); the platform option beats both", () => {
    assert.strictEqual(ok(resolveSettings({}, {})).platform, "kimi_cli")
    assert.strictEqual(ok(resolveSettings({}, { KIMI_MSH_PLATFORM: "kimi_code_cli" })).platform, "kimi_code_cli")
    assert.strictEqual(ok(resolveSettings({}, { KIMI_MSH_PLATFORM: "  " })).platform, "kimi_cli")
    assert.strictEqual(ok(resolveSettings({ platform: "other" }, { KIMI_MSH_PLATFORM: "kimi_code_cli" })).platform, "other")
  })
})
