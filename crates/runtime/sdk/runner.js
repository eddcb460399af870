// `kici:runner` — the job side of the SDK (loaded only in job runtimes).
//
// Finds the workflow and job by name, flattens the steps exactly like the compiler
// (`__internals.planSteps`), and runs steps, rules and hooks on request of the executor, with
// the StepContext of sdk.md §15 and the zx-compatible `$` of §18. Every export takes one JSON
// text argument and returns a JSON text (or nothing); the executor owns ordering, timeouts,
// retries and cancellation. Scopes (`scopeId`) are chosen by the executor: one per step
// attempt, hook or rule evaluation; output is attributed to them.

import { __internals, SecretNotFoundError } from 'kici:sdk';

const native = globalThis.__kici_job;
const current = globalThis.__kici_scope;
const host = globalThis.__kici_host;
const format = globalThis.__kici_format;

const isFunction = (v) => typeof v === 'function';
const isString = (v) => typeof v === 'string';
const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RegExp);
const isWorkflow = (v) => v !== null && typeof v === 'object' && v._tag === 'Workflow';

/** The job being run (set by `init`). */
let S = null;
const scopes = new Map();

// ---------------------------------------------------------------------------------- plan

function collect(namespace) {
  const found = [];
  const d = namespace.default;
  if (Array.isArray(d)) d.forEach((w) => isWorkflow(w) && found.push(w));
  else if (isWorkflow(d)) found.push(d);
  const names = Object.keys(namespace)
    .filter((n) => n !== 'default')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const n of names) if (isWorkflow(namespace[n])) found.push(namespace[n]);
  return found;
}

function hookTimeout(input, type) {
  const hook = __internals.normalizeHook(input, type);
  return hook ? hook.timeout : undefined;
}

function normalizeRetry(retry) {
  if (retry === undefined || retry === null) return undefined;
  const r = typeof retry === 'number' ? { maxAttempts: retry } : retry;
  return {
    maxAttempts: Math.max(1, Math.floor(r.maxAttempts ?? 1)),
    delayMs: r.delayMs ?? 1000,
    backoff: r.backoff ?? 'exponential',
    maxDelayMs: r.maxDelayMs ?? 30000,
    hasRetryIf: isFunction(r.retryIf),
  };
}

function describeStep(entry, index) {
  const s = entry.step ?? {};
  return {
    kind: 'step',
    index,
    name: entry.name,
    timeout: s.timeout,
    retry: normalizeRetry(s.retry),
    continueOnError: s.continueOnError === true,
    hasRules: Array.isArray(s.rules) && s.rules.length > 0,
    hasOutputs: isPlainObject(s.outputs) && Object.keys(s.outputs).length > 0,
    approval: s.approval !== undefined && s.approval !== false,
    cleanup: hookTimeout(s.cleanup, 'cleanup'),
    onCancel: hookTimeout(s.onCancel, 'onCancel'),
  };
}

const HOOK_KINDS = ['onSuccess', 'onFailure', 'cleanup', 'onCancel', 'beforeStep', 'afterStep'];

function hooksOf(owner) {
  const out = {};
  for (const kind of HOOK_KINDS) {
    const t = hookTimeout(owner[kind], kind);
    if (t !== undefined) out[kind] = t;
  }
  return out;
}

