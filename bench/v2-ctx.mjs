// A stand-in for OpenCode 2's plugin `ctx` (the 2.0 preview's shape: integration.transform,
// catalog.transform, session.hook), for the V2 benchmarks: it records what `setup` registers
// and hands the hooks back, so a benchmark can drive them as the host does. The real hosts
// are exercised by test/opencode2/*.e2e.test.ts.
export const makeV2Ctx = () => {
  const hooks = {}
  const methods = []
  const draft = {
    method: { update: (m) => methods.push(m), list: () => [] },
    model: { get: () => undefined, update: () => {} }
  }
  const ctx = {
    options: {},
    integration: { transform: async (f) => (f(draft), { dispose: async () => {} }) },
    catalog: { transform: async (f) => (f(draft), { dispose: async () => {} }) },
    session: { hook: async (name, callback) => ((hooks[name] ??= []).push(callback), { dispose: async () => {} }) }
  }
  return { ctx, hooks, methods }
}
