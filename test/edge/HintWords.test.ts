/**
 * Errors carry their advice as data (issue 23): each edge words the same
 * hint in its host's words, as tables. Before, the CLI and the plugin
 * patched the core's English text with regexes (`withRegionLoginHint`,
 * `openCodeFirst`); these words did not exist as data.
 */
import { describe, expect, it } from "vitest"
import { advised, adviseWith, defaultHintWords, LOGIN_HINT, loginHintFor, messageIn, type NextStep, NotLoggedInError, TokenStoreError } from "../../src/Errors.js"
import { cliHintWords, cliLoginCommand, openCodeHintWords, openCodeLogin } from "../../src/edge/HintWords.js"
import { invokerRule } from "../../src/cli/RunCommandDecisions.js"
import { V2_METHOD_ID } from "../../src/opencode/V2Plugin.js"

const logIn: NextStep = { _tag: "LogIn" }
const logInGlobal: NextStep = { _tag: "LogIn", region: "global" }
const remove: NextStep = { _tag: "RemovePath", path: "/h/.opencode-kimi-auth/oauth.json" }

describe("each edge's words for a hint", () => {
  it.each([
    ["default (Effect API, facade, AI SDK)", defaultHintWords, logIn, LOGIN_HINT],
    ["default, region known", defaultHintWords, logInGlobal, loginHintFor("global")],
    ["default, a path to move", defaultHintWords, remove, `move /h/.opencode-kimi-auth/oauth.json away, then ${LOGIN_HINT}`],
    ["CLI, mainland-cn", cliHintWords("mainland-cn"), logIn, "run `kimi-auth login` (or `opencode auth login -p kimi-code-plan-cn` in OpenCode)"],
    ["CLI, the login's region", cliHintWords("global"), logIn, "run `kimi-auth login --region global` (or `opencode auth login -p kimi-code-plan-global` in OpenCode)"],
    ["CLI, the hint's region wins", cliHintWords("mainland-cn"), logInGlobal, "run `kimi-auth login --region global` (or `opencode auth login -p kimi-code-plan-global` in OpenCode)"],
    ["CLI, no region known: the default region", cliHintWords(undefined), logIn, "run `kimi-auth login` (or `opencode auth login -p kimi-code-plan-cn` in OpenCode)"],
    ["CLI after a local install", cliHintWords("global", "npx kimi-auth"), logIn, "run `npx kimi-auth login --region global` (or `opencode auth login -p kimi-code-plan-global` in OpenCode)"],
    ["CLI, a path to move", cliHintWords("mainland-cn"), remove, "move /h/.opencode-kimi-auth/oauth.json away, then run `kimi-auth login` (or `opencode auth login -p kimi-code-plan-cn` in OpenCode)"],
    ["OpenCode 1.18, cn", openCodeHintWords("kimi-code-plan-cn", "mainland-cn"), logIn, "run `opencode auth login -p kimi-code-plan-cn` (or `kimi-auth login`)"],
    ["OpenCode 1.18, global", openCodeHintWords("kimi-code-plan-global", "global", "v1"), logIn, "run `opencode auth login -p kimi-code-plan-global` (or `kimi-auth login --region global`)"],
    [
      "OpenCode 2, global",
      openCodeHintWords("kimi-code-plan-global", "global", "v2"),
      logIn,
      // 2.1 sends a login only through its own row: `kimi-auth login` alone would not be used there.
      "run `opencode auth login kimi-code-plan-global --method kimi-device` (or, in OpenCode, use `/connect`, pick Kimi For Coding (kimi.ai) (kimi-code-plan-global), then \"Kimi device login\")"
    ],
    ["OpenCode, a path to move", openCodeHintWords("kimi-code-plan-cn", "mainland-cn"), remove, "move /h/.opencode-kimi-auth/oauth.json away, then run `opencode auth login -p kimi-code-plan-cn` (or `kimi-auth login`)"]
  ] as const)("%s", (_, words, hint, text) => {
    expect(words(hint)).toBe(text)
  })

  it("the plugin always names its own provider's login: another region's hint is refused there anyway", () => {
    expect(openCodeHintWords("kimi-code-plan-cn", "mainland-cn")(logInGlobal)).toBe(openCodeLogin("kimi-code-plan-cn", "mainland-cn"))
  })

  it("OpenCode 2's method id in the words is the plugin's", () => {
    expect(openCodeLogin("kimi-code-plan-cn", "mainland-cn", "v2")).toContain(`--method ${V2_METHOD_ID}`)
  })

  it.each([
    [undefined, "kimi-auth", "kimi-auth login"],
    ["mainland-cn", "kimi-auth", "kimi-auth login"],
    ["global", "kimi-auth", "kimi-auth login --region global"],
    ["global", "npx kimi-auth", "npx kimi-auth login --region global"]
  ] as const)("cliLoginCommand(%s, %s) = %s", (region, invoker, command) => {
    expect(cliLoginCommand(region, invoker)).toBe(command)
  })
})