export function init(text) {
  const config = JSON.parse(text);
  const namespace = globalThis.__kici_entry;
  const workflow = collect(namespace).find((w) => w.name === config.workflow);
  if (!workflow) throw new Error(`workflow "${config.workflow}" is not exported by ${config.file}`);
  const names = __internals.workflowJobNames(workflow) ?? workflow.jobs.map((j) => (isFunction(j) ? null : j.name));
  const jobIndex = names.indexOf(config.job);
  if (jobIndex < 0) throw new Error(`job "${config.job}" not found in workflow "${config.workflow}"`);
  const job = workflow.jobs[jobIndex];
  const plan = __internals.planSteps(job.steps ?? []);
  const flat = [];
  const steps = plan.map((entry) => {
    if (entry.kind !== 'parallel') {
      flat.push(entry);
      return describeStep(entry, flat.length - 1);
    }
    return {
      kind: 'parallel',
      name: entry.name,
      failFast: entry.failFast !== false,
      maxParallel: entry.maxParallel,
      children: entry.children.map((child) => {
        flat.push(child);
        return describeStep(child, flat.length - 1);
      }),
    };
  });
  S = {
    config,
    workflow,
    job,
    flat,
    lastError: new Map(),
    outputsByRef: new Map(),
    outputsByName: new Map(),
    secretNames: new Set(Object.keys(config.secrets ?? {})),
    cacheWarned: false,
  };
  for (const [name, value] of Object.entries(config.upstreamOutputs ?? {})) {
    __internals.outputs.setJobOutputs(name, value);
  }
  return JSON.stringify({
    steps,
    job: {
      timeout: job.timeout,
      gracePeriod: job.gracePeriod,
      hasRules: Array.isArray(job.rules) && job.rules.length > 0,
      hasEnv: job.env !== undefined,
      approval: job.approval !== undefined && job.approval !== false,
      hooks: hooksOf(job),
    },
    workflow: {
      hasRules: Array.isArray(workflow.rules) && workflow.rules.length > 0,
      hooks: hooksOf(workflow),
    },
  });
}

// ---------------------------------------------------------------------------------- scopes

function scopeFiles(id) {
  const dir = S.config.tmpDir;
  return { env: `${dir}/env-${id}`, path: `${dir}/path-${id}` };
}

function openScope(id, name, withFiles) {
  const scope = {
    id,
    name,
    controller: new AbortController(),
    finished: false,
    exposed: [],
    mounted: [],
    accessed: new Set(),
    files: null,
  };
  if (withFiles && S.config.tmpDir) {
    scope.files = scopeFiles(id);
    native.fs.writeFile(scope.files.env, '', false, false);
    native.fs.writeFile(scope.files.path, '', false, false);
    process.env.KICI_ENV = scope.files.env;
    process.env.KICI_PATH = scope.files.path;
  }
  scopes.set(id, scope);
  current.current = id;
  return scope;
}

function logTo(scope, stream, text) {
  native.log(scope.id, stream, text);
}

function warnLine(scope, text) {
  logTo(scope, 'err', `[warn] ${text}`);
}

/** Applies `$KICI_ENV`/`$KICI_PATH` (sdk.md §14), reverts `expose`, removes mounted files. */
export function closeScope(text) {
  const { scopeId, apply } = JSON.parse(text);
  const scope = scopes.get(scopeId);
  if (!scope) return null;
  scope.finished = true;
  for (const [key, previous] of scope.exposed.reverse()) {
    if (previous === undefined) delete process.env[key];
    else process.env[key] = previous;
  }
  for (const dir of scope.mounted) {
    try {
      native.fs.rm(dir, true, true);
    } catch {}
  }
  if (scope.files) {
    const read = (p) => {
      try {
        return native.fs.readFile(p, false);
      } catch {
        return '';
      }
    };
    if (apply) {
      for (const line of read(scope.files.env).split('\n')) {
        const eq = line.indexOf('=');
        if (line.trim() === '' || eq < 0) continue;
        setEnvChecked(scope, line.slice(0, eq), line.slice(eq + 1).replace(/\r$/, ''));
      }
      const dirs = read(scope.files.path).split('\n').map((l) => l.trim()).filter((l) => l !== '');
      for (const dir of dirs.reverse()) addPathChecked(scope, dir);
    }
    for (const p of [scope.files.env, scope.files.path]) {
      try {
        native.fs.unlink(p);
      } catch {}
    }
    delete process.env.KICI_ENV;
    delete process.env.KICI_PATH;
  }
  scopes.delete(scopeId);
  return JSON.stringify({ secretsAccessed: [...scope.accessed].sort() });
}

/** Fires the scope's `ctx.signal` and kills its commands (timeout, cancel, fail-fast). */
export function abortScope(text) {
  const { scopeId, reason } = JSON.parse(text);
  const scope = scopes.get(scopeId);
  if (scope) scope.controller.abort(new Error(reason));
  return null;
}

// ---------------------------------------------------------------------------------- env

function setEnvChecked(scope, key, value) {
  if (S.secretNames.has(key)) {
    warnLine(scope, `setEnv("${key}") ignored: ${key} is the name of a secret`);
    return;
  }
  process.env[key] = String(value);
}

