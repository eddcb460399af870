// The KiCI workflow SDK (`@kici-dev/sdk`, alias `kici:sdk`).
//
// Factories are pure data constructors returning frozen plain objects tagged with `_tag`.
// Functions inside them (step bodies, rule checks, hooks, dynamic values) stay live closures:
// the compiler only records their presence, the job runner calls them later.
//
// Runs in QuickJS-ng (no Node APIs). The only host hook used here is
// `globalThis.__kici_host.location(file, line, column)`, which maps an engine stack position
// to `{file, line, column}` in the original `.ts` (repo-relative) or returns null.

// ---------------------------------------------------------------------------
// Internal bookkeeping (exposed to `kici:compile` and the runner via `__internals`)
// ---------------------------------------------------------------------------

/** Call site of rule() calls: Rule -> {file, line, column}. */
const ruleCallSites = new WeakMap();
// Where each job() and workflow() was called, so that compile diagnostics can point there.
const factoryCallSites = new WeakMap();
/** Per-workflow job names after `job-N` naming: Workflow -> (string | null)[] (null = generator). */
const workflowJobNames = new WeakMap();
/** Placeholder names of unnamed jobs: Job -> placeholder. */
const unnamedJobPlaceholders = new WeakMap();
/** Unknown-option and wrong-type findings of factory calls: object -> [{message}] (E105). */
const factoryIssues = new WeakMap();

let unnamedJobCounter = 0;

/** Outputs produced at run time; filled by the job runner through `__internals.outputs`. */
const outputsState = {
  byStep: new WeakMap(),
  byStepName: new Map(),
  byJobName: new Map(),
};

function fail(message) {
  throw new Error(message);
}

const isFunction = (v) => typeof v === 'function';
const isPlainObject = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RegExp);
const isString = (v) => typeof v === 'string';

function freezeArray(list) {
  return Object.freeze(list.slice());
}

/** Remove undefined-valued keys so frozen objects only carry what the author set. */
function compact(obj) {
  const out = {};
  for (const key of Object.keys(obj)) {
    if (obj[key] !== undefined) out[key] = obj[key];
  }
  return out;
}

function recordIssues(target, issues) {
  if (issues.length > 0) factoryIssues.set(target, issues);
  return target;
}

/**
 * Compare option keys against the known set (E105 "unknown option"). The reference dropped
 * unknown options silently; we record them on the factory result and let the compiler report.
 */
function checkOptionKeys(factory, options, known) {
  const issues = [];
  if (!isPlainObject(options)) return issues;
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const closest = closestName(key, known);
    issues.push({
      message: `${factory}: unknown option "${key}"` + (closest ? ` (did you mean "${closest}"?)` : ''),
    });
  }
  return issues;
}

/** Wrong option types that the reference silently mangled (E105 "must be ..., got ..."). */
function checkOptionTypes(context, options, expectations) {
  const issues = [];
  if (!isPlainObject(options)) return issues;
  for (const [key, expected, test] of expectations) {
    const value = options[key];
    if (value === undefined || test(value)) continue;
    issues.push({ message: `${context}: ${key} must be ${expected}, got ${describeType(value)}` });
  }
  return issues;
}

const isStringArray = (v) => Array.isArray(v) && v.every(isString);
const isDuration = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const PATHS_TYPE = ['paths', 'an array of strings', isStringArray];
const TIMEOUT_TYPE = ['timeout', 'a number of milliseconds', isDuration];

