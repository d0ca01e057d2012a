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
  type KimiAccount,
  KimiAuthError,
  type KimiAuthErrorCode,
  type KimiAuthStatus,
  KimiOAuthClient,
  type LoginResult,
  type OAuthConfig
} from "./promise/KimiOAuthClient.js"

export * as AccountLogin from "./accounts/AccountLogin.js"
export * as Accounts from "./accounts/Accounts.js"
export * as ApiErrors from "./api/ApiErrors.js"
export * as DeviceFlow from "./oauth/DeviceFlow.js"
export * as DeviceIdentity from "./oauth/DeviceIdentity.js"
export * as Errors from "./Errors.js"
export * as HttpBody from "./net/HttpBody.js"
export * as KimiAuth from "./KimiAuth.js"
export * as KimiAuthConfig from "./config/KimiAuthConfig.js"
export * as KimiApi from "./api/KimiApi.js"
export * as KimiHttpClient from "./request/KimiHttpClient.js"
export * as KimiRequest from "./request/Authorize.js"
export * as Login from "./oauth/Login.js"
export * as LoginStatus from "./oauth/LoginStatus.js"
export * as OAuthClient from "./oauth/OAuthClient.js"
export * as TokenManager from "./tokens/TokenManager.js"
export * as TokenSet from "./tokens/TokenSet.js"
export * as TokenStore from "./storage/TokenStore.js"
export * as Usage from "./api/Usage.js"
