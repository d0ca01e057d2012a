/**
 * `npm run demo`: the whole story on the bundled emulator, offline, in a few
 * seconds. A device code appears, the login is approved, tokens land on disk,
 * a chat request goes through the OpenCode plugin's fetch with a fresh bearer
 * token, a forced refresh rotates the tokens, a thinking request streams its
 * reasoning, and the plan's quota is read (in the new plans' `/usages` shape:
 * 5-hour, weekly and monthly windows, the booster wallet), used up and refused. No secret is
 * ever printed: tokens are shown as short fingerprints. Colour only on a
 * terminal, and never with `NO_COLOR` (as the CLI).
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bold } from "./cli/Output.js"
import { start } from "./emulator/KimiEmulator.js"
import { KimiAuthPlugin } from "./opencode/KimiPlugin.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const cli = path.join(here, "cli", "main.js")

const fingerprint = (secret: string) => `#${crypto.createHash("sha256").update(secret).digest("hex").slice(0, 8)}`
const step = (n: number, title: string) => process.stdout.write(`\n${bold(`${n}. ${title}`)}\n`)
const say = (line: string) => process.stdout.write(`   ${line}\n`)

/** Runs the real `kimi-auth` CLI, echoing its output indented. */
const kimiAuth = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    const echo = (chunk: Buffer) =>
      process.stdout.write(chunk.toString("utf8").split("\n").map((l) => (l === "" ? l : `   │ ${l}`)).join("\n"))
    child.stdout.on("data", echo)
    child.stderr.on("data", echo)
    child.on("error", reject)
    child.on("close", (code) => resolve(code ?? 1))
  })

const readTokens = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as { access_token: string; refresh_token: string }

type Emulator = Awaited<ReturnType<typeof start>>
type Chat = (content: string, extra?: Record<string, unknown>) => Promise<Response>

/** Steps 1 to 3: the emulator, `kimi-auth login`, `kimi-auth status`. */
const loginSteps = async (emulator: Emulator, env: NodeJS.ProcessEnv, tokenFile: string) => {
  step(1, "The bundled Kimi emulator (OAuth + OpenAI-compatible API) on loopback")
  say(`listening on ${emulator.url}; it approves each login 2.5 s after it starts`)

  step(2, "kimi-auth login --no-browser")
  const loginCode = await kimiAuth(["login", "--no-browser"], env)
  if (loginCode !== 0) throw new Error(`login exited ${loginCode}`)
  const polls = emulator.requests("/api/oauth/token")
  say(`the emulator saw ${polls.length} polls, ${emulator.stats().slowDowns} slow_down; device id ${polls[0]?.msh.deviceId}`)
  const mode = (fs.statSync(tokenFile).mode & 0o777).toString(8)
  say(`${tokenFile} (mode ${mode}) holds access ${fingerprint(readTokens(tokenFile).access_token)}, refresh ${fingerprint(readTokens(tokenFile).refresh_token)}`)

  step(3, "kimi-auth status")
  await kimiAuth(["status"], env)
}

