/**
 * Who is calling: the device id and the `X-Msh-*` headers Kimi expects on
 * every OAuth and API call.
 *
 * The device id is a random UUID created once, stored as `device_id` (mode
 * 0600) in the storage folder, and reused by every later call and process.
 * It is stored by the first save of tokens, never by building the layer:
 * read-only commands (`status`) write nothing.
 * Header values are made ASCII, stripped of control characters and trimmed:
 * a non-ASCII host name or the trailing newline of an OS version string has
 * broken real logins.
 *
 * `X-Msh-Platform` is `kimi_cli` by default: the archived Python client's
 * value, not `kimi_code_cli`, which Moonshot's current client (kimi-code
 * 2.1.0) sends. Why we keep it:
 * - it is one of a consistent triple with `X-Msh-Version` (`1.0.0`) and the
 *   `KimiCLI/1.0.0` user agent; `kimi_code_cli` beside a version kimi-code
 *   never had would claim to be an ancient kimi-code build, which a server
 *   gate on client versions is likelier to refuse than an archived client;
 * - every login this package made was issued and refreshed with it, and the
 *   allow-list that kimi-code issue #1795 claims the server checks is
 *   unverified here (no live account in the test lanes): changing the value
 *   under existing logins would be a guess made for every user at once.
 * It stays configurable: the `platform` option, or `KIMI_MSH_PLATFORM` in the
 * environment (then set `version` to a matching kimi-code version). If Kimi
 * starts refusing `kimi_cli`, that is the switch, and the default follows.
 * docs/kimi.md keeps this decision with the other protocol choices.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Path from "effect/Path"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { TokenStoreError } from "../Errors.js"
import { KimiAuthConfig, type KimiAuthSettings } from "../config/KimiAuthConfig.js"
import { readSmallFileSync, TOKEN_FILE_LIMIT_BYTES } from "../light/SmallFile.js"
import { DEVICE_ID_LIMIT_BYTES, DEVICE_ID_PATTERN, deviceIdOfText } from "../light/DeviceIdText.js"
import { parseTokenFileText } from "../light/TokenValidation.js"
import { checkFolder } from "../storage/StoragePermissions.js"

/** The service: the device id and the headers built from it and the machine. */
export interface DeviceIdentityShape {
  readonly deviceId: string
  /** `X-Msh-Platform`, `-Version`, `-Device-Name`, `-Device-Model`, `-Os-Version`, `-Device-Id`, and `User-Agent`. */
  readonly headers: Readonly<Record<string, string>>
  /**
   * The device id if it exists already, without creating it (`undefined`
   * when none was stored yet). For read-only callers such as `status`.
   */
  readonly peekDeviceId?: (() => string | undefined) | undefined
}

import { identityHeaders } from "../light/Identity.js"

export { asciiHeaderValue, identityHeaders, type MachineFacts, machineFacts } from "../light/Identity.js"


const UUID = DEVICE_ID_PATTERN

/**
 * The error of a `device_id` that could not be read (`EACCES`, …): the
 * storage folder's own refusal when it has one (a folder of another user says
 * so, with the fix), else a hint to check the folder's permissions.
 */
const unreadableDeviceId = (settings: Pick<KimiAuthSettings, "storageDir" | "deviceIdPath">, cause: unknown) => {
  let refusal: string | undefined
  try {
    const check = checkFolder(settings.storageDir)
    if (check._tag === "Refused") refusal = check.message
  } catch {
    // the folder cannot be looked at either: the generic hint below
  }
  return new TokenStoreError({
    path: settings.deviceIdPath,
    message: refusal ?? `Cannot read the device id at ${settings.deviceIdPath}; check the folder's permissions.`,
    cause
  })
}

/**
 * Reads the device id from `device_id`, creating it (0600, in a 0700 folder)
 * when absent. Creation uses an exclusive open, so processes starting at once
 * agree on one id. A file that holds no UUID is replaced.
 */
