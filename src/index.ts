/**
 * opencode-kimi-auth: log in to Kimi (Kimi For Coding) with the OAuth device
 * flow and keep the tokens fresh, safely across processes.
 *
 * The package root is three things at once:
 * - **an OpenCode plugin**: the default export is OpenCode's plugin-module form
 *   `{ id, server }`, so `"plugin": ["opencode-kimi-auth"]` loads it (OpenCode
 *   accepts named exports next to a default `{ id, server }`);
 * - **a promise API**: {@link KimiOAuthClient} for plain TypeScript;
 * - **an Effect API**: the services, layers and typed errors to compose into
 *   an Effect 4 application.
 *
 * @since 0.1.0
 */
import { pluginModule } from "./opencode/KimiPlugin.js"

export default pluginModule

export { DEFAULT_PROVIDER_ID, DEVICE_LOGIN_LABEL, KimiAuthPlugin, type KimiPluginOptions } from "./opencode/KimiPlugin.js"
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
