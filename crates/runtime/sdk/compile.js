// `kici:compile` — turns the workflow objects built by the SDK into lock-file JSON (schema 29).
//
// Exports:
//   collect(namespace)        -> [{export, workflow}] in discovery order
//   lower(workflow, source)   -> {workflow: LockWorkflow, warnings: string[], diagnostics: [{code, message}]}
//   hashFilesOf(workflow)     -> the author's hashFiles globs or undefined
//
// Key order of every emitted object is normative (lockfile.md); objects are built by
// assigning keys in that order and skipping absent optional keys.
// Host hook: `globalThis.__kici_host.purity(sourceText)` -> {pure: true} | {pure: false, reason}.

import { __internals, isKiciSchema } from 'kici:sdk';

const COMPILE_SCHEMA_VERSION = 5;

const isFunction = (v) => typeof v === 'function';
const isString = (v) => typeof v === 'string';
const isPlainObject = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RegExp);
const isWorkflow = (v) => v !== null && typeof v === 'object' && v._tag === 'Workflow';
const toList = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

// ---------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------

/**
 * Workflows exported by one module namespace: the default export (or its array elements),
 * then named exports in ascending code-unit order. The same object reachable through several
 * exports is listed at every position, as in the reference (duplicates surface as E107).
 */
export function collect(namespace) {
  const found = [];
  const defaultExport = namespace.default;
  if (Array.isArray(defaultExport)) {
    defaultExport.forEach((value, index) => {
      if (isWorkflow(value)) found.push({ export: `#default[${index}]`, workflow: value });
    });
  } else if (isWorkflow(defaultExport)) {
    found.push({ export: '#default', workflow: defaultExport });
  }
  const names = Object.keys(namespace)
    .filter((name) => name !== 'default')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    if (isWorkflow(namespace[name])) found.push({ export: `#${name}`, workflow: namespace[name] });
  }
  return found;
}

export function hashFilesOf(workflow) {
  return workflow.hashFiles === undefined ? undefined : toList(workflow.hashFiles).slice();
}

// ---------------------------------------------------------------------------
// Lowering
// ---------------------------------------------------------------------------

const WHEN_STATUSES = {
  'on-success': ['success'],
  always: ['success', 'failed', 'cancelled', 'skipped', 'timed_out_stale', 'drift_dropped'],
  'on-skip': ['success', 'skipped'],
  'on-failure': ['failed', 'timed_out_stale'],
};
const ALL_STATUSES = WHEN_STATUSES.always;

export function lower(workflow, source) {
  const context = {
    file: source.file,
    warnings: [],
    diagnostics: [],
  };
  const collectIssues = (object) => {
    for (const issue of __internals.factoryIssues(object)) {
      context.diagnostics.push({ code: 'E105', message: issue.message });
    }
  };
  collectIssues(workflow);

  const out = {};
  out.name = workflow.name;
  out.source = { file: source.file, export: source.export };
  out.contentHash = '';
  out.compileSchemaVersion = COMPILE_SCHEMA_VERSION;
  out.triggers = lowerTriggers(toList(workflow.on), context, collectIssues);

  const jobNames = __internals.workflowJobNames(workflow) ?? workflow.jobs.map((j) => (isFunction(j) ? null : j.name));
  const nameOfJob = (jobObject) => {
    const index = workflow.jobs.indexOf(jobObject);
    if (index !== -1 && jobNames[index] !== null) return jobNames[index];
    return jobObject.name;
  };
  // `{name: someUnnamedJob.name}` carries the placeholder; map it to the job-N name.
  const placeholderNames = new Map();
  workflow.jobs.forEach((jobObject, index) => {
    const placeholder = isFunction(jobObject) ? undefined : __internals.unnamedJobPlaceholder(jobObject);
    if (placeholder !== undefined) placeholderNames.set(placeholder, jobNames[index]);
  });
  const resolveName = (name) => (placeholderNames.has(name) ? placeholderNames.get(name) : name);
  const needsContext = { nameOfJob, resolveName };

  out.jobs = workflow.jobs.map((entry, index) => {
    if (isFunction(entry)) return lowerDynamicJob(entry, index, context, needsContext);
    collectIssues(entry);
    return lowerJob(entry, jobNames[index], index, context, needsContext, collectIssues);
  });

  if (workflow.rules !== undefined) out.rules = lowerRules(workflow.rules, (i) => i, context);
  if (workflow.description !== undefined) out.description = workflow.description;
  if (workflow.hashFiles !== undefined) out.hashFiles = toList(workflow.hashFiles).slice();
  if (workflow.registries !== undefined) {
    out.registries = workflow.registries.map((r) =>
      assign({}, [
        ['url', r.url],
        ['scope', r.scope],
        ['tokenSecret', r.tokenSecret],
        ['alwaysAuth', r.alwaysAuth],
      ]),
    );
  }
  if (workflow.installEnv !== undefined) out.installEnv = workflow.installEnv.slice();
  addHookFlags(out, workflow, ['onCancel', 'cleanup', 'onSuccess', 'onFailure']);
  if (workflow.concurrency !== undefined) {
    const concurrency = { hasGroup: true };
    if (workflow.concurrency.cancelInProgress !== undefined) concurrency.cancelInProgress = workflow.concurrency.cancelInProgress;
    if (workflow.concurrency.max !== undefined) concurrency.max = workflow.concurrency.max;
    out.concurrency = concurrency;
  }
  if (workflow.timeout !== undefined) out.timeout = workflow.timeout;
  if (workflow.approval !== undefined) out.approval = lowerApproval(workflow.approval);

  // Not part of the lock: where the workflow and each static job were declared, so that
  // validation diagnostics can point at the factory call (validation.md §1.3).
  const locations = { workflow: __internals.factoryCallSite(workflow) ?? null, jobs: {} };
  workflow.jobs.forEach((entry, index) => {
    if (isFunction(entry) || jobNames[index] === null) return;
    const site = __internals.factoryCallSite(entry);
    if (site) (locations.jobs[jobNames[index]] ??= []).push(site);
  });
  return { workflow: out, warnings: context.warnings, diagnostics: context.diagnostics, locations };
}