export const loadOrCreateDeviceId = Effect.fn("DeviceIdentity.loadOrCreateDeviceId")(function*(
  settings: Pick<KimiAuthSettings, "storageDir" | "deviceIdPath">
) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const fail = (message: string) => (cause: unknown) =>
    new TokenStoreError({ path: settings.deviceIdPath, message, cause })
  const read = Effect.try({
    try: () => readDeviceIdSync(settings.deviceIdPath),
    catch: (cause) => cause instanceof TokenStoreError ? cause : unreadableDeviceId(settings, cause)
  })
  const existing = yield* read
  if (existing !== undefined) return existing
  yield* fs.makeDirectory(settings.storageDir, { recursive: true, mode: 0o700 }).pipe(
    Effect.mapError(fail(`Cannot create the storage folder ${settings.storageDir}; check its permissions.`))
  )
  const id = crypto.randomUUID()
  const tmp = path.join(settings.storageDir, `.device_id.${process.pid}.${crypto.randomBytes(4).toString("hex")}`)
  yield* fs.writeFileString(tmp, `${id}\n`, { mode: 0o600 }).pipe(
    Effect.andThen(fs.chmod(tmp, 0o600)),
    Effect.mapError(fail(`Cannot write the device id in ${settings.storageDir}; check its permissions.`))
  )
  // link() fails when the target exists: the first process to link wins, every other one reads its id.
  const linked = yield* fs.link(tmp, settings.deviceIdPath).pipe(
    Effect.as(true),
    Effect.catchReason("PlatformError", "AlreadyExists", () => Effect.succeed(false)),
    Effect.catch(() =>
      // Filesystems without hard links: fall back to a rename (last writer wins, still a valid UUID).
      fs.rename(tmp, settings.deviceIdPath).pipe(
        Effect.as(true),
        Effect.mapError(fail(`Cannot store the device id at ${settings.deviceIdPath}.`))
      )
    )
  )
  yield* fs.remove(tmp).pipe(Effect.ignore)
  if (linked) return id
  const winner = yield* read
  return winner ?? id
})

/** What `device_id` holds: an id, nothing, or something that is not one (damaged, huge). */
export type StoredDeviceId =
  | { readonly _tag: "Id"; readonly id: string }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Damaged" }

/**
 * Reads `device_id` (sync), capped: never loads a huge file, never blocks on
 * a FIFO. Something other than a regular file there (a folder, a FIFO, a
 * device) is thrown as a {@link TokenStoreError} saying what to do; other
 * I/O errors are thrown as they are.
 */
export const readStoredDeviceId = (file: string): StoredDeviceId => {
  const found = readSmallFileSync(file, DEVICE_ID_LIMIT_BYTES)
  if (found._tag === "Missing") return found
  if (found._tag === "NotAFile") {
    throw new TokenStoreError({
      path: file,
      message: `The device id file ${file} is ${found.kind}, not a regular file, so no device id can be read or ` +
        `stored there. Move it away (mv ${file} ${file}.bad); the next run stores the id again.`
    })
  }
  if (found._tag === "TooLarge") return { _tag: "Damaged" }
  const id = deviceIdOfText(found.text)
  return id !== undefined ? { _tag: "Id", id } : { _tag: "Damaged" }
}

/** Reads `device_id` (sync); `undefined` when absent or not a UUID. Other errors are thrown. */
const readDeviceIdSync = (file: string): string | undefined => {
  const stored = readStoredDeviceId(file)
  return stored._tag === "Id" ? stored.id : undefined
}

/**
 * The copy of the device id kept in the token file (`device_id`), when the
 * file holds a valid one: a damaged `device_id` file is restored from it
 * instead of a new id being made. `undefined` on any doubt; never throws.
 */
export const deviceIdFromTokenFile = (tokenFilePath: string): string | undefined => {
  try {
    const found = readSmallFileSync(tokenFilePath, TOKEN_FILE_LIMIT_BYTES)
    if (found._tag !== "Text") return undefined
    const parsed = parseTokenFileText(found.text)
    const id = parsed.ok ? parsed.value.deviceId?.trim() : undefined
    return id !== undefined && UUID.test(id) ? id : undefined
  } catch {
    return undefined
  }
}

