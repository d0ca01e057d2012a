/** The proxy decision (`ProxyEnv.ts`): which variable, `NO_PROXY` as curl reads it, loopback always direct, no secret in a label. */
import { describe, expect, it } from "vitest"
import { bypassesProxy, hasProxyEnv, isLoopbackHost, proxyFor } from "../../src/net/ProxyEnv.js"

const route = (url: string, env: Record<string, string>) => {
  const d = proxyFor(url, env)
  return d._tag === "Proxy" ? d.route : d._tag
}

describe("proxyFor: which variable", () => {
  it("https uses https_proxy before HTTPS_PROXY; http uses http_proxy before HTTP_PROXY; no fallback between them", () => {
    expect(route("https://kimi.test/x", { HTTPS_PROXY: "http://a:1", https_proxy: "http://b:2" })).toMatchObject({ host: "b", port: 2, variable: "https_proxy" })
    expect(route("https://kimi.test/x", { HTTPS_PROXY: "http://a:1" })).toMatchObject({ host: "a", port: 1, variable: "HTTPS_PROXY" })
    expect(route("http://kimi.test/x", { HTTP_PROXY: "http://a:1", http_proxy: "http://c:3" })).toMatchObject({ host: "c", variable: "http_proxy" })
    expect(route("https://kimi.test/x", { HTTP_PROXY: "http://a:1" })).toBe("Direct")
    expect(route("http://kimi.test/x", { HTTPS_PROXY: "http://a:1" })).toBe("Direct")
    expect(route("https://kimi.test/x", { HTTPS_PROXY: "  " })).toBe("Direct")
    expect(route("https://kimi.test/x", {})).toBe("Direct")
  })

  it("a value without a scheme is http://, default port 80; IPv6 proxies are bracketed in the label", () => {
    expect(route("https://kimi.test", { HTTPS_PROXY: "proxy.corp:3128" })).toMatchObject({ host: "proxy.corp", port: 3128, label: "proxy.corp:3128" })
    expect(route("https://kimi.test", { HTTPS_PROXY: "http://proxy.corp" })).toMatchObject({ port: 80, label: "proxy.corp:80" })
    expect(route("https://kimi.test", { HTTPS_PROXY: "http://[fd00::1]:8080" })).toMatchObject({ host: "fd00::1", label: "[fd00::1]:8080" })
  })

  it("user info becomes Basic auth (percent-decoded); the label never holds it", () => {
    const r = route("https://kimi.test", { HTTPS_PROXY: "http://al%40ice:p%3Ass@proxy:8080" })
    expect(r).toMatchObject({ label: "proxy:8080", authorization: `Basic ${Buffer.from("al@ice:p:ss").toString("base64")}` })
    expect(JSON.stringify({ ...(r as object), authorization: undefined })).not.toMatch(/al|p%3Ass|p:ss/)
    expect(route("https://kimi.test", { HTTPS_PROXY: "http://proxy:8080" })).toMatchObject({ authorization: undefined })
  })

  it("an unusable value is Invalid, and its message never echoes it", () => {
    for (const value of ["socks5://user:secret@proxy:1080", "https://user:secret@proxy:443", "http://user:secret@[bad", "http://"]) {
      const d = proxyFor("https://kimi.test", { HTTPS_PROXY: value })
      expect(d._tag, value).toBe("Invalid")
      expect(JSON.stringify(d)).not.toContain("secret")
    }
  })

  it("hasProxyEnv sees any of the four variables, and nothing else", () => {
    expect(hasProxyEnv({})).toBe(false)
    expect(hasProxyEnv({ NO_PROXY: "*", ALL_PROXY: "http://a:1", HTTPS_PROXY: "" })).toBe(false)
    for (const k of ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"]) expect(hasProxyEnv({ [k]: "http://a:1" })).toBe(true)
  })
})

describe("loopback is never proxied", () => {
  it.each([
    "http://127.0.0.1:8080/x",
    "https://127.3.4.5/",
    "http://localhost:1/",
    "https://LOCALHOST./",
    "http://kimi.localhost/",
    "http://[::1]:9/",
    "http://[::ffff:127.0.0.1]/"
  ])("%s goes direct even with every variable set and NO_PROXY empty", (url) => {
    expect(proxyFor(url, { HTTPS_PROXY: "http://p:1", HTTP_PROXY: "http://p:1", NO_PROXY: "" })._tag).toBe("Direct")
  })

  it("isLoopbackHost: not fooled by look-alikes", () => {
    for (const h of ["128.0.0.1", "localhost.evil.com", "evil-localhost", "::2", "10.127.0.1", "1270.0.0.1"]) expect(isLoopbackHost(h), h).toBe(false)
  })
})

describe("NO_PROXY as curl reads it", () => {
  const cases: Array<[string, string, number, boolean]> = [
    // a name matches itself and every name below it, leading dot or `*.` or not
    ["kimi.test", "kimi.test", 443, true],
    ["kimi.test", "api.kimi.test", 443, true],
    [".kimi.test", "kimi.test", 443, true],
    [".kimi.test", "api.kimi.test", 443, true],
    ["*.kimi.test", "api.kimi.test", 443, true],
    ["kimi.test", "badkimi.test", 443, false],
    ["kimi.test", "kimi.test.evil", 443, false],
    ["api.kimi.test", "kimi.test", 443, false],
    // case and a trailing dot do not matter
    ["KIMI.Test", "kimi.TEST.", 443, true],
    // lists: commas, spaces, empty items
    ["example.com, ,kimi.test", "kimi.test", 443, true],
    ["example.com kimi.test", "kimi.test", 443, true],
    ["example.com,other.org", "kimi.test", 443, false],
    // `*` alone turns the proxy off; `*` inside a list too
    ["*", "anything.example", 80, true],
    ["example.com,*", "kimi.test", 443, true],
    // ports: an entry with a port matches that port only
    ["kimi.test:443", "kimi.test", 443, true],
    ["kimi.test:8443", "kimi.test", 443, false],
    [".kimi.test:8443", "api.kimi.test", 8443, true],
    // addresses: exact, CIDR (IPv4), bracketed IPv6 with a port; no suffix match on addresses
    ["10.1.2.3", "10.1.2.3", 443, true],
    ["10.0.0.0/8", "10.200.3.4", 443, true],
    ["10.0.0.0/8", "11.0.0.1", 443, false],
    ["192.168.1.0/24", "192.168.2.1", 443, false],
    ["0.0.0.0/0", "8.8.8.8", 443, true],
    ["2.3.4", "1.2.3.4", 443, false],
    ["fd00::1", "[fd00::1]", 443, true],
    ["[fd00::1]:8443", "fd00::1", 8443, true],
    ["[fd00::1]:8443", "fd00::1", 443, false]
  ]
  it.each(cases)("NO_PROXY=%j, host %s port %d: bypass %s", (noProxy, host, port, bypass) => {
    expect(bypassesProxy(noProxy, host, port)).toBe(bypass)
  })

  it("proxyFor applies it with the URL's port (default 443/80), no_proxy before NO_PROXY", () => {
    const env = { HTTPS_PROXY: "http://p:1", HTTP_PROXY: "http://p:1" }
    expect(route("https://kimi.test/x", { ...env, NO_PROXY: "kimi.test:443" })).toBe("Direct")
    expect(route("http://kimi.test/x", { ...env, NO_PROXY: "kimi.test:443" })).toMatchObject({ host: "p" })
    expect(route("https://kimi.test:8443/x", { ...env, NO_PROXY: "kimi.test:8443" })).toBe("Direct")
    expect(route("https://kimi.test/x", { ...env, no_proxy: "other.test", NO_PROXY: "kimi.test" })).toMatchObject({ host: "p" })
    expect(route("https://kimi.test/x", { ...env, no_proxy: " ", NO_PROXY: "kimi.test" })).toBe("Direct")
  })
})