/** Assign [key, value] pairs in order, skipping undefined values. */
function assign(target, pairs) {
  for (const [key, value] of pairs) {
    if (value !== undefined) target[key] = value;
  }
  return target;
}

function addHookFlags(out, owner, hooks) {
  for (const hook of hooks) {
    if (owner[hook] !== undefined && owner[hook] !== null) {
      out[`has${hook[0].toUpperCase()}${hook.slice(1)}`] = true;
    }
  }
}

function lowerApproval(approval) {
  const normalized = normalizeApprovalForLock(approval);
  return assign({}, [
    ['clauses', normalized.clauses],
    ['reason', normalized.reason],
    ['timeoutSeconds', normalized.timeoutSeconds],
    ['when', normalized.when],
  ]);
}

function normalizeApprovalForLock(approval) {
  const clause = (c) => (isString(c.team) ? { team: c.team } : { user: c.user });
  if (approval === true) return { clauses: [], when: 'always' };
  if (Array.isArray(approval)) return { clauses: approval.map(clause), when: 'always' };
  return {
    clauses: toList(approval.approvers).map(clause),
    reason: approval.reason,
    timeoutSeconds: approval.timeout,
    when: approval.when ?? 'always',
  };
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

function lowerRules(rules, indexOf, context) {
  return toList(rules).map((r, i) => {
    const site = __internals.ruleCallSite(r);
    return {
      _type: 'dynamic',
      label: r.label,
      source: { file: site?.file ?? context.file, index: indexOf(i) },
    };
  });
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

function lowerNeeds(needs, { nameOfJob, resolveName }) {
  const entries = [];
  const groups = [];
  for (const need of toList(needs)) {
    if (isString(need)) {
      entries.push(resolveName(need));
    } else if (isPlainObject(need) && need._tag === 'Job') {
      entries.push(nameOfJob(need));
    } else if (isPlainObject(need) && (need._tag === 'DynamicGroupRef' || isString(need.group))) {
      entries.push({ group: need.group, runOn: runOnOf(need.when) });
      groups.push(need.group);
    } else if (isPlainObject(need)) {
      const name = isPlainObject(need.name) && need.name._tag === 'Job' ? nameOfJob(need.name) : resolveName(need.name);
      entries.push({ name, runOn: runOnOf(need.when) });
    } else {
      entries.push(need);
    }
  }
  return { entries, groups };
}

function runOnOf(when) {
  if (when === undefined) return WHEN_STATUSES['on-success'].slice();
  if (Array.isArray(when)) return when.slice();
  return (WHEN_STATUSES[when] ?? [when]).slice();
}

function lowerDynamicJob(generator, index, context, needsContext) {
  const out = { _type: 'dynamic', source: { file: context.file, index } };
  if (isString(generator.group)) out.group = generator.group;
  if (generator.needs !== undefined) out.needs = lowerNeeds(generator.needs, needsContext).entries;
  if (generator.resultAware === true) out.resultAware = true;
  return out;
}

function lowerJob(jobObject, name, jobIndex, context, needsContext, collectIssues) {
  const out = { _type: 'static', name };

  if (jobObject.runsOn !== undefined) {
    const selector = runsOnSelector(jobObject.runsOn);
    const labels = selector.labels.map(labelMatcher);
    const exclude = selector.exclude.map(labelMatcher);
    checkLabelOverlap(name, labels, exclude);
    out.runsOn = labels;
    if (exclude.length > 0) out.excludeLabels = exclude;
    out.runsOnPick = selector.pick ?? 'deterministic';
  }
  if (jobObject.runsOnAll !== undefined) out.runsOnAll = lowerRunsOnAll(jobObject.runsOnAll);
  if (jobObject.onUnreachable !== undefined) out.onUnreachable = jobObject.onUnreachable;
  if (jobObject.includeUninitialized !== undefined) out.includeUninitialized = jobObject.includeUninitialized;
  if (jobObject.maxParallel !== undefined) out.maxParallel = jobObject.maxParallel;
  if (jobObject.failFast !== undefined) out.failFast = jobObject.failFast;

  const needs = lowerNeeds(jobObject.needs, needsContext);
  out.needs = needs.entries;
  if (needs.groups.length > 0) out.dependsOnGroups = needs.groups;

  out.steps = lowerSteps(jobObject.steps, jobIndex, context, collectIssues);

  if (jobObject.matrix !== undefined) {
    out.matrix = isFunction(jobObject.matrix)
      ? { _type: 'dynamic', source: { file: context.file, jobName: name } }
      : { _type: 'static', values: cloneJson(jobObject.matrix) };
  }
  if (jobObject.include !== undefined) out.include = cloneJson(jobObject.include);
  if (jobObject.exclude !== undefined) out.exclude = cloneJson(jobObject.exclude);
  if (jobObject.rules !== undefined) out.rules = lowerRules(jobObject.rules, (i) => jobIndex * 100 + i, context);
  if (jobObject.description !== undefined) out.description = jobObject.description;
  if (jobObject.checkout !== undefined) out.checkout = jobObject.checkout;
  if (jobObject.cache !== undefined) out.cache = lowerCache(jobObject.cache);
  if (jobObject.container !== undefined) out.container = cloneJson(jobObject.container);

  const environments =
    jobObject.environments !== undefined
      ? toList(jobObject.environments)
      : jobObject.environment !== undefined
        ? [jobObject.environment]
        : undefined;
  if (environments !== undefined) {
    out.environments = environments.map((value) => {
      if (!isFunction(value)) return { value, dynamic: false };
      const inline = inlineValue(value, name, 'environment', context);
      return { value: inline ?? '', dynamic: true };
    });
  }

  if (isFunction(jobObject.env)) {
    out.dynamicEnv = true;
    const inline = inlineValue(jobObject.env, name, 'env', context);
    if (inline !== undefined) out.env = inline;
  } else if (jobObject.env !== undefined) {
    out.env = { ...jobObject.env };
  }

  if (isFunction(jobObject.concurrencyGroup)) {
    out.dynamicConcurrencyGroup = true;
    const inline = inlineValue(jobObject.concurrencyGroup, name, 'concurrencyGroup', context);
    if (inline !== undefined) out.concurrencyGroup = inline;
  } else if (jobObject.concurrencyGroup !== undefined) {
    out.concurrencyGroup = jobObject.concurrencyGroup;
  } else if (jobObject.environments !== undefined && isString(toList(jobObject.environments)[0])) {
    // Jobs deploying to several environments serialise on the first one (reference default).
    out.concurrencyGroup = toList(jobObject.environments)[0];
  }

  addHookFlags(out, jobObject, ['onCancel', 'cleanup', 'onSuccess', 'onFailure', 'beforeStep', 'afterStep']);
  if (jobObject.gracePeriod !== undefined) out.gracePeriod = jobObject.gracePeriod;
  if (jobObject.timeout !== undefined) out.timeout = jobObject.timeout;
  if (jobObject.resources !== undefined) out.resources = cloneJson(jobObject.resources);
  if (jobObject.init !== undefined) out.init = cloneJson(jobObject.init);
  if (jobObject.approval !== undefined) out.approval = lowerApproval(jobObject.approval);
  return out;
}

function cloneJson(value) {
  if (Array.isArray(value)) return value.map(cloneJson);
  if (value instanceof RegExp) return value;
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined && !isFunction(value[key])) out[key] = cloneJson(value[key]);
    }
    return out;
  }
  return value;
}

