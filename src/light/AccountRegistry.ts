/**
 * The account registry: `accounts.json` in the storage folder, the list of
 * Kimi accounts logged in on this machine and the active account of each
 * region. Effect-free (`node:fs`, synchronous), so the CLI's fast path and
 * the OpenCode plugin's thin half can read it without loading the core.
 *
 * Decisions recorded here (issue 21, "An account is a family"):
 *
 * - **One account, one family, one file.** Each account's tokens live in their
 *   own token file in the storage folder, with the lock, the in-flight marker
 *   and the notes beside it, named after that file as for `oauth.json`
 *   (`<file>.lock`, `<file>.refreshing`, …). The token store is the same
 *   store pointed at another path: the configuration decides the path.
 * - **The default account is `oauth.json`.** The first login on a machine,
 *   and every login made before accounts existed, lives there, in the seed's
 *   documented format. An older release running beside this one only knows
 *   `oauth.json` and keeps working on it; a login is never moved between
 *   files (a running older copy holds that family). An `oauth.json` with a
 *   login that the registry does not list is the default account (its user
 *   id unknown until `/me` is asked, shown as "default account").
 * - **Other accounts are `oauth.<region>.<user id>.json` beside it**, in the
 *   same folder rather than a subfolder: the device id, the logout marker and
 *   the folder's 0700 check stay shared, nothing else changes in the store,
 *   and an older release never looks at these names. The region is in the
 *   name because a login is only good at the region that issued it (the same
 *   user id at kimi.com and kimi.ai are two families). A user id that is not
 *   a plain `[A-Za-z0-9_-]{1,64}` is replaced by a hash in the name.
 * - **Accounts are keyed by their file name**: unique, stable, and known even
 *   before the user id is. The registry names files only by a checked bare
 *   name (`oauth…json`), never a path, so a damaged or planted registry can
 *   never point a login at a file elsewhere.
 * - **Read leniently**: a missing, damaged, oversized or foreign registry
 *   reads as empty (the default account still shows); an entry that does not
 *   decode is skipped; an active pointer to an unknown account is dropped.
 *
 * On disk:
 * ```json
 * { "version": 1,
 *   "accounts": [ { "file": "oauth.json", "user_id": "u1", "nickname": "Ada", "email": "ada@example.com",
 *                   "region": "mainland-cn", "added_at": "2026-12-06T20:00:00Z" } ],
 *   "active": { "mainland-cn": "oauth.json" },
 *   "current": "oauth.json" }
 * ```
 * `active` holds each region's active account, `current` the account last
 * logged in or switched to (used when neither an account nor a region is
 * named).
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as path from "node:path"
import { readSmallFileSync, TOKEN_FILE_LIMIT_BYTES, writeSmallFileSync } from "./SmallFile.js"
import { DEFAULT_REGION, isRegion, type KimiRegion } from "./Region.js"
import { parseTokenFileText } from "./TokenValidation.js"

/** The registry's file name inside the storage folder. */
export const REGISTRY_FILE_NAME = "accounts.json"

/** The default account's token file name (the seed's file). */
export const DEFAULT_TOKEN_FILE_NAME = "oauth.json"

/** The registry format version written. */
export const REGISTRY_VERSION = 1

/** A registry larger than this is not ours: it reads as empty. */
export const REGISTRY_LIMIT_BYTES = 256 * 1024

/** At most this many accounts are read (the rest are ignored). */
export const MAX_ACCOUNTS = 64

/** One account as the registry records it. */
export interface AccountRecord {
  /** The token file's bare name in the storage folder (the account's key). */
  readonly file: string
  /** Kimi's user id (`GET /me` → `user_id`); `undefined` until learned (the default account after an upgrade). */
  readonly userId: string | undefined
  readonly nickname: string | undefined
  readonly email: string | undefined
  readonly region: KimiRegion
  /** When the account was first logged in here (ISO), when known. */
  readonly addedAt: string | undefined
}

/** The decoded registry. */
export interface Registry {
  readonly accounts: ReadonlyArray<AccountRecord>
  /** Each region's active account, by file name. */
  readonly active: Readonly<Partial<Record<KimiRegion, string>>>
  /** The account last logged in or switched to, by file name. */
  readonly current: string | undefined
}

/** The empty registry. */
export const EMPTY_REGISTRY: Registry = { accounts: [], active: {}, current: undefined }

const FILE_NAME = /^oauth(\.[A-Za-z0-9_-]{1,80}){0,2}\.json$/

/** Whether `name` is a token file name the registry may point at (a bare `oauth….json`, no path). */
export const isTokenFileName = (name: unknown): name is string => typeof name === "string" && FILE_NAME.test(name)

const SAFE_ID = /^[A-Za-z0-9_-]{1,64}$/

/** A user id as it may appear in a file name: itself when plain, else `h-` and 24 hex digits of its SHA-256. */
export const fileSafeId = (userId: string): string =>
  SAFE_ID.test(userId) ? userId : `h-${crypto.createHash("sha256").update(userId, "utf8").digest("hex").slice(0, 24)}`

/** The token file name of a non-default account: `oauth.<region>.<user id>.json`. */
export const accountFileName = (region: KimiRegion, userId: string): string => `oauth.${region}.${fileSafeId(userId)}.json`

/** A short text field from outside: a trimmed string of at most `max` characters without control characters. */
const text = (u: unknown, max = 200): string | undefined => {
  if (typeof u !== "string") return undefined
  // eslint-disable-next-line no-control-regex
  const t = u.replace(/[\u0000-\u001f\u007f]/g, "").trim()
  return t === "" ? undefined : t.slice(0, max)
}

