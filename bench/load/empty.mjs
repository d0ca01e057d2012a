// Load benchmark case: an empty script (Bun's own start-up cost).
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + "\n")
