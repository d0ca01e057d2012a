/**
 * A login is only good at the region that issued it. When a region is asked
 * for (the `region` option of `layerNode`, the facade, `createKimi`, the
 * plugin's provider), a stored login of the other region is not served: the
 * token manager's answers fail with a {@link NotLoggedInError} of reason
 * `other-region` that names both regions and, as its hint, a login at the
 * one asked for. Without a `region` option the stored login is served
 * wherever it was issued (its issuer's hosts are used), as before.
 *
 * The one check of every edge: the OpenCode plugin words the same error for
 * its provider, the CLI and the Effect API print its message.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { advised, NotLoggedInError } from "../Errors.js"
import { type KimiRegion, regionName } from "../light/Region.js"
import { TokenManager } from "./TokenManager.js"
import type { TokenSet } from "./TokenSet.js"

/** The region of a stored login that `wanted` must not serve, or `undefined` (same region, none asked, none recorded). */
export const otherRegionOf = (wanted: KimiRegion | undefined, tokens: TokenSet): KimiRegion | undefined =>
  wanted !== undefined && tokens.region !== undefined && tokens.region !== wanted ? tokens.region : undefined

/**
 * What a login of the other region comes to, without the advice: the
 * stored login's region and the one `who` wants (a provider id, "the region
 * option"), each named once (`kimi.com (mainland-cn)`).
 */
export const otherRegionDetail = (stored: KimiRegion, wanted: KimiRegion, who: string): string =>
  `Kimi login is for the other region: you are logged in at ${regionName(stored)}, ` +
  `but ${who} is ${regionName(wanted)}, which would refuse that token`

/** The error of a login of `stored`'s region where `wanted` was asked for; its hint logs in at `wanted`. */
export const otherRegionError = (stored: KimiRegion, wanted: KimiRegion): NotLoggedInError =>
  new NotLoggedInError({
    reason: "other-region",
    loginRegion: stored,
    region: wanted,
    ...advised(
      `${otherRegionDetail(stored, wanted, "the region option")} (leave the option out to use the stored login)`,
      { _tag: "LogIn", region: wanted }
    )
  })

const checked = (wanted: KimiRegion) => <E>(tokens: Effect.Effect<TokenSet, E>): Effect.Effect<TokenSet, E | NotLoggedInError> =>
  Effect.flatMap(tokens, (t) => {
    const stored = otherRegionOf(wanted, t)
    return stored === undefined ? Effect.succeed(t) : Effect.fail(otherRegionError(stored, wanted))
  })

/**
 * `manager` whose answers refuse a login of another region than `wanted`
 * (unchanged when no region is asked for). Logging in, logout and the
 * background refresh are left as they are.
 */
export const guardRegion = <E, R>(
  wanted: KimiRegion | undefined,
  manager: Layer.Layer<TokenManager, E, R>
): Layer.Layer<TokenManager, E, R> => {
  if (wanted === undefined) return manager
  const check = checked(wanted)
  return Layer.effect(
    TokenManager,
    Effect.map(TokenManager, (m) =>
      TokenManager.of({
        ...m,
        getTokens: check(m.getTokens),
        getAccessToken: Effect.map(check(m.getTokens), (t) => t.accessToken),
        invalidate: (rejected) => check(m.invalidate(rejected))
      }))
  ).pipe(Layer.provide(manager))
}
