// The seed README's "Programmatic Usage", as the seed wrote it, in a folder where only the packed
// opencode-kimi-auth is installed (no effect, nothing else). The test type-checks this file as
// TypeScript (strict, no skipLibCheck) and runs it as seed-user.mjs: it has no type annotation.
// Only the token file comes from the test (argv[2]); the emulator comes in through KIMI_OAUTH_HOST
// and accepts the seed's literal client id. The seed never calls dispose(): the process must exit
// by itself. The last line is the only addition: a fingerprint, never the token.
import { KimiOAuthClient } from 'opencode-kimi-auth';
import { createHash } from 'node:crypto';

// Initialize OAuth client
const client = new KimiOAuthClient({
  clientId: 'your-client-id',      // Optional - uses built-in default
  clientSecret: 'your-secret',     // Optional - uses built-in default
  scopes: ['kimi-code'],           // Optional - default scope
  tokenFilePath: process.argv[2]   // Custom token storage path
});

// Start device authorization flow
const result = await client.authorize();
console.log('Visit:', result.verificationUri);
console.log('Enter code:', result.userCode);

// Tokens are automatically stored and refreshed
const accessToken = await client.getValidAccessToken();

console.log(JSON.stringify({ sha256: createHash('sha256').update(accessToken).digest('hex') }));