function addPathChecked(scope, dir) {
  const path = process.env.PATH;
  process.env.PATH = path ? `${dir}:${path}` : String(dir);
}

export async function applyJobEnv() {
  const env = S.job.env;
  if (env !== undefined) {
    const value = isFunction(env) ? await env(S.config.event) : env;
    if (isPlainObject(value)) {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) process.env[k] = String(v);
    }
  }
  for (const [k, v] of S.config.cliEnv ?? []) process.env[k] = v;
  return null;
}

// ---------------------------------------------------------------------------------- $

const EXIT_MEANINGS = {
  2: 'Misuse of shell builtins', 126: 'Invoked command cannot execute', 127: 'Command not found',
  128: 'Invalid exit argument', 129: 'Hangup', 130: 'Interrupt', 131: 'Quit and dump core',
  132: 'Illegal instruction', 133: 'Trace/breakpoint trap', 134: 'Process aborted',
  137: 'Kill (terminate immediately)', 139: 'Segmentation violation',
  141: 'Write to pipe with no one reading', 143: 'Termination (request to terminate)',
};

const STDERR_TAIL = 64 * 1024;

function callSiteOfDollar() {
  if (!host || !isFunction(host.location)) return null;
  for (const line of String(new Error().stack || '').split('\n')) {
    const frame = __internals.parseFrame(line);
    if (!frame || frame.file.startsWith('kici:') || frame.file.startsWith('node:')) continue;
    const mapped = host.location(frame.file, frame.line, frame.column);
    return mapped ? `${mapped.file}:${mapped.line}:${mapped.column}` : null;
  }
  return null;
}

function failureMessage(r, command, site) {
  const full = isString(r.stderrTail) ? r.stderrTail : r.stderr;
  const stderr = full.length > STDERR_TAIL ? full.slice(-STDERR_TAIL) : full;
  let message = `${stderr}\n`;
  if (site) message += `    at ${site}\n`;
  if (r.exitCode === null || r.exitCode === undefined) message += `    exit code: null\n    signal: ${r.signal}`;
  else message += `    exit code: ${r.exitCode}${EXIT_MEANINGS[r.exitCode] ? ` (${EXIT_MEANINGS[r.exitCode]})` : ''}`;
  const shown = command.length > 500 ? `${command.slice(0, 500)}…` : command;
  message += `\n    command: ${shown}`;
  return message;
}

export class ProcessOutput extends Error {
  constructor(r, command, site) {
    super(r.exitCode === 0 ? '' : failureMessage(r, command, site));
    this.stdout = r.stdout;
    this.stderr = r.stderr;
    this.stdall = r.stdall;
    this.exitCode = r.exitCode ?? null;
    this.signal = r.signal ?? null;
    this.duration = r.duration;
    this.command = command;
  }
  get ok() {
    return this.exitCode === 0;
  }
  text() {
    return this.stdout;
  }
  lines() {
    const parts = this.stdout.split('\n');
    if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
    return parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }
  json() {
    return JSON.parse(this.stdout);
  }
  buffer() {
    return globalThis.Buffer.from(this.stdout);
  }
  toString() {
    return this.stdall;
  }
  valueOf() {
    return this.stdall.trim();
  }
  [Symbol.toPrimitive](hint) {
    return hint === 'number' ? Number(this.stdall.trim()) : this.stdall.trim();
  }
}

function substitute(v) {
  if (v !== null && typeof v === 'object' && isString(v.stdout)) return v.stdout.replace(/\n$/, '');
  return String(v);
}

function interpolate(v) {
  if (Array.isArray(v)) return v.map((x) => native.quote(substitute(x))).join(' ');
  return native.quote(substitute(v));
}

function parseDuration(d) {
  if (d === undefined || d === null) return undefined;
  if (typeof d === 'number') return d;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(d).trim());
  if (!m) throw new TypeError(`Unknown duration: "${d}"`);
  const n = Number(m[1]);
  return n * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] ?? 'ms'];
}

function resolvePath(p) {
  const s = String(p);
  return s.startsWith('/') ? s : `${process.cwd().replace(/\/$/, '')}/${s}`;
}

