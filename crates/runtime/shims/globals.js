// Globals every workflow module sees (sdk.md §19), compile-time subset. The job runtime
// replaces the host functions behind them with ones that write to the step log.
(() => {
  const host = globalThis.__kici_host;
  const format = (args) =>
    args
      .map((a) => {
        if (typeof a === 'string') return a;
        try {
          return JSON.stringify(a) ?? String(a);
        } catch {
          return String(a);
        }
      })
      .join(' ');
  const print = (level) => (...args) => host.print(level, format(args));
  globalThis.console = {
    log: print('info'),
    info: print('info'),
    debug: print('debug'),
    warn: print('warn'),
    error: print('error'),
  };
  const env = host.env();
  globalThis.process = {
    env,
    cwd: () => host.cwd(),
    platform: host.platform,
    arch: host.arch,
    pid: 0,
    argv: ['kici'],
    version: 'v24.0.0',
    versions: { node: '24.0.0', kici: host.version },
    exitCode: undefined,
    exit(code) {
      throw new Error(`process.exit(${code ?? 0}) called`);
    },
    nextTick(fn, ...args) {
      queueMicrotask(() => fn(...args));
    },
  };
  // No network while compiling: the job runtime (runtime.js) replaces this with the real one.
  globalThis.fetch = function fetch() {
    throw new TypeError('fetch is not available while compiling workflows; call it inside a step');
  };
  Object.defineProperty(globalThis, 'require', {
    get() {
      throw new ReferenceError('require is not defined (KiCI workflows are ES modules; use import)');
    },
  });
})();
