/**
 * opencode-kimi-auth/effect: log in to Kimi (Kimi For Coding) with the OAuth
 * device flow and keep the tokens fresh, safely across processes.
 *
 * This is the Effect API, for applications that share their own `effect` (a
 * peer dependency): the services, layers and typed errors to compose into an
 * Effect 4 application, and the promise facade {@link KimiOAuthClient} on the
 * same modules. It is the subpath `opencode-kimi-auth/effect`; the package
 * root is the self-contained facade bundle (`dist/bundle/client.js`), so that
 * `import { KimiOAuthClient } from "opencode-kimi-auth"` works after a plain
 * install with no `effect` in sight.
 *
 * The OpenCode plugin is `opencode-kimi-auth/server` (what OpenCode loads). The
 * plugin is not re-exported here: it loads the core with a dynamic `import()`,
 * and a bundler that meets one under this entry wraps the whole core in lazy
 * initialisers it can no longer tree-shake (`"sideEffects": false` would then
 * keep everything for an application importing only `Errors`).
 *
 * @since 0.1.0
 */
export {
  type AuthorizationSession,
  type CallOptions,
  KimiAuthError,
  type KimiAuthErrorCode,
  type KimiAuthStatus,
  KimiOAuthClient,
  type LoginResult,
  type OAuthConfig
} from "./promise/KimiOAuthClient.js"

export * as ApiErrors from "./ApiErrors.js"
export * as DeviceFlow from "./DeviceFlow.js"
export * as DeviceIdentity from "./DeviceIdentity.js"
export * as Errors from "./Errors.js"
export * as HttpBody from "./HttpBody.js"
export * as KimiAuth from "./KimiAuth.js"
export * as KimiAuthConfig from "./KimiAuthConfig.js"
export * as KimiApi from "./KimiApi.js"
export * as KimiHttpClient from "./KimiHttpClient.js"
export * as KimiRequest from "./KimiRequest.js"
export * as Login from "./Login.js"
export * as LoginStatus from "./LoginStatus.js"
export * as OAuthClient from "./OAuthClient.js"
export * as TokenManager from "./TokenManager.js"
export * as TokenSet from "./TokenSet.js"
export * as TokenStore from "./TokenStore.js"
export * as Usage from "./Usage.js"
