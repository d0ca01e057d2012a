/**
 * The composed layers: every service of opencode-kimi-auth from one call.
 *
 * - {@link layer} needs an `HttpClient`, a `FileSystem` and a `Path`: bring
 *   your own platform.
 * - {@link layerNode} is batteries included for Node and Bun: `FetchHttpClient`
 *   (works in both; the undici client of platform-node 4.1 crashes on Node 20;
 *   the proxy variables are honoured on Node too, see `EnvFetch.ts`)
 *   and the Node file system and path layers, imported by deep path.
 *
 * @since 0.1.0
 */
import * as NodeFileSystem from "@effect/platform-node-shared/NodeFileSystem"
import * as NodePath from "@effect/platform-node-shared/NodePath"
import type * as FileSystem from "effect/FileSystem"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import type * as HttpClient from "effect/http/HttpClient"
import * as Layer from "effect/Layer"
import type * as Path from "effect/Path"
import { DeviceFlow, type DeviceFlowOptions } from "./oauth/DeviceFlow.js"
import { DeviceIdentity } from "./oauth/DeviceIdentity.js"
import { proxyAwareFetch } from "./net/EnvFetch.js"
import type { ConfigError, TokenStoreError } from "./Errors.js"
import { KimiAuthConfig, type KimiAuthOptions, type KimiAuthSettings } from "./config/KimiAuthConfig.js"
import { OAuthClient } from "./oauth/OAuthClient.js"
import { TokenManager, type TokenManagerOptions } from "./tokens/TokenManager.js"
import { TokenStore } from "./storage/TokenStore.js"
import { isRegion } from "./light/Region.js"
import { guardRegion } from "./tokens/RegionGuard.js"

/** Options of the composed layer. */
export interface KimiAuthLayerOptions extends KimiAuthOptions {
  /** Polling tuning. */
  readonly deviceFlow?: DeviceFlowOptions | undefined
  /** Refresh tuning. */
  readonly tokenManager?: TokenManagerOptions | undefined
  /** Keep the token fresh in the background while the layer is alive. Default false. */
  readonly backgroundRefresh?: boolean | undefined
}

/** Every service the layers provide. */
export type KimiAuthServices = KimiAuthConfig | DeviceIdentity | OAuthClient | DeviceFlow | TokenStore | TokenManager

/** The services over a configuration layer. */
const compose = <E>(config: Layer.Layer<KimiAuthConfig, E>, options: KimiAuthLayerOptions) => {
  const identity = Layer.provideMerge(DeviceIdentity.layer, config)
  const store = Layer.provideMerge(TokenStore.layerFile, identity)
  const oauth = Layer.provideMerge(OAuthClient.layer, store)
  // A region asked for is not served a login of the other region (RegionGuard.ts).
  const manager = guardRegion(
    isRegion(options.region) ? options.region : undefined,
    options.backgroundRefresh
      ? TokenManager.layerWithBackgroundRefresh(options.tokenManager)
      : TokenManager.layer(options.tokenManager)
  )
  const flow = DeviceFlow.layerWith(options.deviceFlow ?? {})
  return Layer.mergeAll(manager, flow).pipe(Layer.provideMerge(oauth))
}

/** All services over the platform services you provide. */
export const layer = (
  options: KimiAuthLayerOptions = {}
): Layer.Layer<KimiAuthServices, ConfigError | TokenStoreError, HttpClient.HttpClient | FileSystem.FileSystem | Path.Path> =>
  compose(KimiAuthConfig.layer(options), options)

/**
 * `FetchHttpClient.layer`, with its `Fetch` set to the proxy-honouring one
 * when a proxy variable is set (decided when the layer is built,
 * `EnvFetch.ts`); otherwise exactly `FetchHttpClient.layer`.
 */
export const layerFetchHttpClient: Layer.Layer<HttpClient.HttpClient> = Layer.unwrap(
  Effect.sync(() => {
    const fetch = proxyAwareFetch()
    // Provided to the client's layer, so its captured context carries it (a `Fetch` the caller provides still wins).
    return fetch === undefined
      ? FetchHttpClient.layer
      : Layer.provide(FetchHttpClient.layer, Layer.succeed(FetchHttpClient.Fetch, fetch))
  })
)

/** The platform services for Node and Bun (the fetch client honours `HTTPS_PROXY` / `NO_PROXY`: `EnvFetch.ts`). */
export const platformLayer: Layer.Layer<HttpClient.HttpClient | FileSystem.FileSystem | Path.Path> = Layer.mergeAll(
  layerFetchHttpClient,
  NodeFileSystem.layer,
  NodePath.layer
)

/** All services, batteries included for Node and Bun. */
export const layerNode = (
  options: KimiAuthLayerOptions = {}
): Layer.Layer<KimiAuthServices, ConfigError | TokenStoreError> => layer(options).pipe(Layer.provide(platformLayer))

/**
 * All services over settings already resolved, batteries included: how
 * another account's token file gets its own store, lock and manager
 * (`accounts/Accounts.ts` points `tokenFilePath` at it).
 */
export const layerNodeSettings = (
  settings: KimiAuthSettings,
  options: Pick<KimiAuthLayerOptions, "deviceFlow" | "tokenManager"> = {}
): Layer.Layer<KimiAuthServices, TokenStoreError> =>
  compose(KimiAuthConfig.layerSettings(settings), options).pipe(Layer.provide(platformLayer))
