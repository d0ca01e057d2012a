/**
 * The account decisions as tables: which account is used, where a login
 * goes (same user replaces, another adds), what `switch` finds, how a
 * damaged registry reads, and what the registry becomes after a login, a
 * switch and a logout.
 */
import { describe, expect, it } from "vitest"
import { activate, forget, learn, placeLogin, recordLogin } from "../../src/accounts/AccountDecisions.js"
import { decodeMe } from "../../src/accounts/Me.js"
import {
  type Account,
  accountLabel,
  accountsOf,
  chooseAccount,
  matchAccount
} from "../../src/light/AccountChoice.js"
import { accountFileName, decodeRegistry, EMPTY_REGISTRY, encodeRegistry, fileSafeId, type Registry } from "../../src/light/AccountRegistry.js"

const acct = (file: string, over: Partial<Account> = {}): Account => ({
  file,
  userId: undefined,
  nickname: undefined,
  email: undefined,
  region: "mainland-cn",
  addedAt: undefined,
  isDefault: file === "oauth.json",
  registered: true,
  ...over
})

const ada = acct("oauth.json", { userId: "u-ada", nickname: "Ada", email: "ada@example.com" })
const bob = acct("oauth.mainland-cn.u-bob.json", { userId: "u-bob", nickname: "Bob", email: "bob@example.com" })
const gil = acct("oauth.global.u-gil.json", { userId: "u-gil", nickname: "Gil", email: "gil@example.ai", region: "global" })
const adaGlobal = acct("oauth.global.u-ada.json", { userId: "u-ada", nickname: "Ada", email: "ada@example.com", region: "global" })
const all = [ada, bob, gil]

describe("chooseAccount: which account is used", () => {
  const cases: ReadonlyArray<[string, ReadonlyArray<Account>, Pick<Registry, "active" | "current">, { account?: string; region?: "mainland-cn" | "global" }, string | "none" | "unknown" | "ambiguous"]> = [
    ["nothing anywhere", [], { active: {}, current: undefined }, {}, "none"],
    ["only the default", [ada], { active: {}, current: undefined }, {}, "oauth.json"],
    ["the current one when no region is named", all, { active: { "mainland-cn": "oauth.json" }, current: gil.file }, {}, gil.file],
    ["no current: the default", all, { active: {}, current: undefined }, {}, "oauth.json"],
    ["a region: its active account", all, { active: { "mainland-cn": bob.file }, current: gil.file }, { region: "mainland-cn" }, bob.file],
    ["a region without active: its default", all, { active: {}, current: gil.file }, { region: "mainland-cn" }, "oauth.json"],
    ["a region without active or default: its newest", [ada, bob, gil, adaGlobal], { active: {}, current: undefined }, { region: "global" }, adaGlobal.file],
    ["a region with no account: none (the default file)", [ada, bob], { active: {}, current: bob.file }, { region: "global" }, "none"],
    ["an active pointer of the other region is ignored", all, { active: { global: bob.file }, current: undefined }, { region: "global" }, gil.file],
    ["a named account beats the region", all, { active: { global: gil.file }, current: undefined }, { account: "bob", region: "global" }, bob.file],
    ["a named account by email", all, { active: {}, current: undefined }, { account: "GIL@example.ai" }, gil.file],
    ["an unknown account", all, { active: {}, current: undefined }, { account: "zed" }, "unknown"],
    ["an ambiguous account", [ada, adaGlobal], { active: {}, current: undefined }, { account: "ada" }, "ambiguous"],
    ["a blank account name is no name", all, { active: {}, current: bob.file }, { account: "  " }, bob.file]
  ]
  it.each(cases)("%s", (_name, accounts, registry, request, expected) => {
    const choice = chooseAccount(accounts, registry, request)
    const got = choice._tag === "Account"
      ? choice.account.file
      : choice._tag === "NoAccount"
      ? "none"
      : choice._tag === "Unknown"
      ? "unknown"
      : "ambiguous"
    expect(got).toBe(expected)
  })
})

describe("matchAccount: what `kimi-auth switch <account>` finds", () => {
  const cases: ReadonlyArray<[string, ReadonlyArray<Account>, string, string | "none" | "ambiguous"]> = [
    ["user id", all, "u-bob", bob.file],
    ["email, any case", all, "Bob@Example.com", bob.file],
    ["nickname", all, "gil", gil.file],
    ["the label", all, "Ada (ada@example.com), mainland-cn", ada.file],
    ["the label tells the regions apart", [ada, adaGlobal], "Ada (ada@example.com), global", adaGlobal.file],
    ["the file name", all, "oauth.global.u-gil.json", gil.file],
    ["`default` is the default account", all, "default", ada.file],
    ["a unique prefix", all, "bo", bob.file],
    ["a unique email prefix", all, "gil@", gil.file],
    ["a prefix of several", all, "u-", "ambiguous"],
    ["the same nickname in both regions", [ada, adaGlobal], "Ada", "ambiguous"],
    ["nothing", all, "zed", "none"],
    ["empty", all, "", "none"]
  ]
  it.each(cases)("%s", (_name, accounts, query, expected) => {
    const m = matchAccount(accounts, query)
    expect(m._tag === "Found" ? m.account.file : m._tag === "None" ? "none" : "ambiguous").toBe(expected)
  })
})