function lowerCache(cache) {
  return toList(cache).map((spec) =>
    assign({}, [
      ['key', spec.key],
      ['paths', toList(spec.paths).slice()],
      ['restoreKeys', spec.restoreKeys === undefined ? undefined : toList(spec.restoreKeys).slice()],
    ]),
  );
}

/** Inline form of a pure function, or undefined (with a warning) when it is not pure. */
function inlineValue(fn, jobName, field, context) {
  const text = Function.prototype.toString.call(fn);
  const host = globalThis.__kici_host;
  const verdict = host && isFunction(host.purity) ? host.purity(text) : { pure: false, reason: 'purity check unavailable' };
  if (verdict && verdict.pure === true) return { _type: 'inline', expression: text };
  context.warnings.push(
    // validation.md W001 (ours): the reference promised an init job; this version evaluates
    // impure env functions in the runner, and cannot yet for environment/concurrencyGroup.
    `[kici] Job "${jobName}": ${field} function is not pure (${verdict?.reason ?? 'unknown reason'}). It will be evaluated at run time.` +
      (field === 'env' ? '' : ' This requires a later KiCI version; runs of this job will fail.'),
  );
  return undefined;
}

// ---------------------------------------------------------------------------
// Labels (runsOn)
// ---------------------------------------------------------------------------

function runsOnSelector(runsOn) {
  if (isPlainObject(runsOn) && runsOn.labels !== undefined) {
    return { labels: toList(runsOn.labels), exclude: toList(runsOn.exclude), pick: runsOn.pick };
  }
  return { labels: toList(runsOn), exclude: [], pick: undefined };
}

function lowerRunsOnAll(runsOnAll) {
  const selector = runsOnSelector(runsOnAll);
  const sets = selector.labels.length > 0 && selector.labels.every(Array.isArray) ? selector.labels : [selector.labels];
  return {
    include: sets.map((set) => toList(set).map(labelMatcher)),
    exclude: selector.exclude.map(labelMatcher),
  };
}

const GLOB_CHARS = /[*?[\]{}]/;

function labelMatcher(label) {
  if (label instanceof RegExp) return { kind: 'regex', source: label.source, flags: label.flags };
  const text = String(label);
  if (!GLOB_CHARS.test(text)) return { kind: 'exact', value: text };
  return { kind: 'regex', source: globToRegexSource(text), flags: '' };
}

function checkLabelOverlap(jobName, labels, exclude) {
  const required = new Set(labels.filter((m) => m.kind === 'exact').map((m) => m.value));
  const overlap = exclude.filter((m) => m.kind === 'exact' && required.has(m.value)).map((m) => m.value);
  if (overlap.length > 0) {
    throw new Error(
      `Job "${jobName}": labels and exclude overlap on [${overlap.join(', ')}]. A label cannot be both required and excluded.`,
    );
  }
}

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

