/**
 * Opens a URL in the user's browser, best effort: never fails, and does
 * nothing where there is no display (SSH sessions, CI, containers).
 *
 * The opener (`xdg-open`, `open`, `start`) is watched for a short while so
 * the CLI can say honestly whether the page opened: a missing opener or a
 * non-zero exit is reported as a failure, with the reason. An opener still
 * running after the wait is taken as a browser that started (some openers run
 * the browser in the foreground); it is left running, detached.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"

/** What came of trying to open the page. */
export type BrowserResult =
  | { readonly _tag: "Opened" }
  /** The opener could not be started or exited with an error; `reason` says which, for the user. */
  | { readonly _tag: "Failed"; readonly reason: string }
  /** No display: nothing was tried. */
  | { readonly _tag: "Skipped" }

/** How long the opener is watched before it is taken to have started a browser. */
export const OPENER_WAIT_MILLIS = 3000

/** Whether a browser can plausibly be shown on this machine. `platform` is a seam for tests. */
export const canOpenBrowser = (
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform
): boolean => {
  if (env["CI"]) return false
  if (platform === "darwin" || platform === "win32") return true
  return Boolean(env["DISPLAY"] || env["WAYLAND_DISPLAY"])
}

/** The opener command of a platform: `open` on macOS, `cmd /c start` on Windows, `xdg-open` elsewhere. */
export const opener = (url: string, platform: NodeJS.Platform = process.platform): readonly [string, ReadonlyArray<string>] =>
  platform === "darwin"
    ? ["open", [url]]
    : platform === "win32"
    ? ["cmd", ["/c", "start", "", url.replace(/&/g, "^&")]]
    : ["xdg-open", [url]]

/**
 * Tries to open `url` and reports what happened: `Opened` when the opener
 * exited 0 (or was still running after {@link OPENER_WAIT_MILLIS}), `Failed`
 * with a reason when it could not be started or exited with an error.
 * `platform` is a seam for tests (the macOS opener runs on Linux too).
 */
export const openBrowser = (
  url: string,
  waitMillis: number = OPENER_WAIT_MILLIS,
  platform: NodeJS.Platform = process.platform
): Effect.Effect<BrowserResult> => {
  if (!canOpenBrowser(process.env, platform)) return Effect.succeed({ _tag: "Skipped" })
  const [command, args] = opener(url, platform)
  return Effect.callback<BrowserResult>((resume0) => {
    // The first outcome wins: a failed spawn emits "error" and may emit "exit" too.
    let done = false
    const resume = (effect: Effect.Effect<BrowserResult>) => {
      if (!done) resume0(effect)
      done = true
    }
    let child: ReturnType<typeof spawn>
    try {
      child = spawn(command, [...args], { stdio: "ignore", detached: true })
    } catch (e) {
      resume(Effect.succeed({ _tag: "Failed", reason: `${command} could not be started (${String(e)})` }))
      return
    }
    const timer = setTimeout(() => resume(Effect.succeed({ _tag: "Opened" })), waitMillis)
    timer.unref()
    child.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resume(Effect.succeed({
        _tag: "Failed",
        reason: e.code === "ENOENT" ? `${command} was not found` : `${command} could not be started (${e.code ?? e.message})`
      }))
    })
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      resume(Effect.succeed(
        code === 0
          ? { _tag: "Opened" }
          : { _tag: "Failed", reason: `${command} ${code === null ? `was killed by ${signal}` : `exited with code ${code}`}` }
      ))
    })
    child.unref()
    return Effect.sync(() => clearTimeout(timer))
  })
}