function inputText(input) {
  if (input === undefined || input === null) return null;
  if (isString(input)) return Array.from(new TextEncoder().encode(input), (b) => String.fromCharCode(b)).join('');
  if (isString(input.stdout)) return inputText(input.stdout);
  if (ArrayBuffer.isView(input)) {
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    return Array.from(bytes, (b) => String.fromCharCode(b)).join('');
  }
  return inputText(String(input));
}

class ProcessPromise {
  constructor(scope, options, pieces, values, site) {
    this._scope = scope;
    this._opts = { ...options };
    this._site = site;
    this._id = undefined;
    this._killSignal = null;
    const { promise, resolve, reject } = Promise.withResolvers();
    this._promise = promise;
    // A rejection nobody awaits must not surface as an unhandled rejection of the step.
    promise.catch(() => {});
    queueMicrotask(() => {
      this._run(pieces, values).then(resolve, reject);
    });
  }

  async _run(pieces, values) {
    const scope = this._scope;
    if (scope.finished) throw new Error(`step "${scope.name}" has already finished`);
    const resolved = await Promise.all(values);
    let command = pieces[0];
    for (let i = 0; i < resolved.length; i++) command += interpolate(resolved[i]) + pieces[i + 1];
    if (scope.finished) throw new Error(`step "${scope.name}" has already finished`);
    const opts = this._opts;
    const signals = [scope.controller.signal, opts.signal].filter(Boolean);
    if (this._killSignal || signals.some((s) => s.aborted)) {
      const r = { stdout: '', stderr: '', stdall: '', exitCode: null, signal: this._killSignal ?? 'SIGTERM', duration: 0 };
      const out = new ProcessOutput(r, command, this._site);
      if (opts.nothrow) return out;
      throw out;
    }
    const env = opts.env ?? process.env;
    const cwd = opts.cwd === undefined ? process.cwd() : resolvePath(opts.cwd);
    this._id = native.spawn(scope.id, command, cwd, env, inputText(opts.input), opts.quiet === true);
    const onAbort = () => this.kill('SIGTERM');
    for (const s of signals) s.addEventListener('abort', onAbort);
    let r;
    try {
      r = await native.wait(this._id, parseDuration(opts.timeout) ?? null);
    } finally {
      for (const s of signals) s.removeEventListener('abort', onAbort);
    }
    const out = new ProcessOutput(r, command, this._site);
    if (r.exitCode !== 0 && !opts.nothrow) throw out;
    return out;
  }

  nothrow(v = true) {
    this._opts.nothrow = v;
    return this;
  }
  quiet(v = true) {
    this._opts.quiet = v;
    return this;
  }
  verbose() {
    return this;
  }
  timeout(d, signal) {
    this._opts.timeout = d;
    return this;
  }
  stdio() {
    return this;
  }
  kill(signal = 'SIGTERM') {
    if (this._id !== undefined) native.kill(this._id, signal);
    else this._killSignal = signal;
    return this._promise.then(() => undefined, () => undefined);
  }
  pipe() {
    throw new Error('ProcessPromise.pipe() is not supported by this KiCI version');
  }
  get exitCode() {
    return this._promise.then((o) => o.exitCode, (o) => o.exitCode);
  }
  text() {
    return this._promise.then((o) => o.text());
  }
  json() {
    return this._promise.then((o) => o.json());
  }
  lines() {
    return this._promise.then((o) => o.lines());
  }
  then(onFulfilled, onRejected) {
    return this._promise.then(onFulfilled, onRejected);
  }
  catch(onRejected) {
    return this._promise.catch(onRejected);
  }
  finally(f) {
    return this._promise.finally(f);
  }
}

function makeDollar(scope, defaults) {
  const $ = function $(first, ...values) {
    if (Array.isArray(first) && Array.isArray(first.raw)) {
      const pieces = Array.from(first, (p, i) => (p === undefined ? first.raw[i] : p));
      return new ProcessPromise(scope, defaults, pieces, values, callSiteOfDollar());
    }
    if (first !== null && typeof first === 'object') return makeDollar(scope, { ...defaults, ...first });
    throw new TypeError('$ must be used as a tagged template ($`cmd`) or called with an options object');
  };
  $.sync = () => {
    throw new Error('$.sync is not supported by this KiCI version');
  };
  return $;
}

// ---------------------------------------------------------------------------------- context

