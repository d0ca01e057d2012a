/**
 * The storage folder and token file are checked the way ssh checks `~/.ssh`:
 *
 * - **No links followed for modes**: modes are read with `lstat` and changed
 *   through a descriptor opened with `O_NOFOLLOW`, so a symbolic link never
 *   makes us chmod its target.
 * - **Only our own folder is tightened**: a real folder owned by us that is
 *   not the home folder, a root, or a sticky (`1777`) folder is set to 0700.
 *   Any other folder (a symbolic link, a shared sticky folder, the home folder)
 *   is never chmod-ed.
 * - **Refused**: a folder or token file owned by another user, a folder that
 *   others may write and that is not ours to tighten, a token file that is a
 *   symbolic link or not a regular file. The message says how to fix it.
 *
 * POSIX only: on Windows every check passes (there are no such bits; what
 * keeps the file private there is the ACL of the profile folder it lives in,
 * `%USERPROFILE%`, which only the user, SYSTEM and Administrators may open). Sync
 * `node:fs` calls on two paths, once per load or save.
 *
 * @since 0.1.0
 */
import * as nodeFs from "node:fs"
import * as os from "node:os"
import * as nodePath from "node:path"
import { lstatOrMissing } from "../light/SmallFile.js"

/** What a check found: fine, fine after a repair (with a warning to log), or refused with a message. */
export type PermissionCheck =
  | { readonly _tag: "Ok"; readonly repaired?: string | undefined }
  | { readonly _tag: "Refused"; readonly message: string }

const ok: PermissionCheck = { _tag: "Ok" }
const refused = (message: string): PermissionCheck => ({ _tag: "Refused", message })
const posix = process.platform !== "win32"
const myUid = () => (typeof process.getuid === "function" ? process.getuid() : -1)
const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(3, "0")

/** Whether we may tighten `dir` at all: not the home folder, not a root. */
const isOwnCandidate = (dir: string) => {
  const resolved = nodePath.resolve(dir)
  return resolved !== nodePath.resolve(os.homedir()) && resolved !== nodePath.parse(resolved).root
}

/** Sets the mode of `p` through a descriptor that refuses to follow a link. */
const chmodNoFollow = (p: string, mode: number, directory: boolean) => {
  const flags = nodeFs.constants.O_RDONLY | nodeFs.constants.O_NOFOLLOW | (directory ? nodeFs.constants.O_DIRECTORY : 0)
  const fd = nodeFs.openSync(p, flags)
  try {
    const st = nodeFs.fstatSync(fd)
    // Still the very thing we looked at, still ours.
    if (st.uid !== myUid() || st.isDirectory() !== directory) return false
    nodeFs.fchmodSync(fd, mode)
    return true
  } finally {
    nodeFs.closeSync(fd)
  }
}

/**
 * Checks the storage folder (absent is fine: it will be created 0700). Our
 * own real folder with loose modes is tightened to 0700.
 */
export const checkFolder = (dir: string): PermissionCheck => {
  if (!posix) return ok
  const l = lstatOrMissing(dir)
  if (l === undefined) return ok
  const uid = myUid()
  const link = l.isSymbolicLink()
  const st = link ? nodeFs.statSync(dir) : l
  if (!st.isDirectory()) return refused(`The storage folder ${dir} is not a folder. Move it away, or choose another folder.`)
  if (st.uid !== uid) {
    return refused(
      `The storage folder ${dir} belongs to another user (uid ${st.uid}), who could read or replace your tokens. ` +
        `Use a folder of your own (set OPENCODE_KIMI_AUTH_DIR), or as root: chown ${uid} ${dir} && chmod 700 ${dir}`
    )
  }
  const othersWrite = (st.mode & 0o022) !== 0
  const loose = (st.mode & 0o077) !== 0
  const sticky = (st.mode & 0o1000) !== 0
  if (!link && !sticky && isOwnCandidate(dir)) {
    if (!loose) return ok
    if (chmodNoFollow(dir, 0o700, true)) {
      return { _tag: "Ok", repaired: `${dir} was accessible to other users (mode ${octal(st.mode)}); set it to 700` }
    }
    return refused(`The storage folder ${dir} changed while its mode was checked. Check it, then run: chmod 700 ${dir}`)
  }
  if (othersWrite) {
    return refused(
      `The storage folder ${dir} can be written by other users (mode ${octal(st.mode)}${link ? ", through a symbolic link" : ""}), ` +
        `so they could replace your tokens; it is not a folder this tool changes by itself. ` +
        `Fix it with: chmod go-w ${link ? nodeFs.realpathSync(dir) : dir} (or use a folder of your own via OPENCODE_KIMI_AUTH_DIR)`
    )
  }
  return ok
}

/**
 * Checks the token file (absent is fine). A regular file of ours with loose
 * modes is tightened to 0600 without following links.
 */
export const checkFile = (file: string): PermissionCheck => {
  if (!posix) return ok
  const l = lstatOrMissing(file)
  if (l === undefined) return ok
  if (l.isSymbolicLink()) {
    return refused(
      `The token file ${file} is a symbolic link; secrets are never read or changed through a link. ` +
        `Replace the link with the file itself: mv "$(readlink -f ${file})" ${file}`
    )
  }
  if (!l.isFile()) return refused(`The token file ${file} is not a regular file; check what it is, move it away, then log in again.`)
  if (l.uid !== myUid()) {
    return refused(
      `The token file ${file} belongs to another user (uid ${l.uid}). Remove it and log in again, or as root: ` +
        `chown ${myUid()} ${file} && chmod 600 ${file}`
    )
  }
  if ((l.mode & 0o077) === 0) return ok
  if (chmodNoFollow(file, 0o600, false)) {
    return { _tag: "Ok", repaired: `${file} was accessible to other users (mode ${octal(l.mode)}); set it to 600` }
  }
  return refused(`The token file ${file} changed while its mode was checked. Check it, then run: chmod 600 ${file}`)
}