/**
 * The sync twin of {@link loadOrCreateDeviceId}, for the first save, from a
 * getter: exclusive link, so concurrent first saves agree on one id. When the
 * folder cannot be written, an in-memory id serves this process (the next one
 * tries again); a device id is an identifier, not a secret.
 */
const createDeviceIdSync = (
  settings: Pick<KimiAuthSettings, "storageDir" | "deviceIdPath">,
  id: string = crypto.randomUUID()
): string => {
  try {
    const existing = readDeviceIdSync(settings.deviceIdPath)
    if (existing !== undefined) return existing
    nodeFs.mkdirSync(settings.storageDir, { recursive: true, mode: 0o700 })
    const tmp = nodePath.join(settings.storageDir, `.device_id.${process.pid}.${crypto.randomBytes(4).toString("hex")}`)
    nodeFs.writeFileSync(tmp, `${id}\n`, { mode: 0o600, flag: "wx" })
    try {
      nodeFs.linkSync(tmp, settings.deviceIdPath)
      return id
    } catch (e) {
      // No hard links, or a damaged file in the way (not a UUID): replace it.
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || readStoredDeviceId(settings.deviceIdPath)._tag === "Damaged") {
        nodeFs.renameSync(tmp, settings.deviceIdPath)
      }
      return readDeviceIdSync(settings.deviceIdPath) ?? id
    } finally {
      nodeFs.rmSync(tmp, { force: true })
    }
  } catch {
    return id
  }
}

/** The device identity service. */
export class DeviceIdentity extends Context.Service<DeviceIdentity, DeviceIdentityShape>()(
  "opencode-kimi-auth/DeviceIdentity"
) {
  /**
   * Reads the device id from the storage folder. When there is none yet,
   * requests carry a planned id and the first save (`deviceId`, read by the
   * token store) stores it, so building this layer for a read-only command
   * writes nothing.
   */
  static readonly layer: Layer.Layer<
    DeviceIdentity,
    TokenStoreError,
    KimiAuthConfig | FileSystem.FileSystem | Path.Path
  > = Layer.effect(
    DeviceIdentity,
    Effect.gen(function*() {
      const settings = yield* KimiAuthConfig
      const existing = yield* Effect.try({
        try: () => readDeviceIdSync(settings.deviceIdPath),
        catch: (cause) => cause instanceof TokenStoreError ? cause : unreadableDeviceId(settings, cause)
      })
      if (existing !== undefined) {
        return { deviceId: existing, headers: identityHeaders(settings, existing), peekDeviceId: () => existing }
      }
      // None yet: requests carry a planned id; the first save stores it (or adopts the id another
      // process stored first). Building the layer, and reading the status, write nothing.
      // A damaged `device_id` beside a token file: the token file's copy keeps the same id.
      const planned = deviceIdFromTokenFile(settings.tokenFilePath) ?? crypto.randomUUID()
      let created: string | undefined
      let headersFor: { readonly id: string; readonly headers: Record<string, string> } | undefined
      const current = () => created ?? planned
      return {
        get deviceId() {
          return (created ??= createDeviceIdSync(settings, planned))
        },
        get headers() {
          const id = current()
          if (headersFor?.id !== id) headersFor = { id, headers: identityHeaders(settings, id) }
          return headersFor.headers
        },
        peekDeviceId: () => created ?? readDeviceIdSync(settings.deviceIdPath)
      } satisfies DeviceIdentityShape
    })
  )

  /** A fixed device id (tests). */
  static readonly layerFixed = (deviceId: string): Layer.Layer<DeviceIdentity, never, KimiAuthConfig> =>
    Layer.effect(
      DeviceIdentity,
      Effect.map(KimiAuthConfig, (settings) => ({ deviceId, headers: identityHeaders(settings, deviceId) }))
    )
}
