/**
 * Opens a URL in the user's browser, best effort: never fails, never blocks,
 * and does nothing where there is no display (SSH sessions, CI, containers).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"

/** Whether a browser can plausibly be shown on this machine. */
export const canOpenBrowser = (env: NodeJS.ProcessEnv = process.env): boolean => {
  if (env["CI"]) return false
  if (process.platform === "darwin" || process.platform === "win32") return true
  return Boolean(env["DISPLAY"] || env["WAYLAND_DISPLAY"])
}

/** Tries to open `url`; reports whether a launcher was started. */
export const openBrowser = (url: string): Effect.Effect<boolean> =>
  Effect.sync(() => {
    if (!canOpenBrowser()) return false
    const [command, args] = process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
      ? ["cmd", ["/c", "start", "", url.replace(/&/g, "^&")]]
      : ["xdg-open", [url]]
    try {
      const child = spawn(command, args as Array<string>, { stdio: "ignore", detached: true })
      child.on("error", () => {})
      child.unref()
      return true
    } catch {
      return false
    }
  })