function makeLog(scope) {
  const line = (stream, prefix) => (msg, ...args) => {
    const text = format([msg, ...args]);
    logTo(scope, stream, text.split('\n').map((l) => prefix + l).join('\n'));
  };
  return {
    info: line('out', ''),
    warn: line('err', '[warn] '),
    error: line('err', '[error] '),
    debug: (...args) => {
      const v = process.env.KICI_DEBUG;
      if (v === 'true' || v === '1') line('out', '')(...args);
    },
  };
}

function makeSecrets(scope) {
  const all = S.config.secrets ?? {};
  const has = (key) => Object.prototype.hasOwnProperty.call(all, key);
  const need = (key) => {
    if (!has(key)) throw new SecretNotFoundError(key, Object.keys(all));
    scope.accessed.add(key);
    return all[key];
  };
  const mountFile = async ({ sources, divider = '\n', mode = 0o600, name } = {}) => {
    const content = (sources ?? []).map(need).join(divider);
    const base = `${S.config.tmpDir}/secret-`;
    const dir = native.fs.mkdtemp(base);
    scope.mounted.push(dir);
    const path = `${dir}/${name ?? 'secret'}`;
    native.fs.writeFile(path, content, false, false);
    native.fs.chmod(path, mode);
    native.addSecret(content);
    return { path };
  };
  return {
    get: async (key) => need(key),
    has,
    list: () => Object.keys(all).sort(),
    getMeta: (key) => (has(key) ? { value: all[key], backend: 'local', scope: 'global' } : undefined),
    expose: (key) => {
      const value = need(key);
      scope.exposed.push([key, process.env[key]]);
      process.env[key] = value;
    },
    mountFile,
    exposeFile: async (envVar, opts) => {
      const result = await mountFile(opts);
      scope.exposed.push([envVar, process.env[envVar]]);
      process.env[envVar] = result.path;
      return result;
    },
  };
}

function outputsOf(ref) {
  const key = ref;
  if (S.outputsByRef.has(key)) return S.outputsByRef.get(key);
  const name = isString(ref) ? ref : ref?.name;
  if (name !== undefined && S.outputsByName.has(name)) return S.outputsByName.get(name);
  throw new Error(`Step '${name ?? '(unnamed)'}' has not produced outputs yet`);
}

function jobOutputs(ref) {
  const name = isString(ref) ? ref : ref?.name;
  const all = S.config.upstreamOutputs ?? {};
  if (name !== undefined && Object.prototype.hasOwnProperty.call(all, name)) return all[name];
  throw new Error(`Job '${name}' has not produced outputs yet`);
}

const FANOUT = { index: 0, total: 1, first: true, last: true };

function makeContext(scope) {
  const c = S.config;
  const log = makeLog(scope);
  const notSupported = (what) => async () => {
    throw new Error(`${what} is not supported by this KiCI version`);
  };
  const ctx = {
    $: makeDollar(scope, {}),
    log,
    env: process.env,
    setEnv: (k, v) => setEnvChecked(scope, k, v),
    addPath: (dir) => addPathChecked(scope, dir),
    signal: scope.controller.signal,
    inputs: {},
    dispatchInputs: Object.freeze({ ...(c.dispatchInputs ?? {}) }),
    workflow: { name: c.workflow },
    job: { name: c.jobName, runsOn: c.runsOn ?? '' },
    matrix: c.matrix ?? undefined,
    event: c.event,
    rawPayload: c.event?.payload,
    provider: c.event?.provider ?? 'local',
    isTestRun: false,
    environment: c.environment ?? undefined,
    secrets: makeSecrets(scope),
    outputsOf,
    jobOutputs,
    emit: async () => ({ deliveryId: 'local-test-noop' }),
    setSecretOutput: (k) => log.warn(`setSecretOutput("${k}") is not supported by this KiCI version; ignored`),
    cache: {
      restore: async () => {
        warnCache(log);
        return { hit: false };
      },
      save: async () => warnCache(log),
    },
    kici: {
      infrastructure: { list: async () => [] },
      inventory: { query: async () => [], get: notSupported('kici.inventory.get') },
      oidc: { token: notSupported('kici.oidc.token') },
      host: { requestReboot: notSupported('kici.host.requestReboot') },
    },
    attestProvenance: notSupported('attestProvenance'),
    fanout: c.fanout ?? FANOUT,
    step: { name: scope.name },
  };
  if (c.needs) ctx.needs = c.needs;
  return ctx;
}

