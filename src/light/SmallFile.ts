/**
 * Reading the package's own small files (the token file, the device id, the
 * refresh marker) without trusting what is found at their path.
 *
 * `readFile` loads whatever is there: a 1 GB sparse `oauth.json` took 1.1 GB
 * of memory and then failed with a misleading "check that it is a file you
 * own"; a named pipe (FIFO) as `device_id` blocked the process forever, deaf
 * to SIGTERM, since the read ran on the main thread. Here the path is checked
 * with `stat` before it is opened, opened non-blocking (a FIFO never blocks
 * the open), checked again on the descriptor, and read up to a cap: a file
 * larger than the cap is reported by its size, never loaded.
 *
 * Writing them: {@link writeSmallFileSync}, a new private file renamed over
 * the old one.
 *
 * Sync `node:fs`, a few system calls, for files of a few KiB.
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"

/**
 * Largest token file read: two tokens at the 8 KiB cap and every other field
 * fit in a third of this; anything larger is damaged and never loaded.
 */
export const TOKEN_FILE_LIMIT_BYTES = 64 * 1024

/** What was found at a path. */
export type SmallFile =
  /** Nothing there. */
  | { readonly _tag: "Missing" }
  /** A regular file within the cap, as UTF-8 text. */
  | { readonly _tag: "Text"; readonly text: string }
  /** A regular file larger than the cap (its size in bytes); not read. */
  | { readonly _tag: "TooLarge"; readonly bytes: number; readonly limitBytes: number }
  /** Something other than a regular file (a folder, a FIFO, a device, a socket); not read. */
  | { readonly _tag: "NotAFile"; readonly kind: string }

/** What `st` is, in words for a message: "a folder", "a named pipe (FIFO)", … */
export const describeKind = (st: nodeFs.Stats): string =>
  st.isDirectory()
    ? "a folder"
    : st.isFIFO()
    ? "a named pipe (FIFO)"
    : st.isSocket()
    ? "a socket"
    : st.isCharacterDevice() || st.isBlockDevice()
    ? "a device"
    : st.isSymbolicLink()
    ? "a symbolic link"
    : "not a regular file"

const NONBLOCK = nodeFs.constants.O_NONBLOCK ?? 0

/**
 * Reads `file` when it is a regular file of at most `maxBytes` (links are
 * followed). Never blocks on a FIFO or device and never allocates more than
 * `maxBytes + 1`. Errors other than a missing file (`EACCES`, `EIO`, …) are
 * thrown as the `node:fs` error.
 */
export const readSmallFileSync = (file: string, maxBytes: number): SmallFile => {
  let before: nodeFs.Stats
  try {
    before = nodeFs.statSync(file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "Missing" }
    throw e
  }
  if (!before.isFile()) return { _tag: "NotAFile", kind: describeKind(before) }
  if (before.size > maxBytes) return { _tag: "TooLarge", bytes: before.size, limitBytes: maxBytes }
  let fd: number
  try {
    fd = nodeFs.openSync(file, nodeFs.constants.O_RDONLY | NONBLOCK)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "Missing" }
    throw e
  }
  try {
    // Replaced between the stat and the open: judge what was opened.
    const st = nodeFs.fstatSync(fd)
    if (!st.isFile()) return { _tag: "NotAFile", kind: describeKind(st) }
    if (st.size > maxBytes) return { _tag: "TooLarge", bytes: st.size, limitBytes: maxBytes }
    const buffer = Buffer.alloc(maxBytes + 1)
    let length = 0
    while (length < buffer.length) {
      const n = nodeFs.readSync(fd, buffer, length, buffer.length - length, null)
      if (n === 0) break
      length += n
    }
    // Grew while read: still too large, and never loaded.
    if (length > maxBytes) return { _tag: "TooLarge", bytes: Math.max(length, st.size), limitBytes: maxBytes }
    return { _tag: "Text", text: buffer.subarray(0, length).toString("utf8") }
  } finally {
    nodeFs.closeSync(fd)
  }
}

/** Size in words: `1.0 GiB`, `300 KiB`, `12 bytes`. */
export const describeSize = (bytes: number): string =>
  bytes >= 1024 ** 3
    ? `${(bytes / 1024 ** 3).toFixed(1)} GiB`
    : bytes >= 1024 ** 2
    ? `${(bytes / 1024 ** 2).toFixed(1)} MiB`
    : bytes >= 1024
    ? `${Math.round(bytes / 1024)} KiB`
    : `${bytes} bytes`

/**
 * Replaces `file` with `text` atomically: written to a new, randomly named
 * 0600 file beside it (`wx`, so a planted link or file at that name is never
 * written through), fsynced, then renamed over `file` (a link at `file` is
 * replaced, not followed). The temporary file is removed on failure, and the
 * error is thrown.
 */
export const writeSmallFileSync = (file: string, text: string): void => {
  const tmp = nodePath.join(
    nodePath.dirname(file),
    `.${nodePath.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString("hex")}.tmp`
  )
  const fd = nodeFs.openSync(tmp, "wx", 0o600)
  try {
    nodeFs.writeFileSync(fd, text)
    nodeFs.fsyncSync(fd)
  } catch (e) {
    nodeFs.closeSync(fd)
    nodeFs.rmSync(tmp, { force: true })
    throw e
  }
  nodeFs.closeSync(fd)
  try {
    nodeFs.renameSync(tmp, file)
  } catch (e) {
    nodeFs.rmSync(tmp, { force: true })
    throw e
  }
}