/** Step 4: the OpenCode plugin's config hook and loader, then one chat through its fetch. Answers the chat function. */
const pluginChatStep = async (emulator: Emulator, plugin: Awaited<ReturnType<typeof KimiAuthPlugin>>): Promise<Chat> => {
  step(4, "A chat request through the OpenCode plugin's fetch")
  const provider: { provider?: Record<string, unknown> } = {}
  await plugin.config(provider)
  const block = provider.provider?.[plugin.auth.provider] as { options: Record<string, unknown> }
  say(`the config hook gave OpenCode's provider "${plugin.auth.provider}" the options: ${Object.keys(block.options).join(", ")}`)
  const options = await plugin.auth.loader(async () => undefined)
  // What the AI SDK sends: the loader's placeholder apiKey as a bearer, which the plugin's fetch replaces.
  const headers = { Authorization: `Bearer ${options.apiKey}`, "content-type": "application/json" }
  const chat: Chat = (content, extra = {}) =>
    options.fetch!(`${options.baseURL}/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content }], ...extra })
    })
  const first = await chat("Say hello")
  if (first.status !== 200) throw new Error(`the chat request failed with HTTP ${first.status}: ${await first.text()}`)
  const answer = (await first.json()) as { choices: Array<{ message: { content: string } }> }
  const seen = emulator.requests("/coding/v1/chat/completions").at(-1)!
  say(`HTTP ${first.status}: "${answer.choices[0]?.message.content}"`)
  say(`the API saw bearer ${fingerprint(seen.bearer ?? "")} and X-Msh-Platform=${seen.msh.platform}, X-Msh-Device-Id=${seen.msh.deviceId}`)
  return chat
}

/** Step 5: every access token expired; one 401, one refresh, one retry, the refresh token rotated. */
const refreshStep = async (emulator: Emulator, chat: Chat, tokenFile: string) => {
  step(5, "Forcing a refresh: the emulator expires every access token")
  const before = readTokens(tokenFile)
  emulator.expireAccessTokens()
  const second = await chat("Again, please")
  const after = readTokens(tokenFile)
  const refreshes = emulator.stats().refreshes
  say(`HTTP ${second.status} after one 401, one refresh (${refreshes} in all) and one retry`)
  say(`access  ${fingerprint(before.access_token)} -> ${fingerprint(after.access_token)}`)
  say(`refresh ${fingerprint(before.refresh_token)} -> ${fingerprint(after.refresh_token)} (rotated; the old one is spent and a replay would revoke the login)`)
  if (second.status !== 200 || before.refresh_token === after.refresh_token || refreshes !== 1) {
    throw new Error("the refresh did not rotate the tokens as expected")
  }
}

/** Step 6: Kimi's thinking asked for in the body, the reasoning streamed first. */
const thinkingStep = async (emulator: Emulator, chat: Chat) => {
  step(6, "Thinking: the body asks for it, the answer streams reasoning_content first")
  const thinking = await chat("Why is the sky blue?", { stream: true, thinking: { type: "enabled" } })
  const deltas = (await thinking.text()).split("\n\n").filter((e) => e.startsWith("data: {"))
    .flatMap((e) => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: Record<string, string> }> }).choices)
    .map((c) => c.delta)
  const reasoning = deltas.map((d) => d["reasoning_content"] ?? "").join("")
  const content = deltas.map((d) => d["content"] ?? "").join("")
  say(`the server received thinking ${JSON.stringify((emulator.chatBodies().at(-1) as { thinking?: unknown }).thinking)}`)
  say(`HTTP ${thinking.status}, ${deltas.filter((d) => "reasoning_content" in d).length} reasoning chunks, then the answer`)
  say(`reasoning: ${reasoning}`)
  say(`answer:    ${content}`)
  if (thinking.status !== 200 || reasoning === "" || content === "") throw new Error("the thinking request did not stream reasoning")
}

/** Step 7: the 5-hour window used up: a 403 naming it, no refresh, no retry; `kimi-auth usage`. */
const quotaStep = async (emulator: Emulator, chat: Chat, env: NodeJS.ProcessEnv) => {
  step(7, "The plan's quota (the new plans' /usages shape): the emulator uses up the 5-hour window")
  emulator.exhaustQuota("fiveHour")
  const refused = await chat("One more?")
  const refusal = (await refused.json()) as { error?: { message?: string } }
  say(`the next chat: HTTP ${refused.status}, no refresh, no retry; OpenCode would show:`)
  say(`"${refusal.error?.message}"`)
  say("kimi-auth usage (every window's share and reset, then the booster wallet):")
  const usageCode = await kimiAuth(["usage"], env)
  if (usageCode !== 0) throw new Error(`kimi-auth usage exited ${usageCode}`)
  if (refused.status !== 403 || emulator.stats().refreshes !== 1) {
    throw new Error(`a used-up quota answered HTTP ${refused.status} (${emulator.stats().refreshes} refreshes)`)
  }
}

const main = async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-auth-demo-"))
  const storageDir = path.join(home, ".opencode-kimi-auth")
  const tokenFile = path.join(storageDir, "oauth.json")
  const emulator = await start({ interval: 1, autoApproveAfterMillis: 2500 })
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    OPENCODE_KIMI_AUTH_DIR: storageDir,
    KIMI_OAUTH_HOST: emulator.oauthHost,
    KIMI_CODE_BASE_URL: emulator.apiBaseUrl,
    DISPLAY: "",
    WAYLAND_DISPLAY: ""
  }
  let plugin: Awaited<ReturnType<typeof KimiAuthPlugin>> | undefined
  try {
    await loginSteps(emulator, env, tokenFile)
    plugin = await KimiAuthPlugin({}, { storageDir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl })
    const chat = await pluginChatStep(emulator, plugin)
    await refreshStep(emulator, chat, tokenFile)
    await thinkingStep(emulator, chat)
    await quotaStep(emulator, chat, env)
    step(8, "Done")
    say("everything ran offline against the emulator; stopping it now")
  } finally {
    await plugin?.dispose()
    await emulator.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  }
)