describe("a message from its advice", () => {
  it.each([
    ["a clause after a semicolon", "You are not logged in to Kimi (no tokens at /x)", "run `kimi-auth login`", "You are not logged in to Kimi (no tokens at /x); run `kimi-auth login`."],
    ["its own sentence after a full stop", "The login code expired. Approve the next code in time.", "run `kimi-auth login`", "The login code expired. Approve the next code in time. Run `kimi-auth login`."]
  ] as const)("adviseWith: %s", (_, detail, clause, message) => {
    expect(adviseWith(detail, clause)).toBe(message)
  })

  const error = new NotLoggedInError({ reason: "no-tokens", ...advised("You are not logged in to Kimi (no tokens at /x)", logIn) })

  it("the default message is the one the Effect API always had: detail; LOGIN_HINT.", () => {
    expect(error.message).toBe(`You are not logged in to Kimi (no tokens at /x); ${LOGIN_HINT}.`)
    expect(error.hint).toEqual(logIn)
  })

  it.each([
    ["the CLI", cliHintWords("global"), "You are not logged in to Kimi (no tokens at /x); run `kimi-auth login --region global` (or `opencode auth login -p kimi-code-plan-global` in OpenCode)."],
    ["OpenCode 1.18", openCodeHintWords("kimi-code-plan-cn", "mainland-cn"), "You are not logged in to Kimi (no tokens at /x); run `opencode auth login -p kimi-code-plan-cn` (or `kimi-auth login`)."]
  ] as const)("messageIn, %s: the detail and the edge's words, no text patched", (_, words, message) => {
    expect(messageIn(error, words)).toBe(message)
  })

  it("an error without advice keeps its message as it is (nothing is rewritten)", () => {
    const plain = new TokenStoreError({ path: "/x", message: "Run `kimi-auth login` somewhere." })
    expect(messageIn(plain, openCodeHintWords("kimi-code-plan-cn", "mainland-cn"))).toBe("Run `kimi-auth login` somewhere.")
  })
})

describe("how the CLI is run, for the commands it names", () => {
  const onPath = () => true
  const notOnPath = () => false
  it.each([
    ["a global install", "/usr/lib/node_modules/opencode-kimi-auth/dist/bundle/cli.js", onPath, "kimi-auth"],
    ["a local install, nothing on PATH (npx)", "/p/node_modules/opencode-kimi-auth/dist/bundle/cli.js", notOnPath, "npx kimi-auth"],
    ["a local install, another on PATH", "/p/node_modules/opencode-kimi-auth/dist/bundle/cli.js", onPath, "kimi-auth"],
    ["a checkout, even when npm started its parent", "/src/opencode-kimi-auth/dist/bundle/cli.js", notOnPath, "kimi-auth"],
    ["no script known", undefined, notOnPath, "kimi-auth"],
    ["a Windows local install", "C:\\p\\node_modules\\opencode-kimi-auth\\dist\\bundle\\cli.js", notOnPath, "npx kimi-auth"]
  ] as const)("%s", (_, script, path, invoker) => {
    expect(invokerRule({ script, onPath: path })).toBe(invoker)
  })
})