describe("placeLogin: same user replaces, another user adds", () => {
  const me = (userId: string) => ({ userId, nickname: undefined, email: undefined, region: undefined })
  const cases: ReadonlyArray<[string, ReadonlyArray<Account>, string | undefined, "mainland-cn" | "global", boolean, string, boolean]> = [
    ["the same user again: that account's file", all, "u-bob", "mainland-cn", true, bob.file, true],
    ["the default's user again: oauth.json", all, "u-ada", "mainland-cn", true, "oauth.json", true],
    ["another user: a new file", all, "u-cy", "mainland-cn", true, "oauth.mainland-cn.u-cy.json", false],
    ["the same user at the other region: a new account", all, "u-ada", "global", true, "oauth.global.u-ada.json", false],
    ["oauth.json free: the first login goes there", [], "u-cy", "mainland-cn", false, "oauth.json", false],
    ["oauth.json free but other accounts: still oauth.json", [bob], "u-cy", "global", false, "oauth.json", false],
    ["an unknown user (no /me) never replaces", all, undefined, "mainland-cn", true, "oauth.mainland-cn.unknown-1.json", false],
    ["an unknown user and oauth.json free: oauth.json", [bob], undefined, "mainland-cn", false, "oauth.json", false],
    [
      "a file already taken by another account is never shared",
      [ada, acct("oauth.mainland-cn.u-cy.json", { userId: "someone-else" })],
      "u-cy",
      "mainland-cn",
      true,
      "oauth.mainland-cn.u-cy-unknown-1.json",
      false
    ]
  ]
  it.each(cases)("%s", (_name, accounts, userId, region, defaultHoldsLogin, file, replaces) => {
    const p = placeLogin({ accounts, user: userId === undefined ? undefined : me(userId), region, defaultHoldsLogin, fallbackId: "unknown-1" })
    expect(p.file).toBe(file)
    expect(p.replaces !== undefined).toBe(replaces)
  })

  it("a user id that is not a plain name is hashed in the file name", () => {
    expect(fileSafeId("u_1-A")).toBe("u_1-A")
    expect(fileSafeId("../../etc/passwd")).toMatch(/^h-[0-9a-f]{24}$/)
    expect(accountFileName("global", "a b")).toMatch(/^oauth\.global\.h-[0-9a-f]{24}\.json$/)
  })
})

describe("decodeRegistry: damaged files read leniently", () => {
  const good = encodeRegistry({
    accounts: [
      { file: "oauth.json", userId: "u-ada", nickname: "Ada", email: "ada@example.com", region: "mainland-cn", addedAt: "2026-12-06T20:00:00.000Z" },
      { file: bob.file, userId: "u-bob", nickname: undefined, email: undefined, region: "mainland-cn", addedAt: undefined }
    ],
    active: { "mainland-cn": bob.file },
    current: bob.file
  })
  const cases: ReadonlyArray<[string, string, number, string | undefined, boolean]> = [
    ["a good file", good, 2, bob.file, false],
    ["empty", "", 0, undefined, true],
    ["not JSON", "{\"accounts\": [", 0, undefined, true],
    ["an array", "[]", 0, undefined, true],
    ["no accounts list", "{\"active\":{}}", 0, undefined, true],
    ["a path in a file name is skipped", JSON.stringify({ accounts: [{ file: "../oauth.json", region: "global" }, { file: "/etc/passwd" }] }), 0, undefined, false],
    ["entries of the wrong type are skipped", JSON.stringify({ accounts: [null, 3, "oauth.json", { file: "oauth.json", region: "mars" }] }), 1, undefined, false],
    ["two entries for one file: the first wins", JSON.stringify({ accounts: [{ file: "oauth.json", user_id: "a" }, { file: "oauth.json", user_id: "b" }] }), 1, undefined, false],
    ["an active pointer to an unknown file is dropped", JSON.stringify({ accounts: [{ file: "oauth.json" }], active: { "mainland-cn": "oauth.x.json" }, current: "nope" }), 1, undefined, false],
    ["an active pointer to an account of the other region is dropped", JSON.stringify({ accounts: [{ file: "oauth.json", region: "global" }], active: { "mainland-cn": "oauth.json" } }), 1, undefined, false]
  ]
  it.each(cases)("%s", (_name, raw, count, active, problem) => {
    const r = decodeRegistry(raw)
    expect(r.registry.accounts).toHaveLength(count)
    expect(r.registry.active["mainland-cn"]).toBe(active)
    expect(r.problem !== undefined).toBe(problem)
  })

  it("round-trips what it writes, and caps foreign text", () => {
    expect(decodeRegistry(good).registry.accounts[0]).toEqual({
      file: "oauth.json", userId: "u-ada", nickname: "Ada", email: "ada@example.com", region: "mainland-cn", addedAt: "2026-12-06T20:00:00.000Z"
    })
    const long = decodeRegistry(JSON.stringify({ accounts: [{ file: "oauth.json", nickname: "x\u0007".repeat(500) }] }))
    expect(long.registry.accounts[0]?.nickname).toHaveLength(200)
    expect(long.registry.accounts[0]?.nickname).not.toMatch(/\u0007/)
  })
  it("a region missing from an entry comes from its file name", () => {
    expect(decodeRegistry(JSON.stringify({ accounts: [{ file: "oauth.global.u1.json" }] })).registry.accounts[0]?.region).toBe("global")
  })
})

