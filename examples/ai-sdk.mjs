// The Vercel AI SDK: streamText with createKimi() (needs `ai` and `@ai-sdk/openai-compatible` installed).
// Run: npm run build && node examples/ai-sdk.mjs [--region global]
import { streamText } from "ai"
import { createKimi } from "opencode-kimi-auth/ai-sdk"
import { options, prompt } from "./options.mjs"

const kimi = createKimi(options)
try {
  const result = streamText({ model: kimi("kimi-for-coding"), prompt })
  for await (const text of result.textStream) process.stdout.write(text)
  process.stdout.write("\n")
} finally {
  await kimi.dispose()
}