function closestName(key, candidates) {
  let best = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

// ---------------------------------------------------------------------------
// Call sites
// ---------------------------------------------------------------------------

const FRAME_POSITION = /^(.*):(\d+):(\d+)$/;

/** Parse one stack line (`at name (FILE:L:C)` or `at FILE:L:C`) into {file, line, column}. */
function parseFrame(text) {
  let rest = text.trim();
  if (!rest.startsWith('at ')) return null;
  rest = rest.slice(3);
  const open = rest.indexOf(' (');
  if (rest.endsWith(')') && open !== -1) rest = rest.slice(open + 2, -1);
  else if (rest.startsWith('(') && rest.endsWith(')')) rest = rest.slice(1, -1);
  const match = FRAME_POSITION.exec(rest);
  if (!match) return null;
  return { file: match[1], line: Number(match[2]), column: Number(match[3]) };
}

/**
 * The innermost stack frame outside the SDK (files named `kici:...`), mapped through the
 * host to a position in the original `.ts`. Null when unknown (e.g. no host at run time).
 * `factory` (e.g. 'step') is passed on as a hint: QuickJS attributes a call to the last
 * source position evaluated before it, which may be an identifier inside the arguments.
 */
function callSite(factory) {
  const host = globalThis.__kici_host;
  if (!host || !isFunction(host.location)) return null;
  const stack = String(new Error().stack || '');
  for (const line of stack.split('\n')) {
    const frame = parseFrame(line);
    if (!frame) continue;
    if (frame.file.startsWith('kici:') || frame.file.startsWith('node:')) continue;
    const mapped = host.location(frame.file, frame.line, frame.column, factory);
    if (!mapped) return null;
    return { file: mapped.file, line: mapped.line, column: mapped.column };
  }
  return null;
}

// ---------------------------------------------------------------------------
// Outputs proxies (§12)
// ---------------------------------------------------------------------------

// Properties that must not be intercepted so that proxies can be logged and awaited safely.
const PASS_THROUGH = new Set(['then', 'toJSON', 'constructor']);
const PASS_THROUGH_SYMBOLS = new Set([Symbol.toPrimitive, Symbol.toStringTag, Symbol.iterator]);

function outputsProxy(kind, lookup) {
  return new Proxy(
    {},
    {
      get(_target, property) {
        if (typeof property === 'symbol') {
          return PASS_THROUGH_SYMBOLS.has(property) ? undefined : undefined;
        }
        if (PASS_THROUGH.has(property)) return undefined;
        const found = lookup();
        if (!found.present) fail(`${kind} '${found.name}' has not produced outputs yet`);
        const value = found.value;
        return value == null ? undefined : value[property];
      },
    },
  );
}

function stepResultProxy(stepRef) {
  return outputsProxy('Step', () => {
    const name = stepRef.name ?? '(unnamed)';
    if (outputsState.byStep.has(stepRef)) {
      return { present: true, name, value: outputsState.byStep.get(stepRef) };
    }
    if (stepRef.name !== undefined && outputsState.byStepName.has(stepRef.name)) {
      return { present: true, name, value: outputsState.byStepName.get(stepRef.name) };
    }
    return { present: false, name };
  });
}

function jobResultProxy(jobRef) {
  return outputsProxy('Job', () => {
    const name = jobRef.name;
    if (outputsState.byJobName.has(name)) {
      return { present: true, name, value: outputsState.byJobName.get(name) };
    }
    return { present: false, name };
  });
}

function defineHidden(target, key, value) {
  Object.defineProperty(target, key, { value, enumerable: false, writable: false, configurable: false });
}

// ---------------------------------------------------------------------------
// Hooks (§11)
// ---------------------------------------------------------------------------

const DEFAULT_HOOK_TIMEOUT_MS = 300000;

function isHookInput(value) {
  return isFunction(value) || (isPlainObject(value) && isFunction(value.run));
}

/** Normalise a HookInput into {name, type, run, timeout}. */
function normalizeHook(input, type) {
  if (input === undefined || input === null) return undefined;
  if (isFunction(input)) {
    return Object.freeze({ name: type, type, run: input, timeout: DEFAULT_HOOK_TIMEOUT_MS });
  }
  if (isPlainObject(input) && isFunction(input.run)) {
    return Object.freeze({
      name: isString(input.name) ? input.name : type,
      type,
      run: input.run,
      timeout: input.timeout ?? DEFAULT_HOOK_TIMEOUT_MS,
    });
  }
  fail(`${type}: a hook must be a function or { run, timeout? }`);
}

function hookFactory(type) {
  return (input) => {
    if (!isHookInput(input)) fail(`${type}() requires a function or { run, timeout? }`);
    return normalizeHook(input, type);
  };
}

export const onCancel = hookFactory('onCancel');
export const cleanup = hookFactory('cleanup');
export const onSuccess = hookFactory('onSuccess');
export const onFailure = hookFactory('onFailure');
export const beforeStep = hookFactory('beforeStep');
export const afterStep = hookFactory('afterStep');

// ---------------------------------------------------------------------------
// Rules (§7)
// ---------------------------------------------------------------------------

function makeRule(kind, label, check) {
  if (!isString(label) || label.length === 0) fail(`${kind}() requires a non-empty label`);
  if (check !== undefined && !isFunction(check)) fail(`${kind}('${label}'): check must be a function`);
  if (kind === 'skip' && check === undefined) fail(`skip('${label}') requires a check function`);
  const rule = Object.freeze(compact({ _tag: 'Rule', kind, label, check }));
  const site = callSite(kind);
  if (site) ruleCallSites.set(rule, site);
  return rule;
}

export function rule(label, check) {
  return makeRule('rule', label, check);
}

export function skip(label, check) {
  return makeRule('skip', label, check);
}

export function isEventType(event, type) {
  return event != null && event.type === type;
}

/** Evaluate one rule: `rule` passes iff the check resolves to exactly true, `skip` iff not. */
async function evaluateRule(r, ctx) {
  const started = Date.now();
  if (!r.check) return { label: r.label, passed: true, durationMs: 0 };
  try {
    const value = await r.check(ctx);
    const passed = r.kind === 'skip' ? value !== true : value === true;
    return { label: r.label, passed, durationMs: Date.now() - started };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { label: r.label, passed: false, durationMs: Date.now() - started, error: message };
  }
}

export async function evaluateRules(rules, ctx, label, onResult) {
  const results = [];
  for (const r of rules ?? []) {
    const result = await evaluateRule(r, ctx);
    results.push(result);
    if (isFunction(onResult)) await onResult(result, label);
    if (!result.passed) return { passed: false, results };
  }
  return { passed: true, results };
}

function fanoutRule(label, predicate) {
  return makeRule('rule', label, (ctx) => predicate(ctx.fanout ?? { index: 0, total: 1, first: true, last: true }));
}

export function onlyOnFirstHost() {
  return fanoutRule('only on first host', (f) => f.first === true);
}

export function onlyOnLastHost() {
  return fanoutRule('only on last host', (f) => f.last === true);
}

export function onlyOnFanoutIndex(index) {
  if (!Number.isInteger(index) || index < 0) fail('onlyOnFanoutIndex() requires a non-negative integer');
  return fanoutRule(`only on fan-out index ${index}`, (f) => f.index === index);
}

// ---------------------------------------------------------------------------
// Approvals and caches
// ---------------------------------------------------------------------------

/** Normalise an ApprovalConfig into the lock form {clauses, reason?, timeoutSeconds?, when}. */
export function normalizeApproval(approval) {
  if (approval === undefined || approval === null || approval === false) return undefined;
  if (approval === true) return { clauses: [], when: 'always' };
  if (Array.isArray(approval)) return { clauses: approval.map(normalizeClause), when: 'always' };
  if (isPlainObject(approval)) {
    const clauses = approval.approvers === undefined ? [] : [].concat(approval.approvers).map(normalizeClause);
    return compact({
      clauses,
      reason: approval.reason,
      timeoutSeconds: approval.timeout,
      when: approval.when ?? 'always',
    });
  }
  fail('approval must be true, an array of approvers or { when?, approvers?, reason?, timeout? }');
}

function normalizeClause(clause) {
  if (isPlainObject(clause) && isString(clause.team)) return { team: clause.team };
  if (isPlainObject(clause) && isString(clause.user)) return { user: clause.user };
  fail('approval clauses must be { team } or { user }');
}

export function normalizeCacheSpecs(cache) {
  if (cache === undefined || cache === null) return undefined;
  const specs = Array.isArray(cache) ? cache : [cache];
  return specs.map((spec) => {
    if (!isPlainObject(spec) || !isString(spec.key)) fail('cache specs must be { key, paths, restoreKeys? }');
    return compact({
      key: spec.key,
      paths: spec.paths === undefined ? [] : [].concat(spec.paths),
      restoreKeys: spec.restoreKeys === undefined ? undefined : [].concat(spec.restoreKeys),
    });
  });
}

// ---------------------------------------------------------------------------
// Steps (§5)
// ---------------------------------------------------------------------------

const STEP_OPTIONS = [
  'name', 'run', 'outputs', 'timeout', 'retry', 'continueOnError', 'cache', 'rules', 'onCancel',
  'cleanup', 'approval', 'check', 'summarize', 'drift', 'whenInSync', 'description',
];

export function step(first, second) {
  let name;
  let options;
  if (isString(first)) {
    name = first;
    if (isFunction(second)) options = { run: second };
    else if (isPlainObject(second)) options = second;
    else fail(`step('${first}') requires a run function or an options object`);
  } else if (isFunction(first)) {
    options = { run: first };
  } else if (isPlainObject(first)) {
    options = first;
    if (isString(first.name)) name = first.name;
  } else {
    fail('step() requires a name, a run function or an options object');
  }
  return makeStep(name, options, callSite('step'));
}

function makeStep(name, options, site) {
  const label = name === undefined ? 'step()' : `step('${name}')`;
  if (!isFunction(options.run)) fail(`${label}: run must be a function`);
  if (options.check !== undefined && !isFunction(options.summarize)) {
    fail('summarize is required when check is set');
  }
  if (isPlainObject(options.approval) && options.approval.when === 'drift' && options.check === undefined) {
    fail('approval.when "drift" requires a check facet');
  }
  const issues = [
    ...checkOptionKeys(label, options, STEP_OPTIONS),
    ...checkOptionTypes(label, options, [
      TIMEOUT_TYPE,
      ['retry', 'a number or { maxAttempts, ... }', (v) => Number.isInteger(v) || (isPlainObject(v) && Number.isInteger(v.maxAttempts))],
      ['continueOnError', 'a boolean', (v) => typeof v === 'boolean'],
    ]),
  ];
  const stepObject = {
    _tag: 'Step',
    ...compact({ ...options, name }),
  };
  if (site) stepObject.sourceLocation = site;
  defineHidden(stepObject, 'result', stepResultProxy(stepObject));
  return recordIssues(Object.freeze(stepObject), issues);
}

export function isParallelGroup(value) {
  return isPlainObject(value) && value._tag === 'ParallelGroup';
}

export function parallel(steps, options = {}) {
  if (!Array.isArray(steps) || steps.length === 0) fail('parallel() requires at least one step');
  for (const child of steps) {
    if (isParallelGroup(child)) fail('parallel() groups cannot be nested');
  }
  const name = options?.name;
  if (options?.maxParallel !== undefined && !(Number.isInteger(options.maxParallel) && options.maxParallel >= 1)) {
    fail(`parallel group "${name ?? 'parallel'}": maxParallel must be >= 1`);
  }
  const issues = checkOptionKeys('parallel()', options, ['name', 'failFast', 'maxParallel']);
  return recordIssues(
    Object.freeze(
      compact({
        _tag: 'ParallelGroup',
        name,
        steps: freezeArray(steps),
        failFast: options?.failFast,
        maxParallel: options?.maxParallel,
      }),
    ),
    issues,
  );
}

/**
 * Flatten a job's step inputs into a naming plan shared by the compiler and the runner:
 * unnamed steps get `step-N` (one counter per job over the flattened sequence), unnamed
 * parallel groups `parallel-<k>` with k the 0-based index of the group among the job's groups.
 */
function planSteps(stepInputs) {
  let unnamedCounter = 0;
  let groupCounter = 0;
  const describe = (input) => {
    if (isFunction(input)) {
      unnamedCounter += 1;
      return { kind: 'step', name: `step-${unnamedCounter}`, step: null, run: input };
    }
    if (isPlainObject(input) && input._tag === 'Step') {
      let name = input.name;
      if (name === undefined) {
        unnamedCounter += 1;
        name = `step-${unnamedCounter}`;
      }
      return { kind: 'step', name, step: input, run: input.run };
    }
    fail('steps must be step() results, functions or parallel() groups');
  };
  const plan = [];
  for (const input of stepInputs) {
    if (isParallelGroup(input)) {
      const index = groupCounter;
      groupCounter += 1;
      const children = input.steps.map(describe);
      plan.push({
        kind: 'parallel',
        name: input.name ?? `parallel-${index}`,
        failFast: input.failFast ?? true,
        maxParallel: input.maxParallel,
        group: input,
        children,
      });
    } else {
      plan.push(describe(input));
    }
  }
  return plan;
}

/** Flat list of steps (parallel children inline), the order used for step indices. */
export function flattenStepInputs(stepInputs) {
  const flat = [];
  for (const entry of planSteps(stepInputs ?? [])) {
    if (entry.kind === 'parallel') flat.push(...entry.children);
    else flat.push(entry);
  }
  return flat;
}

// ---------------------------------------------------------------------------
// Jobs (§4)
// ---------------------------------------------------------------------------

const JOB_OPTIONS = [
  'name', 'runsOn', 'steps', 'run', 'needs', 'rules', 'matrix', 'include', 'exclude', 'maxParallel',
  'failFast', 'environment', 'environments', 'env', 'concurrencyGroup', 'timeout', 'checkout',
  'container', 'onCancel', 'cleanup', 'onSuccess', 'onFailure', 'beforeStep', 'afterStep',
  'gracePeriod', 'cache', 'init', 'resources', 'approval', 'runsOnAll', 'onUnreachable',
  'includeUninitialized', 'description',
];

const MEMORY_PATTERN = /^\d+(\.\d+)?[kmg]$/;

export function job(first, second) {
  let name;
  let options;
  if (isString(first)) {
    name = first;
    options = second;
  } else {
    options = first;
    if (isPlainObject(options) && isString(options.name)) name = options.name;
  }
  if (!isPlainObject(options)) fail(name === undefined ? 'job() requires an options object' : `job('${name}') requires an options object`);
  const label = `job('${name ?? '<unnamed>'}')`;

  if (options.environment !== undefined && options.environments !== undefined) {
    fail(`${label}: environment and environments are mutually exclusive — use one`);
  }
  if (options.runsOn !== undefined && options.runsOnAll !== undefined) {
    fail(`${label}: runsOn and runsOnAll are mutually exclusive`);
  }
  if (options.runsOn === undefined && options.runsOnAll === undefined) {
    fail(`${label}: one of runsOn or runsOnAll is required`);
  }
  const hasSteps = Array.isArray(options.steps) && options.steps.length > 0;
  if (options.run !== undefined && hasSteps) {
    fail('job() cannot have both "run" and "steps" -- use one or the other');
  }
  if (options.run !== undefined && !isFunction(options.run)) fail(`${label}: run must be a function`);
  if (options.steps !== undefined && !Array.isArray(options.steps)) fail(`${label}: steps must be an array`);
  validateInit(label, options.init);
  if (options.maxParallel !== undefined && !(Number.isInteger(options.maxParallel) && options.maxParallel >= 1)) {
    fail(`${label}: maxParallel must be >= 1`);
  }
  if (options.gracePeriod !== undefined && !(typeof options.gracePeriod === 'number' && options.gracePeriod >= 0 && options.gracePeriod <= 300)) {
    fail(`${label}: gracePeriod must be between 0 and 300 seconds`);
  }
  validateResources(name ?? '<unnamed>', options.resources);
  for (const hookName of ['onCancel', 'cleanup', 'onSuccess', 'onFailure', 'beforeStep', 'afterStep']) {
    if (options[hookName] !== undefined && !isHookInput(options[hookName])) {
      fail(`${label}: ${hookName} must be a function or { run, timeout? }`);
    }
  }

  const steps = options.run !== undefined ? [options.run] : (options.steps ?? []);
  // Validate step inputs now so a bad entry fails at module load like the other factory errors.
  planSteps(steps);

  const issues = [
    ...checkOptionKeys(label, options, JOB_OPTIONS),
    ...checkOptionTypes(label, options, [
      TIMEOUT_TYPE,
      ['matrix', 'an array of strings, an object of arrays or a function', (v) => isFunction(v) || Array.isArray(v) || (isPlainObject(v) && Object.values(v).every(Array.isArray))],
      ['needs', 'an array', Array.isArray],
    ]),
  ];
  const { run: _run, name: _name, ...rest } = options;
  const jobObject = {
    _tag: 'Job',
    ...compact(rest),
    name,
    steps: freezeArray(steps),
    needs: freezeArray(options.needs ?? []),
  };
  if (options.run !== undefined) jobObject.run = options.run;
  if (name === undefined) {
    unnamedJobCounter += 1;
    jobObject.name = `<unnamed job #${unnamedJobCounter}>`;
  }
  defineHidden(jobObject, 'result', jobResultProxy(jobObject));
  const frozen = Object.freeze(jobObject);
  const jobSite = callSite('job');
  if (jobSite) factoryCallSites.set(frozen, jobSite);
  if (name === undefined) unnamedJobPlaceholders.set(frozen, jobObject.name);
  return recordIssues(frozen, issues);
}

function validateInit(label, init) {
  if (init === undefined || init === false || init === 'auto' || init === 'mise') return;
  const entries = Array.isArray(init) ? init : [init];
  entries.forEach((entry, index) => {
    if (entry === 'mise' || entry === 'auto') return;
    if (isPlainObject(entry) && entry.mise !== undefined) return;
    if (!isPlainObject(entry) || !isString(entry.run) || entry.run.trim() === '') {
      fail(`${label}: init[${index}].run must be a non-empty command`);
    }
  });
}

function validateResources(jobName, resources) {
  if (resources === undefined) return;
  const bad = (detail) => fail(`Job "${jobName}": invalid resources: ${detail}`);
  if (!isPlainObject(resources)) bad('must be an object');
  const check = (spec, where) => {
    if (spec === undefined) return;
    if (!isPlainObject(spec)) bad(`${where} must be an object`);
    if (spec.memory !== undefined && !(isString(spec.memory) && MEMORY_PATTERN.test(spec.memory))) {
      bad(`${where}memory must match ^\\d+(\\.\\d+)?[kmg]$`);
    }
    if (spec.cpus !== undefined && !(typeof spec.cpus === 'number' && spec.cpus > 0 && spec.cpus <= 256)) {
      bad(`${where}cpus must be > 0 and <= 256`);
    }
  };
  if (resources.requests !== undefined || resources.limits !== undefined) {
    check(resources.requests, 'requests.');
    check(resources.limits, 'limits.');
  } else {
    check(resources, '');
  }
}

// ---------------------------------------------------------------------------
// Dynamic jobs (§6.2)
// ---------------------------------------------------------------------------

export function dynamicGroup(name, options = {}) {
  if (!isString(name) || name.length === 0) fail('dynamicGroup() requires a non-empty name');
  return Object.freeze(compact({ _tag: 'DynamicGroupRef', group: name, when: options?.when }));
}

export function isDynamicGroupRef(value) {
  return isPlainObject(value) && value._tag === 'DynamicGroupRef';
}

export function dynamicJob(group, generator) {
  if (!isString(group) || group.length === 0) fail('dynamicJob() requires a non-empty group name');
  let generate;
  let needs;
  let resultAware = false;
  if (isFunction(generator)) {
    generate = generator;
  } else if (isPlainObject(generator) && isFunction(generator.generate)) {
    generate = generator.generate;
    needs = freezeArray(generator.needs ?? []);
    resultAware = true;
  } else {
    fail(`dynamicJob('${group}') requires a generator function or { needs, generate }`);
  }
  const tagged = (args) => generate(args);
  defineHidden(tagged, '_tag', 'DynamicJobFn');
  defineHidden(tagged, 'group', group);
  defineHidden(tagged, 'generate', generate);
  defineHidden(tagged, 'resultAware', resultAware);
  if (needs !== undefined) defineHidden(tagged, 'needs', needs);
  return Object.freeze(tagged);
}

/** A job entry that generates jobs: a tagged dynamicJob() or any bare function in `jobs`. */
export function isDynamicJobFn(value) {
  return isFunction(value);
}

// ---------------------------------------------------------------------------
// Workflows (§3)
// ---------------------------------------------------------------------------

const WORKFLOW_OPTIONS = [
  'jobs', 'on', 'rules', 'description', 'timeout', 'concurrency', 'onCancel', 'cleanup', 'onSuccess',
  'onFailure', 'approval', 'hashFiles', 'registries', 'installEnv', 'name',
];

const ENV_REFERENCE = /^env:[A-Za-z_][A-Za-z0-9_]*$/;
const SCOPE_PATTERN = /^@[a-z0-9][a-z0-9-]*$/i;

export function workflow(name, options) {
  if (isPlainObject(name) && options === undefined) {
    options = name;
    name = options.name;
  }
  if (!isString(name) || name.length === 0) fail('workflow() requires a non-empty name');
  if (!isPlainObject(options)) fail(`workflow('${name}') requires an options object`);
  if (!Array.isArray(options.jobs)) fail(`workflow('${name}'): jobs must be an array`);
  for (const hookName of ['onCancel', 'cleanup', 'onSuccess', 'onFailure']) {
    if (options[hookName] !== undefined && !isHookInput(options[hookName])) {
      fail(`workflow('${name}'): ${hookName} must be a function or { run, timeout? }`);
    }
  }
  if (isPlainObject(options.approval) && options.approval.when === 'drift') {
    fail(`workflow('${name}'): approval.when "drift" is only allowed on steps`);
  }
  if (options.concurrency !== undefined) {
    if (!isPlainObject(options.concurrency) || !isFunction(options.concurrency.group)) {
      fail(`workflow('${name}'): concurrency.group must be a function`);
    }
  }
  validateRegistries(name, options.registries);
  if (options.installEnv !== undefined) {
    if (!Array.isArray(options.installEnv)) fail(`workflow('${name}'): installEnv must be an array`);
    options.installEnv.forEach((entry, i) => {
      if (!isString(entry) || !ENV_REFERENCE.test(entry)) {
        fail(`workflow('${name}'): installEnv[${i}] must have the form "env:NAME"`);
      }
    });
  }
  for (const entry of options.jobs) {
    const ok = isFunction(entry) || (isPlainObject(entry) && entry._tag === 'Job');
    if (!ok) fail(`workflow('${name}'): jobs must contain job() results or dynamic job generators`);
  }

  const issues = [
    ...checkOptionKeys(`workflow('${name}')`, options, WORKFLOW_OPTIONS),
    ...checkOptionTypes(`workflow('${name}')`, options, [TIMEOUT_TYPE]),
  ];
  const on = options.on === undefined ? undefined : freezeArray([].concat(options.on));
  const { name: _ignored, ...rest } = options;
  const workflowObject = Object.freeze({
    _tag: 'Workflow',
    ...compact(rest),
    name,
    jobs: freezeArray(options.jobs),
    ...(on === undefined ? {} : { on }),
  });
  const workflowSite = callSite('workflow');
  if (workflowSite) factoryCallSites.set(workflowObject, workflowSite);

  // Deterministic names for unnamed jobs: job-1, job-2, ... over the static jobs of this
  // workflow, without touching the shared Job objects.
  let unnamed = 0;
  workflowJobNames.set(
    workflowObject,
    options.jobs.map((entry) => {
      if (isFunction(entry)) return null;
      if (unnamedJobPlaceholders.has(entry)) {
        unnamed += 1;
        return `job-${unnamed}`;
      }
      return entry.name;
    }),
  );
  return recordIssues(workflowObject, issues);
}

function validateRegistries(name, registries) {
  if (registries === undefined) return;
  const prefix = `workflow('${name}'): registries`;
  if (!Array.isArray(registries)) fail(`${prefix} must be an array`);
  const scopes = new Set();
  let unscoped = 0;
  registries.forEach((registry, i) => {
    const at = `${prefix}[${i}]`;
    if (!isPlainObject(registry)) fail(`${at} must be an object`);
    if (!isString(registry.url) || !/^[a-z][a-z0-9+.-]*:\/\/[^\s/]+/i.test(registry.url)) {
      fail(`${at}.url is not a valid URL`);
    }
    if (!isString(registry.tokenSecret) || !ENV_REFERENCE.test(registry.tokenSecret)) {
      fail(`${at}.tokenSecret must have the form "env:NAME"`);
    }
    if (registry.scope === undefined) {
      unscoped += 1;
      if (unscoped > 1) fail(`${prefix}: at most one registry without a scope`);
    } else {
      if (!isString(registry.scope) || !SCOPE_PATTERN.test(registry.scope)) {
        fail(`${at}.scope must match ^@[a-z0-9][a-z0-9-]*$`);
      }
      if (scopes.has(registry.scope)) fail(`${prefix}: duplicate scope "${registry.scope}"`);
      scopes.add(registry.scope);
    }
  });
}

// ---------------------------------------------------------------------------
// Triggers (§9)
// ---------------------------------------------------------------------------

function triggerFactory(kind, known, validate) {
  return (options = {}) => {
    const opts = options ?? {};
    if (!isPlainObject(opts)) fail(`${kind}() requires an options object`);
    if (validate) validate(opts);
    const issues = [
      ...checkOptionKeys(`${kind}()`, opts, known),
      ...checkOptionTypes(`${kind}()`, opts, known.includes('paths') ? [PATHS_TYPE] : []),
    ];
    const tag = `${kind[0].toUpperCase()}${kind.slice(1)}Trigger`;
    return recordIssues(Object.freeze({ _tag: tag, ...compact(opts) }), issues);
  };
}

const GIT = ['repos', 'description'];

export const push = triggerFactory('push', ['branches', 'tags', 'paths', ...GIT]);
export const pr = triggerFactory('pr', ['events', 'target', 'source', 'paths', ...GIT]);
export const tag = triggerFactory('tag', ['patterns', ...GIT]);
export const comment = triggerFactory('comment', ['actions', 'source', 'bodyMatch', ...GIT]);
export const review = triggerFactory('review', ['actions', 'states', ...GIT]);
export const reviewComment = triggerFactory('reviewComment', ['actions', ...GIT]);
export const release = triggerFactory('release', ['actions', ...GIT]);
const createTrigger = triggerFactory('create', ['refTypes', 'patterns', ...GIT]);
const deleteTrigger = triggerFactory('delete', ['refTypes', 'patterns', ...GIT]);
export { createTrigger as create, deleteTrigger as delete };
export const status = triggerFactory('status', ['contexts', 'states', ...GIT]);
export const workflowRun = triggerFactory('workflowRun', ['actions', 'workflows', 'conclusions', ...GIT]);
export const fork = triggerFactory('fork', [...GIT]);
export const star = triggerFactory('star', ['actions', ...GIT]);
export const watch = triggerFactory('watch', ['actions', ...GIT]);
export const dispatch = triggerFactory('dispatch', ['types', 'inputs', ...GIT]);

export const schedule = triggerFactory(
  'schedule',
  ['cron', 'timezone', 'description', 'inputs'],
  (opts) => {
    if (!isString(opts.cron) || opts.cron.trim() === '') fail('schedule() requires a non-empty cron expression');
  },
);

export const webhook = triggerFactory('webhook', ['events', 'actions', ...GIT], (opts) => {
  const events = opts.events === undefined ? [] : [].concat(opts.events);
  if (events.length === 0) fail('webhook() requires a non-empty events array');
});

export const kiciEvent = triggerFactory('kiciEvent', ['name', 'match', 'not', 'source', 'description'], (opts) => {
  if (!isString(opts.name) || opts.name.length === 0) fail('kiciEvent() requires a non-empty name');
});

export const workflowComplete = triggerFactory('workflowComplete', ['name', 'status', 'source', 'description']);
export const jobComplete = triggerFactory('jobComplete', ['workflow', 'job', 'status', 'source', 'description']);

export const genericWebhook = triggerFactory(
  'genericWebhook',
  ['source', 'events', 'match', 'not', 'auth', 'path', 'description'],
  (opts) => {
    if (!isString(opts.source) || opts.source.length === 0) fail('genericWebhook() requires a non-empty source');
  },
);

export const lifecycle = triggerFactory('lifecycle', ['events', 'sources', 'description'], (opts) => {
  const events = opts.events === undefined ? [] : [].concat(opts.events);
  if (events.length === 0) fail('lifecycle() requires a non-empty events array');
});

// ---------------------------------------------------------------------------
// Dispatch inputs and fixtures (§10)
// ---------------------------------------------------------------------------

export function defineDispatchInputs(map) {
  if (!isPlainObject(map)) fail('defineDispatchInputs() requires a map of schemas');
  return Object.freeze({
    __kiciDispatchInputs: true,
    map: Object.freeze({ ...map }),
    from: (ctx) => ctx.dispatchInputs,
    fromRule: (ctx) => ctx.dispatchInputs,
  });
}

export function fixture(id, options) {
  if (!isString(id) || id.length === 0 || /\s/.test(id)) fail('fixture() requires a non-empty id without whitespace');
  if (!isFunction(options) && !isPlainObject(options)) fail(`fixture('${id}') requires options or a function returning options`);
  return Object.freeze({ _tag: 'Fixture', id, options });
}

export function defineEvent(name, schema) {
  if (!isString(name) || name.length === 0) fail('defineEvent() requires a non-empty name');
  return Object.freeze(compact({ _tag: 'EventDefinition', name, schema }));
}

// ---------------------------------------------------------------------------
// `z` — schema subset (§10.3)
// ---------------------------------------------------------------------------

class ZodError extends Error {
  constructor(issues) {
    super(issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
    this.name = 'ZodError';
    this.issues = issues;
  }
}

const describeType = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

class Schema {
  constructor(def) {
    this._def = Object.freeze(def);
  }

  _with(patch) {
    return new this.constructor({ ...this._def, ...patch });
  }

  optional() {
    return this._with({ optional: true });
  }

  nullable() {
    return this._with({ nullable: true });
  }

  default(value) {
    return this._with({ hasDefault: true, defaultValue: value });
  }

  describe(description) {
    return this._with({ description });
  }

  get description() {
    return this._def.description;
  }

  isOptional() {
    return this._def.optional === true || this._def.hasDefault === true;
  }

  isNullable() {
    return this._def.nullable === true;
  }

  parse(value) {
    const issues = [];
    const parsed = this._run(value, [], issues);
    if (issues.length > 0) throw new ZodError(issues);
    return parsed;
  }

  safeParse(value) {
    try {
      return { success: true, data: this.parse(value) };
    } catch (error) {
      if (error instanceof ZodError) return { success: false, error };
      throw error;
    }
  }

  _run(value, path, issues) {
    if (value === undefined) {
      if (this._def.hasDefault) return this._def.defaultValue;
      if (this._def.optional) return undefined;
    }
    if (value === null && this._def.nullable) return null;
    return this._check(value, path, issues);
  }

  _issue(issues, path, message) {
    issues.push({ path: path.slice(), message });
    return undefined;
  }
}

class ZString extends Schema {
  min(n) { return this._with({ min: n }); }
  max(n) { return this._with({ max: n }); }
  regex(re) { return this._with({ regex: re }); }
  _check(v, path, issues) {
    if (typeof v !== 'string') return this._issue(issues, path, `Expected string, received ${describeType(v)}`);
    if (this._def.min !== undefined && v.length < this._def.min) return this._issue(issues, path, `String must contain at least ${this._def.min} character(s)`);
    if (this._def.max !== undefined && v.length > this._def.max) return this._issue(issues, path, `String must contain at most ${this._def.max} character(s)`);
    if (this._def.regex !== undefined) {
      this._def.regex.lastIndex = 0;
      if (!this._def.regex.test(v)) return this._issue(issues, path, 'Invalid string: does not match pattern');
    }
    return v;
  }
}

class ZNumber extends Schema {
  int() { return this._with({ int: true }); }
  min(n) { return this._with({ min: n }); }
  max(n) { return this._with({ max: n }); }
  _check(v, path, issues) {
    if (typeof v !== 'number' || Number.isNaN(v)) return this._issue(issues, path, `Expected number, received ${describeType(v)}`);
    if (this._def.int && !Number.isInteger(v)) return this._issue(issues, path, 'Expected integer, received float');
    if (this._def.min !== undefined && v < this._def.min) return this._issue(issues, path, `Number must be greater than or equal to ${this._def.min}`);
    if (this._def.max !== undefined && v > this._def.max) return this._issue(issues, path, `Number must be less than or equal to ${this._def.max}`);
    return v;
  }
}

class ZBoolean extends Schema {
  _check(v, path, issues) {
    if (typeof v !== 'boolean') return this._issue(issues, path, `Expected boolean, received ${describeType(v)}`);
    return v;
  }
}

class ZAny extends Schema {
  _run(value) {
    if (value === undefined && this._def.hasDefault) return this._def.defaultValue;
    return value;
  }
}

class ZEnum extends Schema {
  get options() { return this._def.values.slice(); }
  get enum() { return Object.fromEntries(this._def.values.map((v) => [v, v])); }
  _check(v, path, issues) {
    if (!this._def.values.includes(v)) {
      return this._issue(issues, path, `Invalid enum value. Expected ${this._def.values.map((x) => `'${x}'`).join(' | ')}, received '${String(v)}'`);
    }
    return v;
  }
}

class ZLiteral extends Schema {
  get value() { return this._def.value; }
  _check(v, path, issues) {
    if (v !== this._def.value) return this._issue(issues, path, `Invalid literal value, expected ${JSON.stringify(this._def.value)}`);
    return v;
  }
}

class ZObject extends Schema {
  get shape() { return this._def.shape; }
  _check(v, path, issues) {
    if (!isPlainObject(v)) return this._issue(issues, path, `Expected object, received ${describeType(v)}`);
    const out = {};
    for (const [key, schema] of Object.entries(this._def.shape)) {
      const parsed = schema._run(v[key], [...path, key], issues);
      if (parsed !== undefined || key in v) out[key] = parsed;
    }
    return out;
  }
}

class ZArray extends Schema {
  get element() { return this._def.element; }
  min(n) { return this._with({ min: n }); }
  max(n) { return this._with({ max: n }); }
  _check(v, path, issues) {
    if (!Array.isArray(v)) return this._issue(issues, path, `Expected array, received ${describeType(v)}`);
    if (this._def.min !== undefined && v.length < this._def.min) return this._issue(issues, path, `Array must contain at least ${this._def.min} element(s)`);
    if (this._def.max !== undefined && v.length > this._def.max) return this._issue(issues, path, `Array must contain at most ${this._def.max} element(s)`);
    return v.map((item, i) => this._def.element._run(item, [...path, i], issues));
  }
}

class ZRecord extends Schema {
  _check(v, path, issues) {
    if (!isPlainObject(v)) return this._issue(issues, path, `Expected object, received ${describeType(v)}`);
    const out = {};
    for (const [key, item] of Object.entries(v)) {
      this._def.keySchema._run(key, [...path, key], issues);
      out[key] = this._def.valueSchema._run(item, [...path, key], issues);
    }
    return out;
  }
}

class ZUnion extends Schema {
  get options() { return this._def.options.slice(); }
  _check(v, path, issues) {
    for (const option of this._def.options) {
      const attempt = [];
      const parsed = option._run(v, path, attempt);
      if (attempt.length === 0) return parsed;
    }
    return this._issue(issues, path, 'Invalid input');
  }
}

const zImplementation = {
  string: () => new ZString({ kind: 'string' }),
  number: () => new ZNumber({ kind: 'number' }),
  boolean: () => new ZBoolean({ kind: 'boolean' }),
  any: () => new ZAny({ kind: 'any' }),
  unknown: () => new ZAny({ kind: 'unknown' }),
  enum: (values) => {
    if (!Array.isArray(values) || values.length === 0 || !values.every(isString)) {
      fail('z.enum() requires a non-empty array of strings');
    }
    return new ZEnum({ kind: 'enum', values: values.slice() });
  },
  literal: (value) => new ZLiteral({ kind: 'literal', value }),
  object: (shape) => {
    if (!isPlainObject(shape)) fail('z.object() requires a shape object');
    return new ZObject({ kind: 'object', shape: Object.freeze({ ...shape }) });
  },
  array: (element) => new ZArray({ kind: 'array', element }),
  record: (keySchema, valueSchema) =>
    valueSchema === undefined
      ? new ZRecord({ kind: 'record', keySchema: new ZString({ kind: 'string' }), valueSchema: keySchema })
      : new ZRecord({ kind: 'record', keySchema, valueSchema }),
  union: (options) => new ZUnion({ kind: 'union', options: options.slice() }),
  ZodError,
};

export const z = new Proxy(Object.freeze(zImplementation), {
  get(target, property) {
    if (typeof property === 'symbol' || property in target) return target[property];
    // Probes by tooling (tags, thenables, JSON) must not throw.
    if (property.startsWith('_') || PASS_THROUGH.has(property) || property === 'prototype') return undefined;
    throw new TypeError(`z.${property} is not supported by the KiCI schema subset`);
  },
});

export function isKiciSchema(value) {
  return value instanceof Schema;
}

// ---------------------------------------------------------------------------
// Matrix (§8)
// ---------------------------------------------------------------------------

export function isStaticArray(value) {
  return Array.isArray(value);
}

export function isStaticObject(value) {
  return isPlainObject(value);
}

export function isDynamicFunction(value) {
  return isFunction(value);
}

// ICU root collation order of ASCII whitespace, punctuation and symbols (all sort before
// digits, which sort before letters); other characters fall back to Unicode categories.
const ICU_SYMBOL_ORDER = '\t\n\v\f\r _-,;:!?.\'"()[]{}@*/\\&#%`^+<=>|~$';

// Character classes of the name order approximating ICU root collation.
function collationClass(ch) {
  if (ICU_SYMBOL_ORDER.includes(ch)) return 0;
  if (/[0-9]/.test(ch)) return 1;
  if (/[A-Za-z]/.test(ch)) return 2;
  if (/\p{L}/u.test(ch)) return 2;
  if (/\p{N}/u.test(ch)) return 1;
  if (/[\p{Z}\p{P}\p{S}]/u.test(ch)) return 0;
  return 3;
}

function symbolRank(ch) {
  const index = ICU_SYMBOL_ORDER.indexOf(ch);
  return index === -1 ? ICU_SYMBOL_ORDER.length + ch.codePointAt(0) : index;
}

function foldLetter(ch) {
  return ch.normalize('NFD')[0].toLowerCase();
}

/** Compare two strings the way the reference's localeCompare orders matrix names. */
export function compareNames(a, b) {
  const left = Array.from(a);
  const right = Array.from(b);
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    const ca = collationClass(left[i]);
    const cb = collationClass(right[i]);
    if (ca !== cb) return ca - cb;
    if (ca === 0) {
      const ra = symbolRank(left[i]);
      const rb = symbolRank(right[i]);
      if (ra !== rb) return ra - rb;
      continue;
    }
    const fa = ca === 2 ? foldLetter(left[i]) : left[i];
    const fb = cb === 2 ? foldLetter(right[i]) : right[i];
    if (fa !== fb) return fa.codePointAt(0) < fb.codePointAt(0) ? -1 : 1;
  }
  if (left.length !== right.length) return left.length - right.length;
  for (let i = 0; i < length; i++) {
    if (left[i] !== right[i]) {
      const lowerA = left[i] === left[i].toLowerCase();
      const lowerB = right[i] === right[i].toLowerCase();
      if (lowerA !== lowerB) return lowerA ? -1 : 1;
      if (left[i] !== right[i]) return left[i] < right[i] ? -1 : 1;
    }
  }
  return 0;
}

export function expandMatrix(matrix) {
  if (Array.isArray(matrix)) return matrix.map((value) => ({ value }));
  if (!isPlainObject(matrix)) fail('matrix must be an array or an object of arrays');
  const dimensions = Object.keys(matrix).sort(compareNames);
  if (dimensions.length === 0) return [];
  let combos = [{}];
  for (const dimension of dimensions) {
    const next = [];
    for (const combo of combos) {
      for (const value of matrix[dimension]) next.push({ ...combo, [dimension]: value });
    }
    combos = next;
  }
  return combos;
}

export function applyIncludeExclude(combos, include, exclude) {
  let result = combos.slice();
  for (const entry of exclude ?? []) {
    const keys = Object.keys(entry);
    if (keys.length === 0) continue;
    result = result.filter((combo) => !keys.every((k) => combo[k] === entry[k]));
  }
  for (const entry of include ?? []) {
    const keys = Object.keys(entry);
    if (keys.length === 0) continue;
    const exists = result.some(
      (combo) => Object.keys(combo).length === keys.length && keys.every((k) => combo[k] === entry[k]),
    );
    if (!exists) result.push({ ...entry });
  }
  return result;
}

export function formatMatrixSuffix(combo) {
  const keys = Object.keys(combo);
  if (keys.length === 1 && keys[0] === 'value') return String(combo.value);
  return keys.map((k) => String(combo[k])).join(', ');
}

export function isMatrixJobOutputs(value) {
  return isPlainObject(value) && isPlainObject(value.byMatrix) && 'merged' in value;
}

export function isHostJobOutputs(value) {
  return isPlainObject(value) && isPlainObject(value.byHost) && isPlainObject(value.summary);
}

// ---------------------------------------------------------------------------
// DAG validation (utility; the compiler's diagnostics are produced natively)
// ---------------------------------------------------------------------------

export function validateDag(jobs) {
  const errors = [];
  const names = new Set(jobs.map((j) => j.name));
  const needsOf = (j) => (j.needs ?? []).map((n) => (isString(n) ? n : n?.name)).filter(isString);
  for (const j of jobs) {
    for (const dep of needsOf(j)) {
      if (dep === j.name) errors.push(`Job "${j.name}" depends on itself`);
      else if (!names.has(dep)) errors.push(`Job "${j.name}" depends on non-existent job "${dep}"`);
    }
  }
  if (errors.length === 0) {
    const indegree = new Map(jobs.map((j) => [j.name, 0]));
    for (const j of jobs) for (const dep of needsOf(j)) indegree.set(j.name, indegree.get(j.name) + 1);
    const queue = [...indegree].filter(([, d]) => d === 0).map(([n]) => n);
    const done = new Set();
    while (queue.length) {
      const n = queue.shift();
      done.add(n);
      for (const j of jobs) {
        if (needsOf(j).includes(n)) {
          indegree.set(j.name, indegree.get(j.name) - 1);
          if (indegree.get(j.name) === 0) queue.push(j.name);
        }
      }
    }
    const rest = jobs.map((j) => j.name).filter((n) => !done.has(n));
    if (rest.length) errors.push(`Circular dependency: ${rest.join(' -> ')}`);
  }
  return { valid: errors.length === 0, errors };
}

// ---------------------------------------------------------------------------
// Errors and helpers (§13, §22)
// ---------------------------------------------------------------------------

export class SecretNotFoundError extends Error {
  constructor(key, availableKeys = []) {
    const sorted = availableKeys.slice().sort();
    super(`Secret "${key}" not found. Available: ${sorted.join(', ')}`);
    this.name = 'SecretNotFoundError';
    this.key = key;
    this.availableKeys = sorted;
  }
}

export class WaitForTimeoutError extends Error {
  constructor(stepName, elapsedMs, attempts) {
    super(`${stepName}: timed out after ${elapsedMs}ms (${attempts} attempts)`);
    this.name = 'WaitForTimeoutError';
    this.stepName = stepName;
    this.elapsedMs = elapsedMs;
    this.attempts = attempts;
  }
}

function sleep(ms) {
  const timer = globalThis.setTimeout;
  if (!isFunction(timer)) return Promise.resolve();
  return new Promise((resolve) => timer(resolve, ms));
}

export async function waitFor({
  check,
  intervalMs = 2000,
  timeoutMs = 60000,
  initialDelayMs = 0,
  onSuccess: onDone,
  onTimeout,
  swallowErrors = true,
  name = 'waitFor',
  log,
} = {}) {
  if (!isFunction(check)) fail('waitFor() requires a check function');
  const started = Date.now();
  let attempts = 0;
  if (initialDelayMs > 0) await sleep(initialDelayMs);
  for (;;) {
    attempts += 1;
    try {
      const value = await check();
      if (value !== null && value !== undefined) {
        if (isFunction(onDone)) await onDone(value);
        return value;
      }
    } catch (error) {
      if (!swallowErrors) throw error;
      log?.warn?.(`${name}: check failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    const elapsed = Date.now() - started;
    if (elapsed + intervalMs > timeoutMs) {
      if (isFunction(onTimeout)) return onTimeout();
      throw new WaitForTimeoutError(name, elapsed, attempts);
    }
    await sleep(intervalMs);
  }
}

export function waitForStep(name, options) {
  const { check, intervalMs, timeoutMs, initialDelayMs, onSuccess: onDone, onTimeout, swallowErrors, ...stepOptions } = options ?? {};
  return makeStep(
    name,
    {
      ...stepOptions,
      run: (ctx) =>
        waitFor({ check: () => check(ctx), intervalMs, timeoutMs, initialDelayMs, onSuccess: onDone, onTimeout, swallowErrors, name, log: ctx.log }),
    },
    callSite('step'),
  );
}

export async function idempotent({ check, apply, whenInSync, summarize, name = 'idempotent', log } = {}) {
  if (!isFunction(check) || !isFunction(apply)) fail(`${name}: idempotent() requires check and apply`);
  const drift = await check();
  if (drift === null || drift === undefined) {
    return { outcome: 'skipped', drift: null, result: isFunction(whenInSync) ? await whenInSync() : undefined };
  }
  if (isFunction(summarize)) log?.info?.(`${name}: ${summarize(drift)}`);
  return { outcome: 'applied', drift, result: await apply(drift) };
}

export function idempotentStep(name, options) {
  const { check, apply, whenInSync, summarize, ...stepOptions } = options ?? {};
  return makeStep(
    name,
    {
      ...stepOptions,
      run: (ctx) =>
        idempotent({
          check: () => check(ctx),
          apply: (drift) => apply(ctx, drift),
          whenInSync: whenInSync ? () => whenInSync(ctx) : undefined,
          summarize,
          name,
          log: ctx.log,
        }),
    },
    callSite('step'),
  );
}

export function checkStep(name, options) {
  const { check, apply, summarize, whenInSync, ...stepOptions } = options ?? {};
  if (!isFunction(check) || !isFunction(apply)) fail(`checkStep('${name}') requires check and apply`);
  if (!isFunction(summarize)) fail('summarize is required when check is set');
  return makeStep(
    name,
    {
      ...stepOptions,
      check,
      summarize,
      whenInSync,
      run: async (ctx) => {
        const drift = await check(ctx);
        if (drift === null || drift === undefined) return whenInSync ? whenInSync(ctx) : undefined;
        return apply(ctx, drift);
      },
    },
    callSite('step'),
  );
}

export function restartHost() {
  throw new Error('restartHost is not supported by this KiCI version');
}

export function waitForHostAlive() {
  throw new Error('waitForHostAlive is not supported by this KiCI version');
}

// ---------------------------------------------------------------------------
// Internals for `kici:compile` and the job runner (not part of the public .d.ts)
// ---------------------------------------------------------------------------

export const __internals = Object.freeze({
  callSite,
  parseFrame,
  planSteps,
  normalizeHook,
  isKiciSchema,
  ruleCallSite: (r) => ruleCallSites.get(r),
  factoryCallSite: (o) => factoryCallSites.get(o),
  workflowJobNames: (w) => workflowJobNames.get(w),
  unnamedJobPlaceholder: (j) => unnamedJobPlaceholders.get(j),
  factoryIssues: (o) => factoryIssues.get(o) ?? [],
  evaluateRule,
  formatMatrixSuffix,
  compareNames,
  outputs: Object.freeze({
    setStepOutputs(stepRefOrName, value) {
      if (isString(stepRefOrName)) outputsState.byStepName.set(stepRefOrName, value);
      else outputsState.byStep.set(stepRefOrName, value);
    },
    setJobOutputs(jobName, value) {
      outputsState.byJobName.set(jobName, value);
    },
    reset() {
      outputsState.byStep = new WeakMap();
      outputsState.byStepName.clear();
      outputsState.byJobName.clear();
    },
  }),
});