function lowerSteps(stepInputs, jobIndex, context, collectIssues) {
  const plan = __internals.planSteps(toList(stepInputs));
  return plan.map((entry) => {
    if (entry.kind !== 'parallel') return lowerStep(entry, context, collectIssues);
    const seen = new Set();
    for (const child of entry.children) {
      if (seen.has(child.name)) throw new Error(`job step: duplicate step name '${child.name}' in parallel group`);
      seen.add(child.name);
    }
    if (entry.children.length === 1) {
      context.warnings.push(
        `[kici] parallel group with a single step ('${entry.children[0].name}') runs identically to a sequential step`,
      );
    }
    const out = { kind: 'parallel', name: entry.name, failFast: entry.failFast };
    if (entry.maxParallel !== undefined) out.maxParallel = entry.maxParallel;
    out.children = entry.children.map((child) => lowerStep(child, context, collectIssues));
    return out;
  });
}

function lowerStep(entry, context, collectIssues) {
  const s = entry.step ?? {};
  if (entry.step) collectIssues(entry.step);
  const out = { name: entry.name };
  out.hasOutputs = isPlainObject(s.outputs) && Object.keys(s.outputs).length > 0;
  if (s.continueOnError !== undefined) out.continueOnError = s.continueOnError;
  if (s.timeout !== undefined) out.timeout = s.timeout;
  if (s.retry !== undefined) out.retry = normalizeRetry(s.retry);
  if (s.cache !== undefined) out.cache = lowerCache(s.cache);
  if (s.sourceLocation !== undefined) {
    out.sourceLocation = {
      file: s.sourceLocation.file,
      line: s.sourceLocation.line,
      column: s.sourceLocation.column,
    };
  }
  if (s.rules !== undefined && toList(s.rules).length > 0) {
    out.hasRules = true;
    out.rules = lowerRules(s.rules, (i) => i, context);
  }
  if (s.onCancel !== undefined) out.hasOnCancel = true;
  if (s.cleanup !== undefined) out.hasCleanup = true;
  if (s.check !== undefined) out.hasCheck = true;
  if (s.whenInSync !== undefined) out.hasWhenInSync = true;
  if (s.approval !== undefined) out.approval = lowerApproval(s.approval);
  return out;
}

function normalizeRetry(retry) {
  const options = typeof retry === 'number' ? { maxAttempts: retry } : retry;
  return {
    maxAttempts: options.maxAttempts,
    delayMs: options.delayMs ?? 1000,
    backoff: options.backoff ?? 'exponential',
    maxDelayMs: options.maxDelayMs ?? 30000,
  };
}

// ---------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------

function patternList(value) {
  return toList(value).map((p) => {
    if (p instanceof RegExp) {
      const out = { type: 'regex', pattern: p.source };
      if (p.flags !== '') out.flags = p.flags;
      return out;
    }
    return { type: 'glob', pattern: String(p) };
  });
}

const strings = (value) => toList(value).map(String);

function withRepos(out, options) {
  const repos = patternList(options.repos);
  if (repos.length > 0) out.repos = repos;
  return out;
}

const PR_DEFAULT_EVENTS = ['opened', 'synchronize', 'reopened', 'closed'];

