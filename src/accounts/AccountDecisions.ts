/**
 * The account decisions, as pure functions over the registry (tested as
 * tables in `test/accounts/AccountDecisions.test.ts`):
 *
 * - {@link placeLogin}: where an approved login goes. The same Kimi user in
 *   the same region replaces that account's login (its file); another user
 *   adds an account. The first login of a machine (no login in `oauth.json`)
 *   goes to `oauth.json`, so an older release beside this one sees it.
 * - {@link recordLogin}: the registry after a login: the account recorded
 *   (who, which file), active in its region, and current.
 * - {@link activate}: the registry after `kimi-auth switch`.
 * - {@link forget}: the registry after a logout: the account is gone, and
 *   so are the pointers to it (the region falls back to its default or
 *   newest account, `light/AccountChoice.ts`).
 * - {@link learn}: the registry once `/me` said who an account is.
 *
 * @since 0.2.0
 */
import type { Account } from "../light/AccountChoice.js"
import { type AccountRecord, accountFileName, DEFAULT_TOKEN_FILE_NAME, type Registry } from "../light/AccountRegistry.js"
import type { KimiRegion } from "../light/Region.js"
import type { KimiUser } from "./Me.js"

/** Where a login goes: its file, and whether it replaces an account's login or adds an account. */
export interface Placement {
  readonly file: string
  /** The account whose login it replaces (same user and region), if any. */
  readonly replaces: Account | undefined
}

/**
 * Where an approved login of `user` (or an unknown user, when `/me` did not
 * answer) at `region` goes. `defaultHoldsLogin`: whether `oauth.json` holds
 * a login now. `fallbackId` names the file of an unknown user's new account.
 */
export const placeLogin = (input: {
  readonly accounts: ReadonlyArray<Account>
  readonly user: KimiUser | undefined
  readonly region: KimiRegion
  readonly defaultHoldsLogin: boolean
  readonly fallbackId: string
}): Placement => {
  const { accounts, region, user } = input
  const same = user === undefined ? undefined : accounts.find((a) => a.userId === user.userId && a.region === region)
  if (same !== undefined) return { file: same.file, replaces: same }
  if (!input.defaultHoldsLogin) return { file: DEFAULT_TOKEN_FILE_NAME, replaces: undefined }
  const file = accountFileName(region, user?.userId ?? input.fallbackId)
  // A file already taken by another account (a hashed id colliding, an unknown user's name reused): never share it.
  return accounts.some((a) => a.file === file)
    ? { file: accountFileName(region, `${user?.userId ?? "unknown"}-${input.fallbackId}`), replaces: undefined }
    : { file, replaces: undefined }
}

const upsert = (registry: Registry, record: AccountRecord): ReadonlyArray<AccountRecord> => {
  const i = registry.accounts.findIndex((a) => a.file === record.file)
  if (i < 0) return [...registry.accounts, record]
  const out = [...registry.accounts]
  out[i] = record
  return out
}

/** The registry after a login of `user` at `region` stored in `file` (`now`: ISO time). */
export const recordLogin = (
  registry: Registry,
  login: { readonly file: string; readonly user: KimiUser | undefined; readonly region: KimiRegion; readonly now: string }
): Registry => {
  const before = registry.accounts.find((a) => a.file === login.file)
  const sameUser = before !== undefined && login.user !== undefined && before.userId === login.user.userId
  const record: AccountRecord = {
    file: login.file,
    userId: login.user?.userId,
    nickname: login.user?.nickname ?? (sameUser ? before.nickname : undefined),
    email: login.user?.email ?? (sameUser ? before.email : undefined),
    region: login.region,
    addedAt: sameUser ? before.addedAt ?? login.now : login.now
  }
  return { accounts: upsert(registry, record), active: { ...registry.active, [login.region]: login.file }, current: login.file }
}

/** The registry with `account` active in its region and current (recorded first when it was not). */
export const activate = (registry: Registry, account: Account): Registry => {
  const { isDefault: _d, registered: _r, ...record } = account
  const accounts = registry.accounts.some((a) => a.file === account.file) ? registry.accounts : upsert(registry, record)
  return { accounts, active: { ...registry.active, [account.region]: account.file }, current: account.file }
}

/** The registry without the account of `file`, and without any pointer to it. */
export const forget = (registry: Registry, file: string): Registry => {
  const active: Partial<Record<KimiRegion, string>> = {}
  for (const [region, f] of Object.entries(registry.active) as Array<[KimiRegion, string]>) if (f !== file) active[region] = f
  return {
    accounts: registry.accounts.filter((a) => a.file !== file),
    active,
    current: registry.current === file ? undefined : registry.current
  }
}

/** The registry once `/me` said who the account of `account.file` is (recorded when it was not). */
export const learn = (registry: Registry, account: Account, user: KimiUser): Registry => {
  const { isDefault: _d, registered: _r, ...record } = account
  return {
    ...registry,
    accounts: upsert(registry, { ...record, userId: user.userId, nickname: user.nickname, email: user.email })
  }
}
