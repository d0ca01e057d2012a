/**
 * Support of the fault suite: the secret patterns every output is scanned
 * for, canary secrets the fault tests plant, and a log of everything the
 * suite's child processes and errors printed (scanned by
 * scripts/test-faults.mjs after the run).
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/**
 * Prefix of the canary secrets the fault tests plant in responses and token
 * files. A canary is the prefix plus 24 hex digits; the prefix alone (as in
 * this source file) never matches {@link SECRET_PATTERNS}.
 */
export const CANARY_PREFIX = "kimicanary"

/** A fresh canary secret. */
export const canary = (label = "") => `${CANARY_PREFIX}${label.replace(/[^a-z]/g, "")}x${crypto.randomBytes(12).toString("hex")}`

/** What counts as a token value in any output: the emulator's minted tokens and device codes, and the canaries. */
export const SECRET_PATTERNS: ReadonlyArray<RegExp> = [
  /emu_(?:at|rt|dc)_[A-Za-z0-9_-]{32}/g,
  new RegExp(`${CANARY_PREFIX}[a-z]*x[0-9a-f]{24}`, "g")
]

/** Every match of {@link SECRET_PATTERNS} in `text`. */
export const findSecrets = (text: string): Array<string> => SECRET_PATTERNS.flatMap((p) => [...text.matchAll(p)].map((m) => m[0]))

/** The folder where this run's outputs are collected (set by scripts/test-faults.mjs), or a temp one. */
export const logDir = (): string => {
  const dir = process.env["KIMI_FAULTS_LOG_DIR"] ?? path.join(process.env["TMPDIR"] ?? "/tmp", "kimi-faults-logs")
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

/** Appends output (a child's stdout/stderr, an error message) to this run's log under `name`. */
export const record = (name: string, text: string): void => {
  if (text === "") return
  fs.appendFileSync(path.join(logDir(), `${name.replace(/[^A-Za-z0-9_.-]/g, "_")}.log`), text.endsWith("\n") ? text : `${text}\n`)
}