function lowerTriggers(triggers, context, collectIssues) {
  const out = [];
  for (const trigger of triggers) {
    if (!isPlainObject(trigger) || !isString(trigger._tag)) continue;
    collectIssues(trigger);
    const o = trigger;
    switch (o._tag) {
      case 'PushTrigger': {
        const hasTags = o.tags !== undefined;
        // Ours (fixes.md F53): push({tags}) alone no longer also fires on every branch push.
        if (!hasTags || o.branches !== undefined || o.paths !== undefined) {
          out.push(withRepos({ _type: 'push', branches: patternList(o.branches), paths: strings(o.paths) }, o));
        }
        if (hasTags) out.push(withRepos({ _type: 'tag', patterns: patternList(o.tags) }, o));
        break;
      }
      case 'PrTrigger':
        out.push(
          withRepos(
            {
              _type: 'pr',
              events: o.events === undefined ? PR_DEFAULT_EVENTS.slice() : strings(o.events),
              targetBranches: patternList(o.target),
              sourceBranches: patternList(o.source),
              paths: strings(o.paths),
            },
            o,
          ),
        );
        break;
      case 'TagTrigger':
        out.push(withRepos({ _type: 'tag', patterns: patternList(o.patterns) }, o));
        break;
      case 'CommentTrigger': {
        const t = { _type: 'comment', actions: strings(o.actions) };
        if (o.source !== undefined) t.source = o.source;
        if (o.bodyMatch !== undefined) t.bodyMatch = patternList(o.bodyMatch)[0];
        out.push(withRepos(t, o));
        break;
      }
      case 'ReviewTrigger':
        out.push(withRepos({ _type: 'review', actions: strings(o.actions), states: strings(o.states) }, o));
        break;
      case 'ReviewCommentTrigger':
        out.push(withRepos({ _type: 'review_comment', actions: strings(o.actions) }, o));
        break;
      case 'ReleaseTrigger':
        out.push(withRepos({ _type: 'release', actions: strings(o.actions) }, o));
        break;
      case 'StarTrigger':
        out.push(withRepos({ _type: 'star', actions: strings(o.actions) }, o));
        break;
      case 'WatchTrigger':
        out.push(withRepos({ _type: 'watch', actions: strings(o.actions) }, o));
        break;
      case 'DispatchTrigger': {
        const t = withRepos({ _type: 'dispatch', types: strings(o.types) }, o);
        if (o.inputs !== undefined) t.inputs = lowerInputs(o.inputs, 'dispatch()', false, context);
        out.push(t);
        break;
      }
      case 'CreateTrigger':
      case 'DeleteTrigger':
        out.push(
          withRepos(
            {
              _type: o._tag === 'CreateTrigger' ? 'create' : 'delete',
              refTypes: strings(o.refTypes),
              patterns: patternList(o.patterns),
            },
            o,
          ),
        );
        break;
      case 'StatusTrigger':
        out.push(withRepos({ _type: 'status', contexts: strings(o.contexts), states: strings(o.states) }, o));
        break;
      case 'WorkflowRunTrigger':
        out.push(
          withRepos(
            {
              _type: 'workflow_run',
              actions: strings(o.actions),
              workflows: strings(o.workflows),
              conclusions: strings(o.conclusions),
            },
            o,
          ),
        );
        break;
      case 'ForkTrigger':
        out.push(withRepos({ _type: 'fork' }, o));
        break;
      case 'WebhookTrigger':
        out.push(withRepos({ _type: 'webhook', events: strings(o.events), actions: strings(o.actions) }, o));
        break;
      case 'KiciEventTrigger':
        out.push(
          assign({ _type: 'kici_event' }, [
            ['eventName', o.name],
            ['match', cloneJson(o.match)],
            ['not', cloneJson(o.not)],
            ['source', o.source],
          ]),
        );
        break;
      case 'WorkflowCompleteTrigger':
        out.push(
          assign({ _type: 'workflow_complete' }, [
            ['name', o.name],
            ['status', o.status === undefined ? undefined : strings(o.status)],
            ['source', o.source],
          ]),
        );
        break;
      case 'JobCompleteTrigger':
        out.push(
          assign({ _type: 'job_complete' }, [
            ['workflow', o.workflow],
            ['job', o.job],
            ['status', o.status === undefined ? undefined : strings(o.status)],
            ['source', o.source],
          ]),
        );
        break;
      case 'GenericWebhookTrigger':
        out.push(
          assign({ _type: 'generic_webhook' }, [
            ['source', o.source],
            ['events', o.events === undefined ? undefined : strings(o.events)],
            ['match', cloneJson(o.match)],
            ['not', cloneJson(o.not)],
            ['auth', o.auth === undefined ? undefined : lowerAuth(o.auth)],
            ['path', o.path],
          ]),
        );
        break;
      case 'ScheduleTrigger':
        out.push(
          assign({ _type: 'schedule' }, [
            ['cronExpression', o.cron],
            ['timezone', o.timezone ?? 'UTC'],
            ['description', o.description],
            ['inputs', o.inputs === undefined ? undefined : lowerInputs(o.inputs, 'schedule()', true, context)],
          ]),
        );
        break;
      case 'LifecycleTrigger':
        out.push(
          assign({ _type: 'lifecycle' }, [
            ['events', strings(o.events)],
            ['sources', o.sources === undefined ? undefined : strings(o.sources)],
            ['description', o.description],
          ]),
        );
        break;
      default:
        break;
    }
  }
  return out;
}

function lowerAuth(auth) {
  return assign({}, [
    ['method', auth.method],
    ['secret', auth.secret],
    ['signatureHeader', auth.signatureHeader],
    ['header', auth.header],
  ]);
}

// ---------------------------------------------------------------------------
// Dispatch / schedule inputs (InputsDescriptorMap)
// ---------------------------------------------------------------------------

function lowerInputs(inputs, triggerLabel, isSchedule, context) {
  const map = isPlainObject(inputs) && inputs.__kiciDispatchInputs === true ? inputs.map : inputs;
  const out = {};
  for (const [name, schema] of Object.entries(map ?? {})) {
    const descriptor = describeInput(schema);
    if (descriptor === undefined) {
      context.diagnostics.push({ code: 'E105', message: `${triggerLabel}: unsupported dispatch input construct for "${name}"` });
      continue;
    }
    if (descriptor.flags) {
      context.diagnostics.push({
        code: 'E105',
        message: `${triggerLabel}: regex flags are not supported in dispatch inputs ("${name}")`,
      });
    }
    if (isSchedule && !descriptor.optional && !('default' in descriptor.lock)) {
      context.diagnostics.push({ code: 'E105', message: `schedule input "${name}" needs a default or must be optional` });
    }
    out[name] = descriptor.lock;
  }
  return out;
}

const INPUT_KINDS = new Set(['string', 'number', 'boolean', 'enum', 'literal']);

function describeInput(schema) {
  if (!isKiciSchema(schema)) return undefined;
  const def = schema._def;
  if (!INPUT_KINDS.has(def.kind)) return undefined;
  const type = def.kind === 'number' && def.int ? 'integer' : def.kind;
  const optional = def.optional === true;
  // `description` is part of the descriptor type but the reference never wrote it (its zod
  // keeps descriptions outside the schema definition), so it is omitted here too.
  const lock = assign({ type, optional, nullable: def.nullable === true }, [
    ['default', def.hasDefault ? def.defaultValue : undefined],
  ]);
  if (def.hasDefault && def.defaultValue === undefined) lock.default = undefined;
  if (def.hasDefault && def.defaultValue === null) lock.default = null;
  assign(lock, [
    ['values', def.kind === 'enum' ? def.values.slice() : undefined],
    ['literal', def.kind === 'literal' ? def.value : undefined],
    ['min', def.min],
    ['max', def.max],
    ['pattern', def.regex instanceof RegExp ? def.regex.source : undefined],
  ]);
  return { lock, optional, flags: def.regex instanceof RegExp && def.regex.flags !== '' };
}

