// The seed README's "Programmatic Usage" block, verbatim (../shared/original-design-README.md): what a new
// user pastes into a strict TypeScript project. test/pack/types.test.ts type-checks it against the packed
// package under TypeScript 5.9 and npm's latest TypeScript, with and without @types/node.
import { KimiOAuthClient } from 'opencode-kimi-auth';

// Initialize OAuth client
const client = new KimiOAuthClient({
  clientId: 'your-client-id',      // Optional - uses built-in default
  clientSecret: 'your-secret',     // Optional - uses built-in default
  scopes: ['kimi-code']            // Optional - default scope
});

// Start device authorization flow
const result = await client.authorize();
console.log('Visit:', result.verificationUri);
console.log('Enter code:', result.userCode);

// Tokens are automatically stored and refreshed
const accessToken = await client.getValidAccessToken();