describe("accountsOf: the default account from before accounts", () => {
  it("an oauth.json with a login the registry does not list is the default account, first", () => {
    const list = accountsOf({ ...EMPTY_REGISTRY, accounts: [bob] }, { _tag: "Login", region: "global" })
    expect(list.map((a) => [a.file, a.isDefault, a.registered, a.region])).toEqual([
      ["oauth.json", true, false, "global"],
      [bob.file, false, true, "mainland-cn"]
    ])
    expect(accountLabel(list[0]!)).toBe("default account, global")
  })
  it("no login in oauth.json: no implicit default", () => {
    expect(accountsOf(EMPTY_REGISTRY, { _tag: "None" })).toEqual([])
  })
  it("the region the token file records beats the registry's for the default", () => {
    expect(accountsOf({ ...EMPTY_REGISTRY, accounts: [ada] }, { _tag: "Login", region: "global" })[0]?.region).toBe("global")
  })
})

describe("labels name what a person recognises", () => {
  const cases: ReadonlyArray<[Partial<Account>, string]> = [
    [{ nickname: "Ada", email: "ada@example.com" }, "Ada (ada@example.com), mainland-cn"],
    [{ email: "ada@example.com" }, "ada@example.com, mainland-cn"],
    [{ nickname: "Ada", region: "global" }, "Ada, global"],
    [{ userId: "u1" }, "user u1, mainland-cn"],
    [{}, "default account, mainland-cn"]
  ]
  it.each(cases)("%j", (over, label) => expect(accountLabel(acct("oauth.json", over))).toBe(label))
})

describe("the registry after a login, a switch, a logout", () => {
  const me = { userId: "u-cy", nickname: "Cy", email: undefined, region: undefined }
  it("a login records the account, makes it active in its region and current", () => {
    const r = recordLogin(EMPTY_REGISTRY, { file: "oauth.mainland-cn.u-cy.json", user: me, region: "mainland-cn", now: "T1" })
    expect(r.accounts).toEqual([{ file: "oauth.mainland-cn.u-cy.json", userId: "u-cy", nickname: "Cy", email: undefined, region: "mainland-cn", addedAt: "T1" }])
    expect(r.active).toEqual({ "mainland-cn": "oauth.mainland-cn.u-cy.json" })
    expect(r.current).toBe("oauth.mainland-cn.u-cy.json")
    // The same user again keeps when it was added; a name Kimi no longer sends is kept.
    const again = recordLogin(r, { file: "oauth.mainland-cn.u-cy.json", user: { ...me, nickname: undefined }, region: "mainland-cn", now: "T2" })
    expect(again.accounts[0]).toMatchObject({ addedAt: "T1", nickname: "Cy" })
  })
  it("a switch keeps the other region's active account", () => {
    const r: Registry = { accounts: [ada, bob, gil], active: { "mainland-cn": ada.file, global: gil.file }, current: gil.file }
    expect(activate(r, bob)).toMatchObject({ active: { "mainland-cn": bob.file, global: gil.file }, current: bob.file })
  })
  it("a switch to the unrecorded default records it", () => {
    const implicit = { ...ada, userId: undefined, nickname: undefined, email: undefined, registered: false }
    const r = activate({ accounts: [bob], active: {}, current: bob.file }, implicit)
    expect(r.accounts.map((a) => a.file)).toEqual([bob.file, "oauth.json"])
    expect(r.current).toBe("oauth.json")
  })
  it("a logout forgets the account and every pointer to it", () => {
    const r: Registry = { accounts: [ada, bob], active: { "mainland-cn": bob.file }, current: bob.file }
    expect(forget(r, bob.file)).toEqual({ accounts: [ada], active: {}, current: undefined })
  })
  it("learning who an account is records it", () => {
    const implicit = { ...ada, userId: undefined, nickname: undefined, email: undefined, registered: false }
    expect(learn(EMPTY_REGISTRY, implicit, { userId: "u-ada", nickname: "Ada", email: "ada@example.com", region: undefined }).accounts)
      .toEqual([{ file: "oauth.json", userId: "u-ada", nickname: "Ada", email: "ada@example.com", region: "mainland-cn", addedAt: undefined }])
  })
})

describe("decodeMe", () => {
  const cases: ReadonlyArray<[unknown, string | undefined]> = [
    [{ user_id: "u1", nickname: "Ada", email: "a@b", region: "global" }, "u1"],
    [{ user_id: 42 }, "42"],
    [{ nickname: "no id" }, undefined],
    [{ user_id: "" }, undefined],
    [[], undefined],
    [null, undefined]
  ]
  it.each(cases)("%j", (body, id) => expect(decodeMe(body)?.userId).toBe(id))
})
