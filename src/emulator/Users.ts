/**
 * The emulator's Kimi users: who a device login is approved as, and what
 * `GET /coding/v1/me` answers for each (the shape of Kimi's `/me`:
 * `user_id`, `nickname`, `email`, `region`, `user_level`,
 * `user_level_name`, `status`; see `../shared/kimi-protocol.md`).
 *
 * By default there is one user, `emu-user-1`, and every approval is his, so
 * single-account tests hold unchanged. With the `users` option, a login is
 * approved as a chosen user: `handle.approve(code, userId)`, or the device
 * page's user field (`POST /device` with `user=<id>`).
 *
 * @since 0.2.0
 */
import { DEFAULT_USER_ID } from "./State.js"

/** One emulated Kimi user. */
export interface EmulatorUser {
  /** Kimi's user id (`/me` → `user_id`). */
  readonly userId: string
  readonly nickname?: string | undefined
  readonly email?: string | undefined
  /** The region `/me` reports; the emulator's `region` option by default. */
  readonly region?: "mainland-cn" | "global" | undefined
}

/** The single default user. */
export const DEFAULT_USER: EmulatorUser = {
  userId: DEFAULT_USER_ID,
  nickname: "Emulator User",
  email: "user@emulator.local"
}

/** The users of an emulator: the `users` option (the first is the default), or {@link DEFAULT_USER}. */
export class Users {
  readonly list: ReadonlyArray<EmulatorUser>

  constructor(users: ReadonlyArray<EmulatorUser> | undefined, readonly region: "mainland-cn" | "global") {
    const seen = new Set<string>()
    this.list = (users !== undefined && users.length > 0 ? users : [DEFAULT_USER]).filter((u) =>
      seen.has(u.userId) ? false : (seen.add(u.userId), true)
    )
  }

  /** The user a login is approved as when none is chosen. */
  get defaultUserId(): string {
    return this.list[0]?.userId ?? DEFAULT_USER_ID
  }

  /** The user with `userId`, if any. */
  find(userId: string): EmulatorUser | undefined {
    return this.list.find((u) => u.userId === userId)
  }

  /** The `/me` answer for `userId` (a token's family), Kimi's field names. */
  meBody(userId: string): Record<string, unknown> {
    const user = this.find(userId) ?? { userId }
    return {
      user_id: user.userId,
      nickname: user.nickname ?? "",
      email: user.email ?? "",
      region: user.region ?? this.region,
      user_level: 1,
      user_level_name: "Moderato",
      status: "active"
    }
  }

  /** The device page's user chooser (only with more than one user). */
  chooser(escapeHtml: (s: string) => string): string {
    if (this.list.length < 2) return ""
    const options = this.list.map((u) =>
      `<option value="${escapeHtml(u.userId)}">${escapeHtml(u.nickname ?? u.email ?? u.userId)}</option>`
    ).join("")
    return `<p><label>Approve as <select name="user">${options}</select></label></p>`
  }
}
