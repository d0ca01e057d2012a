/**
 * Which OpenCode 1.18 providers' copies of the login go with `kimi-auth logout`
 * (`openCodeProvidersOf`): each region's provider uses that region's active
 * account, so an account logged out takes only the copies of the regions it
 * is active in; the last account, or an explicit token file, takes both.
 */
import { describe, expect, it } from "vitest"
import { openCodeProvidersOf } from "../../src/cli/OpenCodeAuth.js"
import type { Account } from "../../src/light/AccountChoice.js"
import type { Registry } from "../../src/light/AccountRegistry.js"

const account = (file: string, region: Account["region"], isDefault = false): Account => ({
  file, region, isDefault, registered: true, userId: file, nickname: undefined, email: undefined, addedAt: undefined
})
const ada = account("oauth.json", "mainland-cn", true)
const bob = account("oauth.mainland-cn.u-bob.json", "mainland-cn")
const cy = account("oauth.global.u-cy.json", "global")
const CN = "kimi-code-plan-cn"
const GLOBAL = "kimi-code-plan-global"

const stored = (accounts: ReadonlyArray<Account>, active: Registry["active"]) => ({
  accounts,
  registry: { accounts, active, current: undefined } satisfies Registry
})

describe("openCodeProvidersOf", () => {
  const three = stored([ada, bob, cy], { "mainland-cn": bob.file, global: cy.file })

  it("an account active in no region: no provider's copy goes (OpenCode 1.18 keeps the logins it uses)", () => {
    expect(openCodeProvidersOf(ada, three)).toEqual([])
  })

  it("the active account of a region: that region's provider only", () => {
    expect(openCodeProvidersOf(bob, three)).toEqual([CN])
    expect(openCodeProvidersOf(cy, three)).toEqual([GLOBAL])
  })

  it("a region with no active recorded uses its default (or newest) account, as OpenCode 1.18 does", () => {
    expect(openCodeProvidersOf(ada, stored([ada, bob, cy], { global: cy.file }))).toEqual([CN])
  })

  it("the last account, or no account (an explicit token file): both providers", () => {
    expect(openCodeProvidersOf(ada, stored([ada], { "mainland-cn": ada.file }))).toEqual([CN, GLOBAL])
    expect(openCodeProvidersOf(undefined, three)).toEqual([CN, GLOBAL])
  })
})
