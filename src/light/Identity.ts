/**
 * The identity every Kimi request carries (`X-Msh-*` and `User-Agent`), and
 * the device id read without creating it: Effect-free, for the OpenCode 2
 * request hooks' fast path; `oauth/DeviceIdentity.ts` builds the service on
 * the same functions.
 *
 * @since 0.2.0
 */
import * as os from "node:os"
import type { PlainSettings } from "./ResolveSettings.js"
import { readSmallFileSync } from "./SmallFile.js"

/** Facts about the machine that go into the headers. */
export interface MachineFacts {
  readonly hostname: string
  readonly deviceModel: string
  readonly osVersion: string
}

/**
 * Makes a header value safe: ASCII printable only, whitespace folded, trimmed;
 * `unknown` when nothing is left.
 */
export const asciiHeaderValue = (raw: string | undefined | null): string => {
  const cleaned = String(raw ?? "")
    .normalize("NFKD")
    .replace(/[^\x20-\x7e]/g, " ")
    .replace(/\s+/g, " ")
    .trim()
  return cleaned === "" ? "unknown" : cleaned
}

const archName = (arch: string, platform: string): string => {
  if (platform === "win32") return arch === "x64" ? "AMD64" : arch.toUpperCase()
  if (arch === "x64") return "x86_64"
  if (arch === "ia32") return "i386"
  return arch
}

/** Reads host name, model (`Linux 6.1.0 x86_64`, `macOS 14.5 arm64`, `Windows 10.0.22631 AMD64`) and OS version. */
export const machineFacts = (): MachineFacts => {
  const platform = process.platform
  const safe = (f: () => string) => {
    try {
      return f()
    } catch {
      return "unknown"
    }
  }
  const system = platform === "darwin" ? "macOS" : platform === "win32" ? "Windows" : safe(() => os.type())
  const release = safe(() => os.release())
  return {
    hostname: safe(() => os.hostname()),
    deviceModel: `${system} ${release} ${archName(process.arch, platform)}`,
    osVersion: safe(() => (typeof os.version === "function" ? os.version() : release))
  }
}

/** Builds the identity headers for a device id. Pure: every value is ASCII-clean. */
export const identityHeaders = (
  settings: Pick<PlainSettings, "platform" | "version" | "userAgent">,
  deviceId: string,
  facts: MachineFacts = machineFacts()
): Record<string, string> => ({
  "X-Msh-Platform": asciiHeaderValue(settings.platform),
  "X-Msh-Version": asciiHeaderValue(settings.version),
  "X-Msh-Device-Name": asciiHeaderValue(facts.hostname),
  "X-Msh-Device-Model": asciiHeaderValue(facts.deviceModel),
  "X-Msh-Os-Version": asciiHeaderValue(facts.osVersion),
  "X-Msh-Device-Id": asciiHeaderValue(deviceId),
  "User-Agent": asciiHeaderValue(settings.userAgent)
})

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The stored device id, or `undefined` when none is stored yet or the file is not a plain small file with a UUID. Never throws. */
export const peekDeviceIdSync = (file: string): string | undefined => {
  try {
    const found = readSmallFileSync(file, 1024)
    if (found._tag !== "Text") return undefined
    const s = found.text.replace(/^\uFEFF/, "").trim()
    return UUID.test(s) ? s : undefined
  } catch {
    return undefined
  }
}