// ---------------------------------------------------------------------------
// Glob -> regex source, byte-compatible with picomatch 4 `makeRe(glob).source` under default
// options (the lock stores label globs as regexes; lockfile.md §5.3).
// ---------------------------------------------------------------------------

const DOT_LITERAL = '\\.';
const SLASH_LITERAL = '\\/';
const ONE_CHAR = '(?=.)';
const QMARK = '[^/]';
const QMARK_NO_DOT = '[^/\\.]';
const STAR = `${QMARK}*?`;
const NO_DOT = '(?!\\.)';
const NO_DOT_SLASH = '(?!\\.{0,1}(?:\\/|$))';
const START_ANCHOR = '(?:^|\\/)';
const GLOBSTAR = `(?:(?!${START_ANCHOR}${DOT_LITERAL}).)*?`;
const PLAIN_TEXT = /^[^@![\].,$*+?^{}()|\\/]+/;
const REGEX_CHARS = /[-*+?.^${}(|)[\]]/;

export function globToRegexSource(glob) {
  let input = glob;
  while (input.startsWith('./')) input = input.slice(2);
  const shortcut = (input[0] === '.' || input[0] === '*') ? starShortcut(input) : undefined;
  if (shortcut !== undefined) return `^(?:${shortcut})$`;
  const parsed = parseGlob(input);
  const body = `^(?:${parsed.output})$`;
  return parsed.negated ? `^(?!${body}).*$` : body;
}

/** The whole-pattern shortcuts for `*`, `*.ext`, `**` and friends. */
function starShortcut(input) {
  const make = (text) => {
    switch (text) {
      case '*':
        return `${NO_DOT}${ONE_CHAR}${STAR}`;
      case '.*':
        return `${DOT_LITERAL}${ONE_CHAR}${STAR}`;
      case '*.*':
        return `${NO_DOT}${STAR}${DOT_LITERAL}${ONE_CHAR}${STAR}`;
      case '*/*':
        return `${NO_DOT}${STAR}${SLASH_LITERAL}${ONE_CHAR}${NO_DOT}${STAR}`;
      case '**':
        return `${NO_DOT}(${'?:'}${GLOBSTAR})`;
      case '**/*':
        return `(?:${NO_DOT}(?:${GLOBSTAR})${SLASH_LITERAL})?${NO_DOT}${ONE_CHAR}${STAR}`;
      case '**/*.*':
        return `(?:${NO_DOT}(?:${GLOBSTAR})${SLASH_LITERAL})?${NO_DOT}${STAR}${DOT_LITERAL}${ONE_CHAR}${STAR}`;
      case '**/.*':
        return `(?:${NO_DOT}(?:${GLOBSTAR})${SLASH_LITERAL})?${DOT_LITERAL}${ONE_CHAR}${STAR}`;
      default: {
        const match = /^(.*?)\.(\w+)$/.exec(text);
        if (!match) return undefined;
        const head = make(match[1]);
        return head === undefined ? undefined : head + DOT_LITERAL + match[2];
      }
    }
  };
  const source = make(input);
  return source === undefined ? undefined : `${source}${SLASH_LITERAL}?`;
}

/** Patterns without leading `*`/`!` and without `/ ( ) [ ] { } "`: escape, star, qmark only. */
function simpleGlob(input) {
  let backslashes = false;
  let output = input.replace(/(\\?)((\W)(\3*))/g, (m, esc, chars, first, rest, index) => {
    if (first === '\\') {
      backslashes = true;
      return m;
    }
    if (first === '?') {
      if (esc) return esc + first + (rest ? QMARK.repeat(rest.length) : '');
      if (index === 0) return QMARK_NO_DOT + (rest ? QMARK.repeat(rest.length) : '');
      return QMARK.repeat(chars.length);
    }
    if (first === '.') return DOT_LITERAL.repeat(chars.length);
    if (first === '*') {
      if (esc) return esc + first + (rest ? STAR : '');
      return STAR;
    }
    return esc ? m : `\\${m}`;
  });
  if (backslashes) output = output.replace(/\\+/g, (m) => (m.length % 2 === 0 ? '\\\\' : m ? '\\' : ''));
  return `^(?:${output})$`;
}