function warnCache(log) {
  if (S.cacheWarned) return;
  S.cacheWarned = true;
  log.warn('cache is not available in this KiCI version');
}

// ---------------------------------------------------------------------------------- steps

function validateOutputs(entry, value) {
  const schema = entry.step?.outputs;
  if (!isPlainObject(schema) || Object.keys(schema).length === 0) return value;
  if (!isPlainObject(value)) {
    throw new Error(`step "${entry.name}": invalid outputs: expected an object, got ${value === null ? 'null' : typeof value}`);
  }
  const out = { ...value };
  for (const [key, s] of Object.entries(schema)) {
    if (!s || !isFunction(s.safeParse)) continue;
    const r = s.safeParse(value[key]);
    if (!r.success) {
      const issue = r.error?.issues?.[0];
      const path = [key, ...(issue?.path ?? [])].join('.');
      throw new Error(`step "${entry.name}": invalid outputs: ${path}: ${issue?.message ?? 'invalid'}`);
    }
    if (r.data !== undefined) out[key] = r.data;
  }
  return out;
}

function storeOutputs(entry, value) {
  if (value === undefined || value === null) return null;
  let v = validateOutputs(entry, value);
  if (!isPlainObject(v)) v = { value: v };
  const json = JSON.stringify(v);
  const plain = JSON.parse(json);
  S.outputsByRef.set(entry.step ?? entry.run, plain);
  S.outputsByName.set(entry.name, plain);
  __internals.outputs.setStepOutputs(entry.step ?? entry.run, plain);
  __internals.outputs.setStepOutputs(entry.name, plain);
  return json;
}

export async function runStep(text) {
  const { index, scopeId } = JSON.parse(text);
  const entry = S.flat[index];
  const scope = openScope(scopeId, entry.name, true);
  try {
    const value = await entry.run(makeContext(scope));
    return storeOutputs(entry, value);
  } catch (error) {
    if (error instanceof globalThis.__kici_ProcessExit && error.exitCode === 0) return null;
    S.lastError.set(index, error);
    throw error;
  }
}

export async function retryIf(text) {
  const { index } = JSON.parse(text);
  const retry = S.flat[index].step?.retry;
  if (!isPlainObject(retry) || !isFunction(retry.retryIf)) return 'true';
  try {
    return (await retry.retryIf(S.lastError.get(index))) === false ? 'false' : 'true';
  } catch {
    return 'false';
  }
}

function rulesOf(level, index) {
  if (level === 'workflow') return S.workflow.rules ?? [];
  if (level === 'job') return S.job.rules ?? [];
  return S.flat[index].step?.rules ?? [];
}

export async function evaluateRules(text) {
  const { level, index, scopeId } = JSON.parse(text);
  const scope = openScope(scopeId, 'rules', false);
  const event = S.config.event ?? {};
  const ctx = {
    event,
    changedFiles: Array.isArray(event.changedFiles) ? event.changedFiles : [],
    changedFilesKnown: Array.isArray(event.changedFiles),
    env: process.env,
    dispatchInputs: Object.freeze({ ...(S.config.dispatchInputs ?? {}) }),
    fanout: S.config.fanout ?? FANOUT,
    $: makeDollar(scope, {}),
    log: makeLog(scope),
  };
  const results = [];
  let passed = true;
  for (const r of rulesOf(level, index)) {
    const result = await __internals.evaluateRule(r, ctx);
    results.push(result);
    if (!result.passed) {
      passed = false;
      break;
    }
  }
  scope.finished = true;
  scopes.delete(scopeId);
  return JSON.stringify({ passed, results });
}

export async function runHook(text) {
  const { owner, kind, index, scopeId, outcome } = JSON.parse(text);
  const target = owner === 'workflow' ? S.workflow : owner === 'job' ? S.job : S.flat[index].step ?? {};
  const hook = __internals.normalizeHook(target[kind], kind);
  if (!hook) return null;
  const scope = openScope(scopeId, `hook:${kind}`, true);
  const ctx = makeContext(scope);
  ctx.outcome = outcome;
  await hook.run(ctx);
  return null;
}