/** The region a file name says (`oauth.global.u1.json` → `global`), if any. */
const regionOfFileName = (file: string): KimiRegion | undefined => {
  const r = file.split(".")[1]
  return isRegion(r) ? r : undefined
}

const decodeRecord = (u: unknown): AccountRecord | undefined => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return undefined
  const r = u as Record<string, unknown>
  if (!isTokenFileName(r["file"])) return undefined
  const file = r["file"]
  return {
    file,
    userId: text(r["user_id"], 128),
    nickname: text(r["nickname"]),
    email: text(r["email"]),
    region: isRegion(r["region"]) ? r["region"] : regionOfFileName(file) ?? DEFAULT_REGION,
    addedAt: text(r["added_at"], 40)
  }
}

/**
 * Decodes the registry's text leniently: anything unusable reads as empty,
 * entries that do not decode are skipped (the first of two for one file
 * wins), pointers to unknown accounts are dropped. Never throws.
 */
export const decodeRegistry = (raw: string): { readonly registry: Registry; readonly problem: string | undefined } => {
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch {
    return { registry: EMPTY_REGISTRY, problem: "it is not valid JSON" }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { registry: EMPTY_REGISTRY, problem: "it does not hold a JSON object" }
  }
  const o = json as Record<string, unknown>
  const list = Array.isArray(o["accounts"]) ? o["accounts"] : []
  const accounts: Array<AccountRecord> = []
  for (const entry of list.slice(0, MAX_ACCOUNTS)) {
    const record = decodeRecord(entry)
    if (record !== undefined && !accounts.some((a) => a.file === record.file)) accounts.push(record)
  }
  const known = (u: unknown): string | undefined => (isTokenFileName(u) && accounts.some((a) => a.file === u) ? u : undefined)
  const activeIn = typeof o["active"] === "object" && o["active"] !== null ? (o["active"] as Record<string, unknown>) : {}
  const active: Partial<Record<KimiRegion, string>> = {}
  for (const region of ["mainland-cn", "global"] as const) {
    const file = known(activeIn[region])
    if (file !== undefined && accounts.find((a) => a.file === file)?.region === region) active[region] = file
  }
  return {
    registry: { accounts, active, current: known(o["current"]) },
    problem: Array.isArray(o["accounts"]) ? undefined : "it lists no accounts"
  }
}

/** The registry's text: pretty-printed, newline-terminated, undefined fields left out. */
export const encodeRegistry = (registry: Registry): string =>
  JSON.stringify(
    {
      version: REGISTRY_VERSION,
      accounts: registry.accounts.map((a) => ({
        file: a.file,
        ...(a.userId !== undefined ? { user_id: a.userId } : {}),
        ...(a.nickname !== undefined ? { nickname: a.nickname } : {}),
        ...(a.email !== undefined ? { email: a.email } : {}),
        region: a.region,
        ...(a.addedAt !== undefined ? { added_at: a.addedAt } : {})
      })),
      active: registry.active,
      ...(registry.current !== undefined ? { current: registry.current } : {})
    },
    null,
    2
  ) + "\n"

/** The registry's path in a storage folder. */
export const registryPath = (storageDir: string): string => path.join(storageDir, REGISTRY_FILE_NAME)

/**
 * Reads the registry of a storage folder, capped and non-blocking; a missing
 * one is empty, an unreadable or damaged one reads as empty with the problem
 * named (for `kimi-auth accounts`). Never throws.
 */
export const readRegistrySync = (storageDir: string): { readonly registry: Registry; readonly problem: string | undefined } => {
  try {
    const found = readSmallFileSync(registryPath(storageDir), REGISTRY_LIMIT_BYTES)
    if (found._tag === "Missing") return { registry: EMPTY_REGISTRY, problem: undefined }
    if (found._tag === "TooLarge") return { registry: EMPTY_REGISTRY, problem: "it is too large to be ours" }
    if (found._tag === "NotAFile") return { registry: EMPTY_REGISTRY, problem: `it is ${found.kind}` }
    return decodeRegistry(found.text)
  } catch (e) {
    return { registry: EMPTY_REGISTRY, problem: `it cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})` }
  }
}

/**
 * Writes the registry atomically (temp file, fsync, rename; 0600). The caller
 * holds the registry lock (`accounts.json.lock`); throws the `node:fs` error.
 */
export const writeRegistrySync = (storageDir: string, registry: Registry): void =>
  writeSmallFileSync(registryPath(storageDir), encodeRegistry(registry))

/** What a token file holds, read cheaply: no login, or a login and the region it records. */
export type FileLogin =
  | { readonly _tag: "None" }
  | { readonly _tag: "Login"; readonly region: KimiRegion | undefined }

/** Peeks at a token file (capped, non-blocking, never throws): whether it holds a login, and its region. */
export const peekTokenFile = (file: string): FileLogin => {
  try {
    const found = readSmallFileSync(file, TOKEN_FILE_LIMIT_BYTES)
    if (found._tag === "Missing") return { _tag: "None" }
    const parsed = found._tag === "Text" ? parseTokenFileText(found.text) : undefined
    // A damaged file still counts as a login here: the store moves it aside and says so.
    return { _tag: "Login", region: parsed?.ok ? parsed.value.region : undefined }
  } catch {
    return { _tag: "None" }
  }
}