function parseGlob(input) {
  if (!/(^[*!]|[/()[\]{}"])/.test(input)) return { output: simpleGlob(input), negated: false };

  const bos = { type: 'bos', value: '', output: '' };
  const tokens = [bos];
  const braces = [];
  const stack = [];
  const state = { output: '', index: -1, start: 0, negated: false, brackets: 0, braces: 0, parens: 0, quotes: 0, backtrack: false };
  let prev = bos;
  const length = input.length;
  const eos = () => state.index === length - 1;
  const peek = (n = 1) => input[state.index + n];
  const advance = () => input[++state.index] || '';
  const remaining = () => input.slice(state.index + 1);
  const append = (token) => {
    state.output += token.output != null ? token.output : token.value;
  };
  const push = (token) => {
    if (prev.type === 'globstar') {
      const isBrace = state.braces > 0 && (token.type === 'comma' || token.type === 'brace');
      if (token.type !== 'slash' && token.type !== 'paren' && !isBrace) {
        state.output = state.output.slice(0, -prev.output.length);
        prev.type = 'star';
        prev.value = '*';
        prev.output = STAR;
        state.output += prev.output;
      }
    }
    if (token.value || token.output) append(token);
    if (prev.type === 'text' && token.type === 'text') {
      prev.output = (prev.output || prev.value) + token.value;
      prev.value += token.value;
      return;
    }
    token.prev = prev;
    tokens.push(token);
    prev = token;
  };
  const enter = (type) => {
    state[type]++;
    stack.push(type);
  };
  const leave = (type) => {
    state[type]--;
    stack.pop();
  };

  while (!eos()) {
    let value = advance();

    if (value === '\\') {
      const next = peek();
      if (next === '/' || next === '.' || next === ';') continue;
      if (!next) {
        push({ type: 'text', value: value + '\\' });
        continue;
      }
      const run = /^\\+/.exec(remaining());
      if (run && run[0].length > 2) {
        state.index += run[0].length;
        if (run[0].length % 2 !== 0) value += '\\';
      }
      value += advance();
      if (state.brackets === 0) {
        push({ type: 'text', value });
        continue;
      }
    }

    if (state.brackets > 0 && (value !== ']' || prev.value === '[' || prev.value === '[^')) {
      if ((value === '[' && peek() !== ':') || (value === '-' && peek() === ']')) value = `\\${value}`;
      if (value === ']' && (prev.value === '[' || prev.value === '[^')) value = `\\${value}`;
      prev.value += value;
      append({ value });
      continue;
    }

    if (state.quotes === 1 && value !== '"') {
      value = value.replace(/[-*+?.^${}(|)[\]\\/]/g, '\\$&');
      prev.value += value;
      append({ value });
      continue;
    }
    if (value === '"') {
      state.quotes = state.quotes === 1 ? 0 : 1;
      continue;
    }
    if (value === '(') {
      enter('parens');
      push({ type: 'paren', value });
      continue;
    }
    if (value === ')') {
      push({ type: 'paren', value, output: state.parens ? ')' : '\\)' });
      if (state.parens > 0) leave('parens');
      continue;
    }
    if (value === '[') {
      if (!remaining().includes(']')) value = `\\${value}`;
      else enter('brackets');
      push({ type: 'bracket', value });
      continue;
    }
    if (value === ']') {
      if (prev.type === 'bracket' && prev.value.length === 1) {
        push({ type: 'text', value, output: `\\${value}` });
        continue;
      }
      if (state.brackets === 0) {
        push({ type: 'text', value, output: `\\${value}` });
        continue;
      }
      leave('brackets');
      const inner = prev.value.slice(1);
      if (inner[0] === '^' && !inner.includes('/')) value = `/${value}`;
      prev.value += value;
      append({ value });
      if (REGEX_CHARS.test(inner)) continue;
      const escaped = prev.value.replace(/[-*+?.^${}(|)[\]\\/]/g, '\\$&');
      state.output = state.output.slice(0, -prev.value.length);
      prev.value = `(?:${escaped}|${prev.value})`;
      state.output += prev.value;
      continue;
    }
    if (value === '{') {
      enter('braces');
      const open = { type: 'brace', value, output: '(', outputIndex: state.output.length, tokensIndex: tokens.length };
      braces.push(open);
      push(open);
      continue;
    }
    if (value === '}') {
      const brace = braces[braces.length - 1];
      if (!brace) {
        push({ type: 'text', value, output: value });
        continue;
      }
      let output = ')';
      if (brace.dots === true) {
        const range = [];
        for (let i = tokens.length - 1; i >= 0; i--) {
          const token = tokens.pop();
          if (token.type === 'brace') break;
          if (token.type !== 'dots') range.unshift(token.value);
        }
        output = expandRange(range);
        state.backtrack = true;
      }
      if (brace.comma !== true && brace.dots !== true) {
        const before = state.output.slice(0, brace.outputIndex);
        const inner = tokens.slice(brace.tokensIndex);
        brace.value = brace.output = '\\{';
        value = output = '\\}';
        state.output = before;
        for (const token of inner) state.output += token.output || token.value;
      }
      push({ type: 'brace', value, output });
      leave('braces');
      braces.pop();
      continue;
    }
    if (value === '|') {
      push({ type: 'text', value });
      continue;
    }
    if (value === ',') {
      let output = value;
      const brace = braces[braces.length - 1];
      if (brace && stack[stack.length - 1] === 'braces') {
        brace.comma = true;
        output = '|';
      }
      push({ type: 'comma', value, output });
      continue;
    }
    if (value === '/') {
      if (prev.type === 'dot' && state.index === state.start + 1) {
        state.start = state.index + 1;
        state.output = '';
        tokens.pop();
        prev = bos;
        continue;
      }
      push({ type: 'slash', value, output: SLASH_LITERAL });
      continue;
    }
    if (value === '.') {
      if (state.braces > 0 && prev.type === 'dot') {
        if (prev.value === '.') prev.output = DOT_LITERAL;
        const brace = braces[braces.length - 1];
        prev.type = 'dots';
        prev.output += value;
        prev.value += value;
        brace.dots = true;
        continue;
      }
      if (state.braces + state.parens === 0 && prev.type !== 'bos' && prev.type !== 'slash') {
        push({ type: 'text', value, output: DOT_LITERAL });
        continue;
      }
      push({ type: 'dot', value, output: DOT_LITERAL });
      continue;
    }
    if (value === '?') {
      if (prev.type === 'slash' || prev.type === 'bos') {
        push({ type: 'qmark', value, output: QMARK_NO_DOT });
        continue;
      }
      push({ type: 'qmark', value, output: QMARK });
      continue;
    }
    if (value === '!' && state.index === 0) {
      let count = 1;
      while (peek() === '!') {
        advance();
        state.start++;
        count++;
      }
      if (count % 2 === 1) {
        state.negated = true;
        state.start++;
      }
      continue;
    }
    if (value === '+') {
      if (prev.value === '(') {
        push({ type: 'plus', value, output: '\\+' });
        continue;
      }
      if (prev.type === 'bracket' || prev.type === 'paren' || prev.type === 'brace' || state.parens > 0) {
        push({ type: 'plus', value });
        continue;
      }
      push({ type: 'plus', value: '\\+' });
      continue;
    }
    if (value !== '*') {
      if (value === '$' || value === '^') value = `\\${value}`;
      const match = PLAIN_TEXT.exec(remaining());
      if (match) {
        value += match[0];
        state.index += match[0].length;
      }
      push({ type: 'text', value });
      continue;
    }

    // Stars.
    if (prev.type === 'globstar' || prev.star === true) {
      prev.type = 'star';
      prev.star = true;
      prev.value += value;
      prev.output = STAR;
      state.backtrack = true;
      continue;
    }
    let rest = remaining();
    if (prev.type === 'star') {
      const prior = prev.prev;
      const before = prior.prev;
      const isStart = prior.type === 'slash' || prior.type === 'bos';
      const afterStar = before && (before.type === 'star' || before.type === 'globstar');
      const isBrace = state.braces > 0 && (prior.type === 'comma' || prior.type === 'brace');
      if (!isStart && prior.type !== 'paren' && !isBrace) {
        push({ type: 'star', value, output: '' });
        continue;
      }
      while (rest.slice(0, 3) === '/**') {
        const after = input[state.index + 4];
        if (after && after !== '/') break;
        rest = rest.slice(3);
        state.index += 3;
      }
      if (prior.type === 'bos' && eos()) {
        prev.type = 'globstar';
        prev.value += value;
        prev.output = `(?:${GLOBSTAR})`;
        state.output = prev.output;
        continue;
      }
      if (prior.type === 'slash' && prior.prev.type !== 'bos' && !afterStar && eos()) {
        state.output = state.output.slice(0, -(prior.output + prev.output).length);
        prior.output = `(?:${prior.output}`;
        prev.type = 'globstar';
        prev.output = `(?:${GLOBSTAR})|$)`;
        prev.value += value;
        state.output += prior.output + prev.output;
        continue;
      }
      if (prior.type === 'slash' && prior.prev.type !== 'bos' && rest[0] === '/') {
        const end = rest[1] !== undefined ? '|$' : '';
        state.output = state.output.slice(0, -(prior.output + prev.output).length);
        prior.output = `(?:${prior.output}`;
        prev.type = 'globstar';
        prev.output = `(?:${GLOBSTAR})${SLASH_LITERAL}|${SLASH_LITERAL}${end})`;
        prev.value += value;
        state.output += prior.output + prev.output;
        advance();
        push({ type: 'slash', value: '/', output: '' });
        continue;
      }
      if (prior.type === 'bos' && rest[0] === '/') {
        prev.type = 'globstar';
        prev.value += value;
        prev.output = `(?:^|${SLASH_LITERAL}|(?:${GLOBSTAR})${SLASH_LITERAL})`;
        state.output = prev.output;
        advance();
        push({ type: 'slash', value: '/', output: '' });
        continue;
      }
      state.output = state.output.slice(0, -prev.output.length);
      prev.type = 'globstar';
      prev.output = `(?:${GLOBSTAR})`;
      prev.value += value;
      state.output += prev.output;
      continue;
    }
    const token = { type: 'star', value, output: STAR };
    if (state.index === state.start || prev.type === 'slash' || prev.type === 'dot') {
      const guard = prev.type === 'dot' ? NO_DOT_SLASH : NO_DOT;
      state.output += guard;
      prev.output += guard;
      if (peek() !== '*') {
        state.output += ONE_CHAR;
        prev.output += ONE_CHAR;
      }
    }
    push(token);
  }

  while (state.brackets > 0) {
    state.output = escapeLast(state.output, '[');
    leave('brackets');
  }
  while (state.parens > 0) {
    state.output = escapeLast(state.output, '(');
    leave('parens');
  }
  while (state.braces > 0) {
    state.output = escapeLast(state.output, '{');
    leave('braces');
  }
  if (prev.type === 'star' || prev.type === 'bracket') {
    push({ type: 'maybe_slash', value: '', output: `${SLASH_LITERAL}?` });
  }
  if (state.backtrack) {
    state.output = '';
    for (const token of tokens) state.output += token.output != null ? token.output : token.value;
  }
  return { output: state.output, negated: state.negated };
}

function escapeLast(text, char) {
  const index = text.lastIndexOf(char);
  if (index === -1) return text;
  if (text[index - 1] === '\\') return escapeLast(text.slice(0, index - 1), char) + text.slice(index - 1);
  return `${text.slice(0, index)}\\${text.slice(index)}`;
}

function expandRange(args) {
  args.sort();
  const value = `[${args.join('-')}]`;
  try {
    new RegExp(value);
  } catch {
    return args.map((v) => v.replace(/[-*+?.^${}(|)[\]\\/]/g, '\\$&')).join('..');
  }
  return value;
}
