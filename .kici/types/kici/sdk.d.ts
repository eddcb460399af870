// Type declarations of the KiCI SDK (`@kici-dev/sdk`, alias `kici:sdk`).
//
// The SDK itself is built into the `kici` binary; this file only tells editors
// and `tsc --noEmit` what it exports, so workflows type-check without
// `npm install`. Written by `kici init` / `kici types`; regenerate instead of
// editing (the version is in ./VERSION).
//
// Factories validate their arguments again at load time: a type that is looser
// here than the runtime check (for example a number range) still fails
// `kici compile` with a precise message.

/// <reference path="./node.d.ts" />

// ===========================================================================
// Shared building blocks
// ===========================================================================

/** A value or a promise of it: callbacks may be sync or async. */
type Awaitable<T> = T | PromiseLike<T>;

/** A duration in milliseconds. */
export type Milliseconds = number;

/** Glob string (`!` prefix excludes) or a regular expression (not anchored unless you anchor it). */
export type Pattern = string | RegExp;

/** One pattern or a list; a single value means a one-element list. */
export type PatternList = Pattern | readonly Pattern[];

/** Lock form of a pattern (`kici.lock.json`). */
export type BranchPattern =
  | { readonly type: 'glob'; readonly pattern: string }
  | { readonly type: 'regex'; readonly pattern: string; readonly flags?: string };

/** `env:NAME` reference to an environment variable of the installing process. */
export type EnvReference = `env:${string}`;

/** Terminal job statuses a `needs` edge can accept. */
export type ExecutionJobStatus =
  | 'success'
  | 'failed'
  | 'cancelled'
  | 'skipped'
  | 'timed_out_stale'
  | 'drift_dropped';

/** Keyword form of a `needs` edge condition. */
export type NeedsWhen = 'on-success' | 'always' | 'on-skip' | 'on-failure';

/** Keyword, or the exact set of upstream statuses that let the downstream job run. */
export type NeedsWhenInput = NeedsWhen | readonly ExecutionJobStatus[];

/** Where a `step()` call was written (1-based line and column in the original `.ts`). */
export interface SourceLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** Read-only view of outputs, resolved lazily when a field is read. */
export type OutputProxy<T> = { readonly [K in keyof T]: T[K] };

// ===========================================================================
// Events
// ===========================================================================

/** Provider payloads are typed loosely: known fields are typed, anything else is `any`. */
export interface LoosePayload {
  [key: string]: any;
}

export interface GitHubUser extends LoosePayload {
  login?: string;
  id?: number;
  type?: string;
}

export interface GitHubRepository extends LoosePayload {
  id?: number;
  name?: string;
  full_name?: string;
  owner?: GitHubUser;
  private?: boolean;
  fork?: boolean;
  default_branch?: string;
  html_url?: string;
  clone_url?: string;
}

export interface GitHubCommit extends LoosePayload {
  id?: string;
  message?: string;
  timestamp?: string;
  author?: { name?: string; email?: string; username?: string };
  added?: string[];
  removed?: string[];
  modified?: string[];
}

export interface GitHubPullRequest extends LoosePayload {
  number?: number;
  title?: string;
  body?: string | null;
  state?: string;
  draft?: boolean;
  merged?: boolean;
  user?: GitHubUser;
  labels?: { name?: string }[];
  head?: { ref?: string; sha?: string; repo?: GitHubRepository | null };
  base?: { ref?: string; sha?: string; repo?: GitHubRepository };
  html_url?: string;
}

export interface GitHubComment extends LoosePayload {
  id?: number;
  body?: string;
  user?: GitHubUser;
  html_url?: string;
}

export interface GitHubReview extends LoosePayload {
  id?: number;
  state?: string;
  body?: string | null;
  user?: GitHubUser;
}

export interface GitHubRelease extends LoosePayload {
  id?: number;
  tag_name?: string;
  name?: string | null;
  body?: string | null;
  draft?: boolean;
  prerelease?: boolean;
}

interface RepositoryBody extends LoosePayload {
  action?: string;
  repository?: GitHubRepository;
  sender?: GitHubUser;
}

/** Fields shared by every normalised event (`triggers.md` §1). */
export interface EventBase {
  /** Sub-action (`opened`, `created`, …); absent when the provider has none. */
  action?: string;
  /** Push: the branch; PR: the base branch; tag: the tag; repository events: the default branch. */
  targetBranch: string;
  /** Pull request head branch. */
  sourceBranch?: string;
  /** The repository's default branch. */
  baseBranch?: string;
  isForkPR?: boolean;
  senderUsername?: string;
  senderUserId?: string;
  /** `owner/name`. */
  sourceRepo?: string;
  /** Commit to build. */
  sha?: string;
  /** Repo-relative paths; absent when unknown. */
  changedFiles?: string[];
  changedFilesTruncated?: boolean;
  /** `github`, `gitea`, `forgejo`, `gogs`, `gitlab`, `generic`, `local`, `schedule`, `manual`. */
  provider?: string;
}

export interface PullRequestEventPayload extends EventBase {
  type: 'pull_request';
  payload: RepositoryBody & { number?: number; pull_request?: GitHubPullRequest };
}
export interface PushEventPayload extends EventBase {
  type: 'push';
  payload: RepositoryBody & {
    ref?: string;
    before?: string;
    after?: string;
    commits?: GitHubCommit[];
    head_commit?: GitHubCommit | null;
    pusher?: { name?: string; email?: string };
  };
}
export interface TagEventPayload extends EventBase {
  type: 'tag';
  payload: RepositoryBody & { ref?: string; before?: string; after?: string };
}
export interface CommentEventPayload extends EventBase {
  type: 'comment';
  payload: RepositoryBody & {
    comment?: GitHubComment;
    issue?: LoosePayload & { number?: number; title?: string; pull_request?: LoosePayload };
  };
}
export interface ReviewEventPayload extends EventBase {
  type: 'review';
  payload: RepositoryBody & { review?: GitHubReview; pull_request?: GitHubPullRequest };
}
export interface ReviewCommentEventPayload extends EventBase {
  type: 'review_comment';
  payload: RepositoryBody & { comment?: GitHubComment; pull_request?: GitHubPullRequest };
}
export interface ReleaseEventPayload extends EventBase {
  type: 'release';
  payload: RepositoryBody & { release?: GitHubRelease };
}
export interface DispatchEventPayload extends EventBase {
  type: 'dispatch';
  payload: RepositoryBody & { client_payload?: LoosePayload & { inputs?: Record<string, unknown> } };
}
export interface CreateEventPayload extends EventBase {
  type: 'create';
  payload: RepositoryBody & { ref?: string; ref_type?: 'branch' | 'tag' };
}
export interface DeleteEventPayload extends EventBase {
  type: 'delete';
  payload: RepositoryBody & { ref?: string; ref_type?: 'branch' | 'tag' };
}
export interface StatusEventPayload extends EventBase {
  type: 'status';
  payload: RepositoryBody & {
    sha?: string;
    context?: string;
    state?: 'error' | 'failure' | 'pending' | 'success';
    description?: string | null;
    target_url?: string | null;
  };
}
export interface WorkflowRunEventPayload extends EventBase {
  type: 'workflow_run';
  payload: RepositoryBody & {
    workflow_run?: LoosePayload & { name?: string; conclusion?: string | null; status?: string; head_branch?: string };
  };
}
export interface ForkEventPayload extends EventBase {
  type: 'fork';
  payload: RepositoryBody & { forkee?: GitHubRepository };
}
export interface StarEventPayload extends EventBase {
  type: 'star';
  payload: RepositoryBody;
}
export interface WatchEventPayload extends EventBase {
  type: 'watch';
  payload: RepositoryBody;
}
/** Event of a `webhook()` trigger; at run time `type` carries the raw provider event name. */
export interface WebhookEventPayload extends EventBase {
  type: 'webhook';
  payload: LoosePayload;
}
export interface KiciEventPayload extends EventBase {
  type: 'kici_event';
  payload: LoosePayload & { eventName?: string; payload?: unknown; sourceRepo?: string };
}
export interface WorkflowCompleteEventPayload extends EventBase {
  type: 'workflow_complete';
  payload: LoosePayload & { workflowName?: string; status?: string; sourceRepo?: string };
}
export interface JobCompleteEventPayload extends EventBase {
  type: 'job_complete';
  payload: LoosePayload & { workflowName?: string; jobName?: string; status?: string; sourceRepo?: string };
}
export interface GenericWebhookEventPayload extends EventBase {
  type: 'generic_webhook';
  payload: LoosePayload & { source?: string; eventType?: string };
}
export interface ScheduleEventPayload extends EventBase {
  type: 'schedule';
  payload: LoosePayload & { cronExpression?: string; timezone?: string };
}
export interface LifecycleEventPayload extends EventBase {
  type: 'lifecycle';
  payload: LoosePayload & { lifecycleEvent?: LifecycleEvent; sourceRepo?: string };
}

/** The normalised event, discriminated on `type`. */
export type EventPayload =
  | PullRequestEventPayload
  | PushEventPayload
  | TagEventPayload
  | CommentEventPayload
  | ReviewEventPayload
  | ReviewCommentEventPayload
  | ReleaseEventPayload
  | DispatchEventPayload
  | CreateEventPayload
  | DeleteEventPayload
  | StatusEventPayload
  | WorkflowRunEventPayload
  | ForkEventPayload
  | StarEventPayload
  | WatchEventPayload
  | WebhookEventPayload
  | KiciEventPayload
  | WorkflowCompleteEventPayload
  | JobCompleteEventPayload
  | GenericWebhookEventPayload
  | ScheduleEventPayload
  | LifecycleEventPayload;

export type EventType = EventPayload['type'];

// ===========================================================================
// Shell (`ctx.$`)
// ===========================================================================

/** `<n>ms`, `<n>s`, `<n>m` or `<n>h`. */
export type DurationString = `${number}ms` | `${number}s` | `${number}m` | `${number}h`;

/** Result of a finished command; also the rejection value of a failed one. */
export interface ProcessOutput extends Error {
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved in arrival order. */
  readonly stdall: string;
  /** `null` when the process was killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** `exitCode === 0`. */
  readonly ok: boolean;
  /** Wall-clock duration in ms. */
  readonly duration: number;
  /** stdout. */
  text(): string;
  /** stdout split into lines (trailing `\r` and a final empty line removed). */
  lines(): string[];
  json<T = any>(): T;
  buffer(): Buffer;
  /** `stdall`. */
  toString(): string;
  /** `stdall`, trimmed. */
  valueOf(): string;
}

/** A running command: await it for its `ProcessOutput`. */
export interface ProcessPromise extends Promise<ProcessOutput> {
  /** Resolve instead of rejecting on a non-zero exit. */
  nothrow(): ProcessPromise;
  /** Capture output without writing it to the step log. */
  quiet(): ProcessPromise;
  /** SIGTERM the process group after the duration, SIGKILL 5 s later. */
  timeout(duration: number | DurationString): ProcessPromise;
  /** Signal the command's process group. */
  kill(signal?: string): Promise<void>;
}

export interface ShellOptions {
  /** Working directory; defaults to the checkout root. */
  cwd?: string;
  /** Replaces the environment (spread `process.env` to extend it). */
  env?: Record<string, string | undefined>;
  /** stdin; `/dev/null` when absent. */
  input?: string | Uint8Array | ProcessOutput;
  timeout?: number | DurationString;
  nothrow?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
}

/**
 * zx-compatible shell. ``await $`cmd ${arg}` `` runs `bash -c 'set -euo pipefail;…'`;
 * interpolated values are quoted (arrays become several words).
 */
export interface Shell {
  (pieces: TemplateStringsArray, ...args: unknown[]): ProcessPromise;
  /** A `$` bound to these options. */
  (options: ShellOptions): Shell;
}

// ===========================================================================
// Contexts
// ===========================================================================

export interface Logger {
  info(message: unknown, ...args: unknown[]): void;
  /** Logged with a `[warn] ` prefix. */
  warn(message: unknown, ...args: unknown[]): void;
  /** Logged with an `[error] ` prefix. */
  error(message: unknown, ...args: unknown[]): void;
  /** Logged only when `KICI_DEBUG` is `true` or `1`. */
  debug(message: unknown, ...args: unknown[]): void;
}

export type ProcessEnv = Record<string, string | undefined>;

/** Resolved dispatch/schedule inputs (`{}` when there are none). */
export type DispatchInputValues = Readonly<Record<string, string | number | boolean | null>>;

/** Matrix values of the current job: `{ value }` for array matrices, else one key per dimension. */
export type MatrixValues = Readonly<Record<string, string>>;

export interface WorkflowInfo {
  readonly name: string;
}

export interface JobInfo {
  /** Expanded name, including the matrix suffix. */
  readonly name: string;
  /** Label matchers joined with `,`. */
  readonly runsOn: string;
}

export interface FanoutPosition {
  readonly index: number;
  readonly total: number;
  readonly first: boolean;
  readonly last: boolean;
}

export interface AgentInfo {
  readonly host: string;
  readonly labels: readonly string[];
  readonly platform?: string;
  readonly arch?: string;
}

export interface RepoInfo {
  readonly identifier: string;
  readonly path: string;
  readonly ref?: string;
  readonly sha?: string;
}

export interface SecretMeta {
  readonly value: string;
  /** `db` (orchestrator) or `local` (local runs). */
  readonly backend: string;
  readonly scope: string;
}

export interface SecretFileOptions {
  /** Secret names, concatenated in this order. */
  sources: readonly string[];
  /** Joins the sources; default `"\n"`. */
  divider?: string;
  /** File mode; default `0o600`. */
  mode?: number;
  name?: string;
}

export interface MountedFile {
  readonly path: string;
}

export interface StepSecrets {
  /** Rejects with `SecretNotFoundError` for an unknown key. */
  get(key: string): Promise<string>;
  has(key: string): boolean;
  /** Sorted secret names. */
  list(): string[];
  getMeta(key: string): SecretMeta | undefined;
  /** Sets `process.env[key]` for the rest of the current step. */
  expose(key: string): void;
  /** Writes the secrets to a per-step temporary file, removed when the step ends. */
  mountFile(options: SecretFileOptions): Promise<MountedFile>;
  /** `mountFile`, then sets `envVar` to the file's path for the step. */
  exposeFile(envVar: string, options: SecretFileOptions): Promise<MountedFile>;
}

export interface CacheRestoreResult {
  readonly hit: boolean;
  readonly matchedKey?: string;
}

/** Not available in this KiCI version: `restore` resolves `{ hit: false }`. */
export interface CacheApi {
  restore(spec: CacheSpec): Promise<CacheRestoreResult>;
  save(spec: CacheSpec): Promise<void>;
}

/** Orchestrator API; in this KiCI version lists resolve `[]` and the rest reject. */
export interface KiciApi {
  readonly infrastructure: { list(selector?: Record<string, unknown>): Promise<unknown[]> };
  readonly inventory: {
    query(selector?: Record<string, unknown>): Promise<unknown[]>;
    get(host: string): Promise<unknown>;
  };
  readonly oidc: { token(options?: { audience?: string }): Promise<string> };
  readonly host: { requestReboot(options?: { deadlineMs?: number }): Promise<void> };
  readonly bootstrap: Record<string, (...args: any[]) => Promise<unknown>>;
}

export interface EventEmitOptions {
  target?: string;
}

/** Outputs of a matrix job, seen downstream. */
export interface MatrixJobOutputs<T = Record<string, unknown>> {
  /** Keyed by matrix suffix, e.g. `20, linux`. */
  readonly byMatrix: Readonly<Record<string, T>>;
  /** All children's outputs merged in ascending suffix order. */
  readonly merged: T;
}

/** Outputs of a host fan-out job, seen downstream. */
export interface HostJobOutputs<T = Record<string, unknown>> {
  readonly byHost: Readonly<Record<string, T>>;
  readonly summary: {
    readonly succeededHosts: readonly string[];
    readonly failedHosts: readonly string[];
    readonly outputs: Readonly<Record<string, T>>;
  };
}

/** `ctx.needs` entry of a job need. */
export interface NeedEntry<T = any> {
  readonly result: T;
  readonly status: ExecutionJobStatus;
}

/** One member of a dynamic group need. */
export interface GroupNeedEntry<T = any> extends NeedEntry<T> {
  readonly name: string;
}

/**
 * `ctx.needs`: job needs by name, group needs as arrays (frozen at run time;
 * typed as a plain array so that `Array.isArray` narrows the union).
 */
export type NeedsContext = Readonly<Record<string, NeedEntry | GroupNeedEntry[]>>;

/** The argument of step bodies, bare step functions and hooks. */
export interface StepContext {
  /** Shell; cwd = the checkout root. */
  $: Shell;
  log: Logger;
  /** The live process environment (the same object as `process.env`). */
  env: ProcessEnv;
  /** Sets a variable for later commands and steps. */
  setEnv(key: string, value: string): void;
  /** Prepends a directory to `PATH` for later commands and steps. */
  addPath(dir: string): void;
  /** Aborted on cancel, job or step timeout, or parallel fail-fast. */
  signal: AbortSignal;
  /** Legacy, always empty. */
  inputs: Readonly<Record<string, never>>;
  dispatchInputs: DispatchInputValues;
  workflow: WorkflowInfo;
  job: JobInfo;
  /** Undefined for jobs without a matrix. */
  matrix: MatrixValues | undefined;
  /** The provider's raw webhook body. */
  rawPayload: unknown;
  provider: string;
  /** True for `kici run remote` runs. */
  isTestRun: boolean;
  /** First resolved environment name. */
  environment: string | undefined;
  secrets: StepSecrets;
  /** Outputs of an earlier step of this job (a step object or a bare step function). */
  outputsOf<T>(step: Step<T, string>): T;
  outputsOf<T>(step: BareStepFn<T>): T;
  /** Outputs of an upstream job (flat for a single-step job, by step name otherwise). */
  jobOutputs(job: Job<any, string> | string): Record<string, any>;
  /** Present when the job has `needs`. */
  needs?: NeedsContext;
  /** Custom events are not available in this KiCI version. */
  emit(name: string, payload?: unknown, options?: EventEmitOptions): Promise<{ deliveryId: string }>;
  /** Not available in this KiCI version (logs a warning). */
  setSecretOutput(key: string, value: string): void;
  cache: CacheApi;
  kici: KiciApi;
  /** Not available in this KiCI version. */
  attestProvenance(options: { subject: string | readonly string[] }): Promise<unknown>;
  host?: AgentInfo;
  agent?: AgentInfo;
  fanout: FanoutPosition;
  workflowRepo?: RepoInfo;
  sourceRepo?: RepoInfo;
}

export interface OutcomeMetadata {
  readonly status: 'cancelled' | 'success' | 'failed';
  readonly reason?: string;
  readonly failedStep?: string;
  readonly stepOutputs: Readonly<Record<string, unknown>>;
  readonly duration: number;
}

export interface HookContext extends StepContext {
  outcome: OutcomeMetadata;
}

export interface RuleContext {
  event: EventPayload;
  /** `[]` when unknown; see `changedFilesKnown`. */
  changedFiles: string[];
  changedFilesKnown: boolean;
  env: ProcessEnv;
  dispatchInputs: DispatchInputValues;
  fanout?: FanoutPosition;
  /** Shell; cwd = the checkout root. */
  $: Shell;
}

// ===========================================================================
// Rules
// ===========================================================================

/** Passes when it returns exactly `true` (`rule`) or anything but `true` (`skip`). */
export type RuleCheckFn = (ctx: RuleContext) => Awaitable<boolean>;

export interface Rule {
  readonly _tag: 'Rule';
  readonly kind: 'rule' | 'skip';
  readonly label: string;
  readonly check?: RuleCheckFn;
}

export interface RuleResult {
  readonly label: string;
  readonly passed: boolean;
  readonly durationMs: number;
  readonly error?: string;
}

export interface RuleEvaluationResult {
  readonly passed: boolean;
  readonly results: readonly RuleResult[];
}

/** A rule that passes iff `check` resolves to `true`; without `check`, a marker that always passes. */
export declare function rule(label: string, check?: RuleCheckFn): Rule;
/** A rule that passes iff `check` does not resolve to `true`. */
export declare function skip(label: string, check: RuleCheckFn): Rule;
/** Narrows `event` on its `type`. */
export declare function isEventType<T extends EventType>(
  event: EventPayload,
  type: T,
): event is Extract<EventPayload, { type: T }>;
/** Evaluates sequentially, stopping at the first failing rule. */
export declare function evaluateRules(
  rules: readonly Rule[],
  ctx: RuleContext,
  label: string,
  onResult?: (result: RuleResult) => void,
): Promise<RuleEvaluationResult>;
export declare function onlyOnFirstHost(): Rule;
export declare function onlyOnLastHost(): Rule;
export declare function onlyOnFanoutIndex(index: number): Rule;

// ===========================================================================
// Hooks
// ===========================================================================

export type HookType = 'onCancel' | 'cleanup' | 'onSuccess' | 'onFailure' | 'beforeStep' | 'afterStep';

export type HookFn = (ctx: HookContext) => unknown;

export interface HookSpec {
  run: HookFn;
  /** Default 300000 (5 min). */
  timeout?: Milliseconds;
  name?: string;
}

/** Result of a hook factory. */
export interface HookConfig {
  readonly name: string;
  readonly type: HookType;
  readonly run: HookFn;
  readonly timeout: Milliseconds;
}

export type HookInput = HookFn | HookSpec | HookConfig;

export declare function onCancel(input: HookFn | HookSpec): HookConfig;
export declare function cleanup(input: HookFn | HookSpec): HookConfig;
export declare function onSuccess(input: HookFn | HookSpec): HookConfig;
export declare function onFailure(input: HookFn | HookSpec): HookConfig;
export declare function beforeStep(input: HookFn | HookSpec): HookConfig;
export declare function afterStep(input: HookFn | HookSpec): HookConfig;

// ===========================================================================
// Approvals and caches
// ===========================================================================

export type ApproverClause = { readonly team: string } | { readonly user: string };

export type ApprovalWhen = 'always' | 'drift';

/**
 * Manual approval. Not supported unattended in this KiCI version: remote runs
 * fail the job, local runs need `--approve-all`.
 */
export type ApprovalConfig =
  | true
  | readonly ApproverClause[]
  | {
      when?: ApprovalWhen;
      approvers?: readonly ApproverClause[];
      reason?: string;
      /** Seconds. */
      timeout?: number;
    };

export interface NormalizedApproval {
  readonly clauses: readonly ApproverClause[];
  readonly reason?: string;
  readonly timeoutSeconds?: number;
  readonly when: ApprovalWhen;
}

/** Not available in this KiCI version (a notice is logged). */
export interface CacheSpec {
  key: string;
  paths: readonly string[];
  restoreKeys?: readonly string[];
}

export type CacheInput = CacheSpec | readonly CacheSpec[];

// ===========================================================================
// z — schema subset
// ===========================================================================

export interface ZodIssue {
  readonly path: (string | number)[];
  readonly message: string;
}

/** Thrown by `parse`; `name === 'ZodError'`. */
export interface ZodError extends Error {
  readonly issues: ZodIssue[];
}

export type SafeParseResult<T> =
  | { readonly success: true; readonly data: T }
  | { readonly success: false; readonly error: ZodError };

export interface ZodType<Output = unknown, Input = Output> {
  /** Type-level only. */
  readonly _output: Output;
  /** Type-level only. */
  readonly _input: Input;
  readonly description?: string;
  parse(value: unknown): Output;
  safeParse(value: unknown): SafeParseResult<Output>;
  optional(): ZodOptional<this>;
  nullable(): ZodNullable<this>;
  default(value: Exclude<Output, undefined>): ZodDefault<this>;
  describe(description: string): this;
}

export type ZodTypeAny = ZodType<any, any>;

export interface ZodString extends ZodType<string> {
  /** Minimum length. */
  min(length: number): ZodString;
  /** Maximum length. */
  max(length: number): ZodString;
  regex(pattern: RegExp): ZodString;
}

export interface ZodNumber extends ZodType<number> {
  int(): ZodNumber;
  min(value: number): ZodNumber;
  max(value: number): ZodNumber;
}

export interface ZodBoolean extends ZodType<boolean> {}
export interface ZodAny extends ZodType<any> {}
export interface ZodUnknown extends ZodType<unknown> {}

export interface ZodEnum<T extends readonly [string, ...string[]]> extends ZodType<T[number]> {
  readonly options: T;
  readonly enum: { readonly [K in T[number]]: K };
}

export type ZodLiteralValue = string | number | boolean | null;

export interface ZodLiteral<T extends ZodLiteralValue> extends ZodType<T> {
  readonly value: T;
}

export interface ZodOptional<T extends ZodTypeAny> extends ZodType<T['_output'] | undefined, T['_input'] | undefined> {
  /** Type-level only. */
  readonly _inner: T;
}

export interface ZodNullable<T extends ZodTypeAny> extends ZodType<T['_output'] | null, T['_input'] | null> {
  /** Type-level only. */
  readonly _inner: T;
}

export interface ZodDefault<T extends ZodTypeAny>
  extends ZodType<Exclude<T['_output'], undefined>, T['_input'] | undefined> {
  /** Type-level only. */
  readonly _inner: T;
}

export type ZodRawShape = { readonly [key: string]: ZodTypeAny };

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** Object type of a shape: keys whose schema accepts `undefined` become optional. */
export type ShapeOutput<S extends ZodRawShape> = Simplify<
  { [K in keyof S as undefined extends S[K]['_output'] ? never : K]: S[K]['_output'] } & {
    [K in keyof S as undefined extends S[K]['_output'] ? K : never]?: S[K]['_output'];
  }
>;

export type ShapeInput<S extends ZodRawShape> = Simplify<
  { [K in keyof S as undefined extends S[K]['_input'] ? never : K]: S[K]['_input'] } & {
    [K in keyof S as undefined extends S[K]['_input'] ? K : never]?: S[K]['_input'];
  }
>;

export interface ZodObject<S extends ZodRawShape> extends ZodType<ShapeOutput<S>, ShapeInput<S>> {
  readonly shape: S;
}

export interface ZodArray<T extends ZodTypeAny> extends ZodType<T['_output'][], T['_input'][]> {
  readonly element: T;
  min(length: number): ZodArray<T>;
  max(length: number): ZodArray<T>;
}

export interface ZodRecord<V extends ZodTypeAny>
  extends ZodType<Record<string, V['_output']>, Record<string, V['_input']>> {}

export interface ZodUnion<T extends readonly [ZodTypeAny, ...ZodTypeAny[]]>
  extends ZodType<T[number]['_output'], T[number]['_input']> {
  readonly options: T;
}

/**
 * A small, zod-compatible schema subset (not zod itself). Any other member of
 * `z` throws `TypeError: z.<name> is not supported by the KiCI schema subset`.
 */
export declare const z: {
  string(): ZodString;
  number(): ZodNumber;
  boolean(): ZodBoolean;
  any(): ZodAny;
  unknown(): ZodUnknown;
  enum<const T extends readonly [string, ...string[]]>(values: T): ZodEnum<T>;
  literal<const T extends ZodLiteralValue>(value: T): ZodLiteral<T>;
  object<S extends ZodRawShape>(shape: S): ZodObject<S>;
  array<T extends ZodTypeAny>(element: T): ZodArray<T>;
  record<V extends ZodTypeAny>(key: ZodString, value: V): ZodRecord<V>;
  union<const T extends readonly [ZodTypeAny, ...ZodTypeAny[]]>(options: T): ZodUnion<T>;
};

export declare namespace z {
  type infer<T extends ZodTypeAny> = T['_output'];
  type input<T extends ZodTypeAny> = T['_input'];
  type output<T extends ZodTypeAny> = T['_output'];
}

// ===========================================================================
// Dispatch inputs
// ===========================================================================

type DispatchInputBase = ZodString | ZodNumber | ZodBoolean | ZodEnum<any> | ZodLiteral<any>;

/**
 * The schemas allowed for dispatch and schedule inputs: `z.string()`,
 * `z.number()`, `z.boolean()`, `z.enum()`, `z.literal()` with `.optional()`,
 * `.nullable()`, `.default()`, `.min()`, `.max()`, `.regex()`, `.int()`, `.describe()`.
 */
export type DispatchInputSchema =
  | DispatchInputBase
  | ZodOptional<DispatchInputSchema>
  | ZodNullable<DispatchInputSchema>
  | ZodDefault<DispatchInputSchema>;

export type DispatchInputsMap = { readonly [name: string]: DispatchInputSchema };

export type InferDispatchInputs<M extends DispatchInputsMap> = Readonly<ShapeOutput<M>>;

export interface DefinedDispatchInputs<M extends DispatchInputsMap> {
  readonly __kiciDispatchInputs: true;
  readonly map: M;
  /** `ctx.dispatchInputs`, typed. */
  from(ctx: { readonly dispatchInputs: DispatchInputValues }): InferDispatchInputs<M>;
  /** The same, for rule checks. */
  fromRule(ctx: { readonly dispatchInputs: DispatchInputValues }): InferDispatchInputs<M>;
}

export declare function defineDispatchInputs<const M extends DispatchInputsMap>(map: M): DefinedDispatchInputs<M>;

// ===========================================================================
// Triggers
// ===========================================================================

export type PrEvent =
  | 'opened'
  | 'synchronize'
  | 'reopened'
  | 'closed'
  | 'assigned'
  | 'unassigned'
  | 'labeled'
  | 'unlabeled'
  | 'edited'
  | 'converted_to_draft'
  | 'ready_for_review'
  | 'locked'
  | 'unlocked'
  | 'review_requested'
  | 'review_request_removed'
  | 'auto_merge_enabled'
  | 'auto_merge_disabled';
export type CommentAction = 'created' | 'edited' | 'deleted';
export type CommentSource = 'issue' | 'pr';
export type ReviewAction = 'submitted' | 'edited' | 'dismissed';
export type ReviewState = 'approved' | 'changes_requested' | 'commented' | 'dismissed';
export type ReviewCommentAction = 'created' | 'edited' | 'deleted';
export type ReleaseAction = 'published' | 'unpublished' | 'created' | 'edited' | 'deleted' | 'prereleased' | 'released';
export type RefType = 'branch' | 'tag';
export type StatusState = 'error' | 'failure' | 'pending' | 'success';
export type WorkflowRunAction = 'requested' | 'completed' | 'in_progress';
export type StarAction = 'created' | 'deleted';
export type WatchAction = 'started';
export type WorkflowCompleteStatus = 'success' | 'failed' | 'cancelled';
export type JobCompleteStatus = 'success' | 'failed' | 'cancelled' | 'skipped';
export type LifecycleEvent = 'workflow_complete' | 'job_complete' | 'job_failed' | 'registration_updated';

/**
 * JSONPath filter: `$`, `.name`, `['name']`, `[n]`, `[*]`, `.*` paths mapped to
 * a primitive (strict equality), an array (any element) or `"/<re>/<flags>"`.
 */
export type JsonPathFilter = Readonly<Record<string, string | number | boolean | null | readonly (string | number | boolean | null)[]>>;

interface TriggerInputBase {
  /** Accepted for documentation; not written to the lock for most trigger kinds. */
  readonly description?: string;
}

interface RepoFilterInput extends TriggerInputBase {
  /** `owner/name` patterns of the repository that sent the event. */
  readonly repos?: PatternList;
}

export interface PushConfigInput extends RepoFilterInput {
  readonly branches?: PatternList;
  /** Tag pushes; compiled as a separate `tag` trigger. */
  readonly tags?: PatternList;
  /** Changed-file globs; `!` excludes. */
  readonly paths?: readonly string[];
}
export interface PrConfigInput extends RepoFilterInput {
  /** Default: `opened`, `synchronize`, `reopened`, `closed`. */
  readonly events?: readonly PrEvent[];
  /** Base branch patterns. */
  readonly target?: PatternList;
  /** Head branch patterns. */
  readonly source?: PatternList;
  readonly paths?: readonly string[];
}
export interface TagConfigInput extends RepoFilterInput {
  readonly patterns?: PatternList;
}
export interface ScheduleConfigInput extends TriggerInputBase {
  /** 5 fields: minute hour day-of-month month day-of-week. */
  readonly cron: string;
  /** IANA zone; default `UTC`. */
  readonly timezone?: string;
  /** Every input needs `.default()` or `.optional()`. */
  readonly inputs?: DispatchInputsMap | DefinedDispatchInputs<DispatchInputsMap>;
}
export interface DispatchConfigInput extends RepoFilterInput {
  /** Matched against the dispatch action. */
  readonly types?: readonly string[];
  readonly inputs?: DispatchInputsMap | DefinedDispatchInputs<DispatchInputsMap>;
}
export interface ReleaseConfigInput extends RepoFilterInput {
  readonly actions?: readonly ReleaseAction[];
}
export interface CommentConfigInput extends RepoFilterInput {
  readonly actions?: readonly CommentAction[];
  readonly source?: CommentSource;
  /** Glob or regex tested against the comment body. */
  readonly bodyMatch?: Pattern;
}
export interface ReviewConfigInput extends RepoFilterInput {
  readonly actions?: readonly ReviewAction[];
  readonly states?: readonly ReviewState[];
}
export interface ReviewCommentConfigInput extends RepoFilterInput {
  readonly actions?: readonly ReviewCommentAction[];
}
export interface CreateConfigInput extends RepoFilterInput {
  readonly refTypes?: readonly RefType[];
  readonly patterns?: PatternList;
}
export type DeleteConfigInput = CreateConfigInput;
export interface StatusConfigInput extends RepoFilterInput {
  /** Globs over the status context. */
  readonly contexts?: readonly string[];
  readonly states?: readonly StatusState[];
}
export interface WorkflowRunConfigInput extends RepoFilterInput {
  readonly actions?: readonly WorkflowRunAction[];
  /** Exact workflow names. */
  readonly workflows?: readonly string[];
  readonly conclusions?: readonly string[];
}
export interface ForkConfigInput extends RepoFilterInput {}
export interface StarConfigInput extends RepoFilterInput {
  readonly actions?: readonly StarAction[];
}
export interface WatchConfigInput extends RepoFilterInput {
  readonly actions?: readonly WatchAction[];
}
export interface WebhookConfigInput extends RepoFilterInput {
  /** Raw provider event names; non-empty. */
  readonly events: readonly string[];
  readonly actions?: readonly string[];
}
export type GenericWebhookAuth =
  | {
      readonly method: 'hmac-sha256';
      /** Name of the secret holding the signing key. */
      readonly secret: string;
      readonly signatureHeader: string;
    }
  | {
      readonly method: 'api-key';
      /** Name of the secret holding the key. */
      readonly secret: string;
      /** Default `authorization`. */
      readonly header?: string;
    };
export interface GenericWebhookConfigInput extends TriggerInputBase {
  /** Name of the generic source. */
  readonly source: string;
  readonly events?: readonly string[];
  readonly match?: JsonPathFilter;
  readonly not?: JsonPathFilter;
  /** Informational: verification is configured on the source. */
  readonly auth?: GenericWebhookAuth;
  readonly path?: string;
}
export interface KiciEventConfigInput extends TriggerInputBase {
  readonly name: string;
  readonly match?: JsonPathFilter;
  readonly not?: JsonPathFilter;
  readonly source?: string;
}
export interface WorkflowCompleteConfigInput extends TriggerInputBase {
  readonly name?: string;
  readonly status?: readonly WorkflowCompleteStatus[];
  readonly source?: string;
}
export interface JobCompleteConfigInput extends TriggerInputBase {
  readonly workflow?: string;
  readonly job?: string;
  readonly status?: readonly JobCompleteStatus[];
  readonly source?: string;
}
export interface LifecycleConfigInput extends TriggerInputBase {
  /** Non-empty. */
  readonly events: readonly LifecycleEvent[];
  /** Exact `owner/name` values; empty = any. */
  readonly sources?: readonly string[];
}

// Trigger objects are frozen copies of their options, tagged with the trigger kind.
export interface PushTriggerConfig extends PushConfigInput {
  readonly _tag: 'PushTrigger';
}
export interface PrTriggerConfig extends PrConfigInput {
  readonly _tag: 'PrTrigger';
}
export interface TagTriggerConfig extends TagConfigInput {
  readonly _tag: 'TagTrigger';
}
export interface ScheduleTriggerConfig extends ScheduleConfigInput {
  readonly _tag: 'ScheduleTrigger';
}
export interface DispatchTriggerConfig extends DispatchConfigInput {
  readonly _tag: 'DispatchTrigger';
}
export interface ReleaseTriggerConfig extends ReleaseConfigInput {
  readonly _tag: 'ReleaseTrigger';
}
export interface CommentTriggerConfig extends CommentConfigInput {
  readonly _tag: 'CommentTrigger';
}
export interface ReviewTriggerConfig extends ReviewConfigInput {
  readonly _tag: 'ReviewTrigger';
}
export interface ReviewCommentTriggerConfig extends ReviewCommentConfigInput {
  readonly _tag: 'ReviewCommentTrigger';
}
export interface CreateTriggerConfig extends CreateConfigInput {
  readonly _tag: 'CreateTrigger';
}
export interface DeleteTriggerConfig extends CreateConfigInput {
  readonly _tag: 'DeleteTrigger';
}
export interface StatusTriggerConfig extends StatusConfigInput {
  readonly _tag: 'StatusTrigger';
}
export interface WorkflowRunTriggerConfig extends WorkflowRunConfigInput {
  readonly _tag: 'WorkflowRunTrigger';
}
export interface ForkTriggerConfig extends ForkConfigInput {
  readonly _tag: 'ForkTrigger';
}
export interface StarTriggerConfig extends StarConfigInput {
  readonly _tag: 'StarTrigger';
}
export interface WatchTriggerConfig extends WatchConfigInput {
  readonly _tag: 'WatchTrigger';
}
export interface WebhookTriggerConfig extends WebhookConfigInput {
  readonly _tag: 'WebhookTrigger';
}
export interface GenericWebhookTriggerConfig extends GenericWebhookConfigInput {
  readonly _tag: 'GenericWebhookTrigger';
}
export interface KiciEventTriggerConfig extends KiciEventConfigInput {
  readonly _tag: 'KiciEventTrigger';
}
export interface WorkflowCompleteTriggerConfig extends WorkflowCompleteConfigInput {
  readonly _tag: 'WorkflowCompleteTrigger';
}
export interface JobCompleteTriggerConfig extends JobCompleteConfigInput {
  readonly _tag: 'JobCompleteTrigger';
}
export interface LifecycleTriggerConfig extends LifecycleConfigInput {
  readonly _tag: 'LifecycleTrigger';
}

/** Any trigger, as returned by the trigger factories. */
export type TriggerConfig =
  | PushTriggerConfig
  | PrTriggerConfig
  | TagTriggerConfig
  | ScheduleTriggerConfig
  | DispatchTriggerConfig
  | ReleaseTriggerConfig
  | CommentTriggerConfig
  | ReviewTriggerConfig
  | ReviewCommentTriggerConfig
  | CreateTriggerConfig
  | DeleteTriggerConfig
  | StatusTriggerConfig
  | WorkflowRunTriggerConfig
  | ForkTriggerConfig
  | StarTriggerConfig
  | WatchTriggerConfig
  | WebhookTriggerConfig
  | GenericWebhookTriggerConfig
  | KiciEventTriggerConfig
  | WorkflowCompleteTriggerConfig
  | JobCompleteTriggerConfig
  | LifecycleTriggerConfig;

export type Trigger = TriggerConfig;

/** Branch and tag pushes; `push()` matches every branch push. */
export declare function push(options?: PushConfigInput): PushTriggerConfig;
/** Pull request events. */
export declare function pr(options?: PrConfigInput): PrTriggerConfig;
/** Tag pushes. */
export declare function tag(options?: TagConfigInput): TagTriggerConfig;
/** Cron schedule; fires only for workflows on the default branch. */
export declare function schedule(options: ScheduleConfigInput): ScheduleTriggerConfig;
/** Repository dispatch / manual runs. */
export declare function dispatch(options?: DispatchConfigInput): DispatchTriggerConfig;
export declare function release(options?: ReleaseConfigInput): ReleaseTriggerConfig;
/** Issue and pull request comments. */
export declare function comment(options?: CommentConfigInput): CommentTriggerConfig;
export declare function review(options?: ReviewConfigInput): ReviewTriggerConfig;
export declare function reviewComment(options?: ReviewCommentConfigInput): ReviewCommentTriggerConfig;
/** Branch or tag creation. */
export declare function create(options?: CreateConfigInput): CreateTriggerConfig;
/** Branch or tag deletion (import as `delete`, e.g. `import { delete as del }`). */
declare function deleteTrigger(options?: DeleteConfigInput): DeleteTriggerConfig;
export { deleteTrigger as delete };
export declare function status(options?: StatusConfigInput): StatusTriggerConfig;
export declare function workflowRun(options?: WorkflowRunConfigInput): WorkflowRunTriggerConfig;
export declare function fork(options?: ForkConfigInput): ForkTriggerConfig;
export declare function star(options?: StarConfigInput): StarTriggerConfig;
export declare function watch(options?: WatchConfigInput): WatchTriggerConfig;
/** Raw provider events by name. */
export declare function webhook(options: WebhookConfigInput): WebhookTriggerConfig;
/** Deliveries of a generic webhook source; fires only for workflows on the default branch. */
export declare function genericWebhook(options: GenericWebhookConfigInput): GenericWebhookTriggerConfig;
/** Custom KiCI events: compiled, but never fired by this KiCI version's orchestrator. */
export declare function kiciEvent(options: KiciEventConfigInput): KiciEventTriggerConfig;
/** Workflow completions: compiled, but never fired by this KiCI version's orchestrator. */
export declare function workflowComplete(options?: WorkflowCompleteConfigInput): WorkflowCompleteTriggerConfig;
/** Job completions: compiled, but never fired by this KiCI version's orchestrator. */
export declare function jobComplete(options?: JobCompleteConfigInput): JobCompleteTriggerConfig;
/** Fleet lifecycle events: compiled, but never fired by this KiCI version's orchestrator. */
export declare function lifecycle(options: LifecycleConfigInput): LifecycleTriggerConfig;

// ===========================================================================
// Steps
// ===========================================================================

export interface RetryConfig {
  /** Total attempts, including the first. */
  maxAttempts: number;
  /** Default 1000. */
  delayMs?: Milliseconds;
  /** Default `exponential`: `min(delayMs * 2^(n-1), maxDelayMs)`. */
  backoff?: 'exponential' | 'fixed';
  /** Default 30000. */
  maxDelayMs?: Milliseconds;
  /** Returning `false` stops retrying. */
  retryIf?: (err: unknown) => boolean;
}

/** Retry policy with the defaults filled in, as written to the lock. */
export interface NormalizedRetry {
  readonly maxAttempts: number;
  readonly delayMs: number;
  readonly backoff: 'exponential' | 'fixed';
  readonly maxDelayMs: number;
}

/** Output schemas; declared keys are validated when the step resolves. */
export type OutputSchema = Readonly<Record<string, ZodTypeAny>>;

export type InferOutputs<T extends OutputSchema> = ShapeOutput<T>;

/** A step body: its resolved value (unless `null`/`undefined`) becomes the step's outputs. */
export type StepRunFn<T = unknown> = (ctx: StepContext) => Awaitable<T>;

/** A bare function in a job's `steps`: an unnamed step with default options. */
export type BareStepFn<T = unknown> = (ctx: StepContext) => Awaitable<T>;

export interface StepOptionsBase {
  description?: string;
  outputs?: OutputSchema;
  /** Per attempt; default 30 minutes. */
  timeout?: Milliseconds;
  /** `N` means `{ maxAttempts: N }`. */
  retry?: number | RetryConfig;
  /** Record the failure and continue the job. */
  continueOnError?: boolean;
  cache?: CacheInput;
  /** The step is skipped when one fails. */
  rules?: readonly Rule[];
  onCancel?: HookInput;
  cleanup?: HookInput;
  approval?: ApprovalConfig;
}

export interface StepOptionsPlain<T = unknown> extends StepOptionsBase {
  run: StepRunFn<T>;
  check?: undefined;
  summarize?: undefined;
  drift?: undefined;
  whenInSync?: undefined;
}

/** Idempotent step: `check` reports drift (or `null` when in sync), `run` applies it. */
export interface StepOptionsWithCheck<T = unknown, D = unknown> extends StepOptionsBase {
  check: (ctx: StepContext) => Awaitable<D | null | undefined>;
  /** Required with `check`: a human-readable summary of the drift. */
  summarize: (drift: D) => string;
  /** Schema of the drift value. */
  drift?: ZodTypeAny;
  run: (ctx: StepContext, drift: D) => Awaitable<T>;
  /** Produces the outputs when `check` reports no drift. */
  whenInSync?: (ctx: StepContext) => Awaitable<T>;
}

export type StepOptions<T = unknown, D = unknown> = StepOptionsPlain<T> | StepOptionsWithCheck<T, D>;

export interface Step<TResult = void, TName extends string = string> {
  readonly _tag: 'Step';
  /** `''` until the job names an unnamed step. */
  readonly name: TName;
  readonly run: (ctx: StepContext, drift?: any) => Awaitable<TResult>;
  /** Where `step()` was called; absent for steps built from bare functions. */
  readonly sourceLocation?: SourceLocation;
  readonly outputs?: OutputSchema;
  readonly timeout?: number;
  readonly retry?: number | RetryConfig;
  readonly continueOnError?: boolean;
  readonly cache?: CacheInput;
  readonly rules?: readonly Rule[];
  readonly onCancel?: HookInput;
  readonly cleanup?: HookInput;
  readonly approval?: ApprovalConfig;
  /**
   * This step's outputs for later steps of the same job, resolved when read;
   * reading before the step produced them throws.
   */
  readonly result: [TResult] extends [void] ? never : OutputProxy<Awaited<TResult>>;
}

export interface ParallelOptions {
  /** Default true: the first failure cancels running siblings and skips unstarted ones. */
  failFast?: boolean;
  /** Integer ≥ 1. */
  maxParallel?: number;
  /** Default `parallel-<k>`. */
  name?: string;
}

export interface ParallelGroup {
  readonly _tag: 'ParallelGroup';
  readonly name?: string;
  readonly steps: readonly (Step<any> | BareStepFn<any>)[];
  readonly failFast?: boolean;
  readonly maxParallel?: number;
}

/** An element of a job's `steps`. */
export type StepInput = Step<any> | BareStepFn<any> | ParallelGroup;

export declare function step<T = void>(name: string, run: StepRunFn<T>): Step<Awaited<T>>;
export declare function step<T = void, D = unknown>(name: string, options: StepOptions<T, D>): Step<Awaited<T>>;
export declare function step<T = void>(run: StepRunFn<T>): Step<Awaited<T>>;
export declare function step<T = void, D = unknown>(options: StepOptions<T, D> & { name?: string }): Step<Awaited<T>>;

/** Runs the steps concurrently behind a join barrier; groups cannot be nested. */
export declare function parallel(
  steps: readonly (Step<any> | BareStepFn<any>)[],
  options?: ParallelOptions,
): ParallelGroup;

// ===========================================================================
// Jobs
// ===========================================================================

/** Exact label, glob (contains `*?[]{}`) or regex. */
export type LabelMatcher = string | RegExp;

export type RunsOnPick = 'deterministic' | 'any';

export interface RunsOnSelector {
  labels: LabelMatcher | readonly LabelMatcher[];
  /** No agent label may match these. */
  exclude?: LabelMatcher | readonly LabelMatcher[];
  /** Default `deterministic`. */
  pick?: RunsOnPick;
}

/** A matcher, all of a list, or a selector. */
export type RunsOn = LabelMatcher | readonly LabelMatcher[] | RunsOnSelector;

/** Host fan-out targeting: not supported by this KiCI version's orchestrator. */
export type RunsOnAllInput = RunsOn | readonly (readonly LabelMatcher[])[];

export type OnUnreachableMode = 'skip' | 'fail' | 'hold';

export interface ContainerConfig {
  image: string;
  env?: Readonly<Record<string, string>>;
}

export interface GenericInitConfig {
  /** Non-empty command, run after the clone and before the steps. */
  run: string;
  /** Default `bash`. */
  shell?: string;
  cache?: CacheInput;
  /** Default 600000. */
  timeout?: Milliseconds;
  env?: Readonly<Record<string, string>>;
}

export interface MiseInitConfig {
  cache?: CacheSpec | false;
  timeout?: Milliseconds;
  env?: Readonly<Record<string, string>>;
  shell?: string;
}

/** `mise` presets are not supported by this KiCI version (the job fails). */
export type InitPreset = 'mise' | { mise: MiseInitConfig };

export type InitItem = GenericInitConfig | InitPreset;

/** `auto` is not supported by this KiCI version (the job fails). */
export type InitConfig = InitItem | readonly InitItem[] | 'auto' | false;

/** `<n>k`, `<n>m` or `<n>g` (binary units). */
export type MemoryQuantity = `${number}${'k' | 'm' | 'g'}`;

export interface ResourceSpec {
  /** > 0 and ≤ 256. */
  cpus?: number;
  memory?: MemoryQuantity;
}

export type ResourceRequest = ResourceSpec | { requests?: ResourceSpec; limits?: ResourceSpec };

export type MatrixCombo = Readonly<Record<string, string>>;
export type StaticMatrixArray = readonly string[];
export type StaticMatrixObject = { readonly [dimension: string]: readonly string[] };

export interface DynamicMatrixContext {
  $: Shell;
  ctx: { workflow: WorkflowInfo; job: JobInfo };
  log: Logger;
  env: ProcessEnv;
}

/** Evaluated once per run (cwd = checkout root); not supported by this KiCI version's orchestrator. */
export type DynamicMatrixFn = (context: DynamicMatrixContext) => Awaitable<StaticMatrixArray | StaticMatrixObject>;

export type Matrix = StaticMatrixArray | StaticMatrixObject | DynamicMatrixFn;
export type MatrixInclude = MatrixCombo;
export type MatrixExclude = MatrixCombo;

/** Environment name, or a function of the event (pure functions are evaluated by the orchestrator). */
export type EnvironmentInput = string | ((event: EventPayload) => Awaitable<string>);

/** A `needs` entry. */
export type NeedInput =
  | Job<any, string>
  | string
  | DynamicGroupRef
  | { name: string; when?: NeedsWhenInput }
  | { group: string; when?: NeedsWhenInput };

export interface JobOptionsBase {
  /** Upstream jobs and groups; see `when` for edge conditions. */
  needs?: readonly NeedInput[];
  /** The job is skipped when one fails. */
  rules?: readonly Rule[];
  matrix?: Matrix;
  include?: readonly MatrixInclude[];
  exclude?: readonly MatrixExclude[];
  /** Integer ≥ 1: bounded matrix fan-out. */
  maxParallel?: number;
  /** Default false. */
  failFast?: boolean;
  env?: Readonly<Record<string, string>> | ((event: EventPayload) => Awaitable<Readonly<Record<string, string>>>);
  /** Ignored by this KiCI version (warning W008). */
  concurrencyGroup?: string | ((event: EventPayload) => string);
  /** Covers rules, init, steps and before/after-step hooks. */
  timeout?: Milliseconds;
  /** Default true; false gives an empty workspace. */
  checkout?: boolean;
  container?: string | ContainerConfig;
  onCancel?: HookInput;
  cleanup?: HookInput;
  onSuccess?: HookInput;
  onFailure?: HookInput;
  beforeStep?: HookInput;
  afterStep?: HookInput;
  /** Seconds between SIGTERM and SIGKILL on cancel; default 30, max 300. */
  gracePeriod?: number;
  cache?: CacheInput;
  init?: InitConfig;
  resources?: ResourceRequest;
  approval?: ApprovalConfig;
  /** Default `hold`. */
  onUnreachable?: OnUnreachableMode;
  includeUninitialized?: boolean;
  description?: string;
}

type JobPlacement =
  | { runsOn: RunsOn; runsOnAll?: undefined }
  | { runsOnAll: RunsOnAllInput; runsOn?: undefined };

type JobBody =
  | { steps?: readonly StepInput[]; run?: undefined }
  | {
      /** Shorthand for a single step named `step-1`. */
      run: (ctx: StepContext) => Awaitable<unknown>;
      steps?: readonly [];
    };

type JobEnvironments =
  | { environment?: EnvironmentInput; environments?: undefined }
  | { environments?: readonly EnvironmentInput[]; environment?: undefined };

/** Exactly one of `runsOn`/`runsOnAll`; `run` or `steps`; `environment` or `environments`. */
export type JobOptions = JobOptionsBase & JobPlacement & JobBody & JobEnvironments;

export interface Job<TOutputs = Record<string, any>, TName extends string = string> {
  readonly _tag: 'Job';
  readonly name: TName;
  readonly runsOn?: RunsOn;
  readonly steps: readonly StepInput[];
  readonly needs: readonly NeedInput[];
  readonly description?: string;
  /** Outputs for downstream jobs, resolved when read; reading before they exist throws. */
  readonly result: OutputProxy<TOutputs>;
}

export declare function job(name: string, options: JobOptions): Job;
/** A job named by `options.name`, or unnamed and named `job-<n>` by its workflow. */
export declare function job(options: JobOptions & { name?: string }): Job;

// ===========================================================================
// Dynamic jobs
// ===========================================================================

/** Every job produced by the generator tagged with this group. */
export interface DynamicGroupRef {
  readonly _tag: 'DynamicGroupRef';
  readonly group: string;
  readonly when?: NeedsWhenInput;
}

export interface DynamicJobContext {
  $: Shell;
  ctx: {
    workflow: WorkflowInfo;
    event: EventPayload;
    /** Frozen snapshot of the declared needs (result-aware generators only). */
    needs?: NeedsContext;
  };
  log: Logger;
  env: ProcessEnv;
  kici: KiciApi;
}

/** Generates jobs when the run is planned and again on the executing agent: keep it deterministic. */
export type DynamicJobFn = (context: DynamicJobContext) => Awaitable<readonly Job<any, string>[]>;

export type DynamicJobNeed = NeedInput;

/** A generator tagged by `dynamicJob()`. */
export interface TaggedDynamicJobFn extends DynamicJobFn {
  readonly _tag: 'DynamicJobFn';
  readonly group: string;
  readonly generate: DynamicJobFn;
  /** True for the `{ needs, generate }` form. */
  readonly resultAware: boolean;
  readonly needs?: readonly DynamicJobNeed[];
}

export interface ResultAwareDynamicJobConfig {
  /** The generator runs after these finished and sees them in `ctx.needs`. */
  needs?: readonly DynamicJobNeed[];
  generate: DynamicJobFn;
}

/** A workflow `jobs` element. */
export type JobOrFactory = Job<any, string> | DynamicJobFn;

export declare function dynamicJob(group: string, generate: DynamicJobFn): TaggedDynamicJobFn;
export declare function dynamicJob(group: string, config: ResultAwareDynamicJobConfig): TaggedDynamicJobFn;
export declare function dynamicGroup(group: string, options?: { when?: NeedsWhenInput }): DynamicGroupRef;

// ===========================================================================
// Workflows
// ===========================================================================

export interface WorkflowConcurrency {
  /** Computed at run time; `branch` is the target (else source) branch. */
  group: (ctx: { branch: string; event: EventPayload }) => string;
  /** Default true. */
  cancelInProgress?: boolean;
  /** Default 1. */
  max?: number;
}

/** npm registries are not used by this KiCI version (warning W007). */
export interface Registry {
  url: string;
  /** `@scope`. */
  scope?: string;
  tokenSecret: EnvReference;
  alwaysAuth?: boolean;
}

export interface WorkflowOptions {
  /** Order matters for unnamed job numbering. */
  jobs: readonly JobOrFactory[];
  /** Without triggers the workflow never matches. The first matching trigger wins. */
  on?: TriggerConfig | readonly TriggerConfig[];
  /** Gate the whole workflow. */
  rules?: readonly Rule[];
  description?: string;
  /** Whole-run wall clock. */
  timeout?: Milliseconds;
  concurrency?: WorkflowConcurrency;
  onCancel?: HookInput;
  cleanup?: HookInput;
  onSuccess?: HookInput;
  onFailure?: HookInput;
  /** `when: 'drift'` is not allowed here. */
  approval?: ApprovalConfig;
  /** Globs (from the git root) of extra files mixed into the content hash. */
  hashFiles?: readonly string[];
  registries?: readonly Registry[];
  installEnv?: readonly EnvReference[];
}

export interface Workflow {
  readonly _tag: 'Workflow';
  readonly name: string;
  readonly jobs: readonly JobOrFactory[];
  readonly on?: readonly TriggerConfig[];
  readonly rules?: readonly Rule[];
  readonly description?: string;
  readonly hashFiles?: readonly string[];
  readonly registries?: readonly Registry[];
  readonly installEnv?: readonly EnvReference[];
  readonly timeout?: number;
  readonly onCancel?: HookInput;
  readonly cleanup?: HookInput;
  readonly onSuccess?: HookInput;
  readonly onFailure?: HookInput;
  readonly concurrency?: WorkflowConcurrency;
  readonly approval?: ApprovalConfig;
}

/** Export workflows from `.kici/workflows/*.ts` (default or named exports). */
export declare function workflow(name: string, options: WorkflowOptions): Workflow;

// ===========================================================================
// Fixtures and events
// ===========================================================================

export interface FixtureOptions {
  /** The trigger event to simulate. */
  event: TriggerConfig;
  branch?: string;
  sha?: string;
  repo?: string;
  /** Pull request number. */
  pr?: number;
  secrets?: Readonly<Record<string, string>>;
  /** Run this workflow directly, bypassing trigger matching. */
  workflowName?: string;
}

export interface Fixture {
  readonly _tag: 'Fixture';
  readonly id: string;
  readonly options: FixtureOptions | (() => Awaitable<FixtureOptions>);
}

/** A test event replica, discovered in `.kici/tests/**\/*.ts`. `id` has no whitespace. */
export declare function fixture(id: string, options: FixtureOptions | (() => Awaitable<FixtureOptions>)): Fixture;

export interface EventDefinition<T extends ZodTypeAny = ZodTypeAny> {
  readonly _tag: 'EventDefinition';
  readonly name: string;
  readonly schema: T;
}

/** Custom event schema (data only in this KiCI version). */
export declare function defineEvent<T extends ZodTypeAny>(name: string, schema: T): EventDefinition<T>;

// ===========================================================================
// Helpers
// ===========================================================================

export type IdempotentResult<D, TInSync = void, TApplied = void> =
  | { readonly outcome: 'skipped'; readonly drift: null; readonly result: TInSync }
  | { readonly outcome: 'applied'; readonly drift: D; readonly result: TApplied };

/** Where the helpers write status lines; pass `ctx.log`. */
export type HelperLog = Partial<Pick<Logger, 'info' | 'warn'>>;

export interface IdempotentOptions<D, TInSync = void, TApplied = void> {
  /** Default `idempotent`. */
  name?: string;
  /** Drift when `apply` would change something, `null`/`undefined` when in sync. */
  check: () => Awaitable<D | null | undefined>;
  apply: (drift: D) => Awaitable<TApplied>;
  whenInSync?: () => Awaitable<TInSync>;
  /** Logged before `apply`. */
  summarize?: (drift: D) => string;
  log?: HelperLog;
}

/** Check, then apply only on drift. */
export declare function idempotent<D, TInSync = void, TApplied = void>(
  options: IdempotentOptions<D, TInSync, TApplied>,
): Promise<IdempotentResult<D, TInSync, TApplied>>;

export interface IdempotentStepOptions<D, TInSync = void, TApplied = void> extends StepOptionsBase {
  check: (ctx: StepContext) => Awaitable<D | null | undefined>;
  apply: (ctx: StepContext, drift: D) => Awaitable<TApplied>;
  whenInSync?: (ctx: StepContext) => Awaitable<TInSync>;
  summarize?: (drift: D) => string;
}

/** `idempotent()` as a step; status lines go to `ctx.log`. */
export declare function idempotentStep<D, TInSync = void, TApplied = void>(
  name: string,
  options: IdempotentStepOptions<D, TInSync, TApplied>,
): Step<IdempotentResult<D, TInSync, TApplied>>;

export interface CheckStepOptions<T = unknown, D = unknown> extends StepOptionsBase {
  check: (ctx: StepContext) => Awaitable<D | null | undefined>;
  apply: (ctx: StepContext, drift: D) => Awaitable<T>;
  summarize: (drift: D) => string;
  whenInSync?: (ctx: StepContext) => Awaitable<T>;
  drift?: ZodTypeAny;
}

/** A step with a check facet (always applies drift in this KiCI version). */
export declare function checkStep<T = void, D = unknown>(name: string, options: CheckStepOptions<T, D>): Step<Awaited<T>>;

export interface WaitForOptions<T> {
  /** Called until it returns something other than `null`/`undefined`. */
  check: () => Awaitable<T | null | undefined>;
  /** Default 2000. */
  intervalMs?: Milliseconds;
  /** Default 60000. */
  timeoutMs?: Milliseconds;
  /** Default 0. */
  initialDelayMs?: Milliseconds;
  onSuccess?: (value: T) => unknown;
  /** Called instead of throwing `WaitForTimeoutError`; its result is returned. */
  onTimeout?: () => Awaitable<T>;
  /** Default true: errors from `check` are logged and ignored. */
  swallowErrors?: boolean;
  /** Default `waitFor`. */
  name?: string;
  log?: HelperLog;
}

export type WaitForResult<T> = T;

/** Polls `check` until it yields a value. */
export declare function waitFor<T>(options: WaitForOptions<T>): Promise<T>;

export interface WaitForStepOptions<T> extends StepOptionsBase, Omit<WaitForOptions<T>, 'check' | 'name' | 'log'> {
  check: (ctx: StepContext) => Awaitable<T | null | undefined>;
}

/** `waitFor()` as a step; the step's outputs are the value found. */
export declare function waitForStep<T>(name: string, options: WaitForStepOptions<T>): Step<Awaited<T>>;

export declare class WaitForTimeoutError extends Error {
  constructor(stepName: string, elapsedMs: number, attempts: number);
  readonly stepName: string;
  readonly elapsedMs: number;
  readonly attempts: number;
}

export declare class SecretNotFoundError extends Error {
  constructor(key: string, availableKeys: readonly string[]);
  readonly name: 'SecretNotFoundError';
  readonly key: string;
  readonly availableKeys: readonly string[];
}

export interface RestartHostOptions {
  deadlineMs?: number;
}

export interface WaitForHostAliveOptions {
  name?: string;
  intervalMs?: Milliseconds;
  timeoutMs?: Milliseconds;
}

/** Not supported by this KiCI version: throws `restartHost is not supported by this KiCI version`. */
export declare function restartHost(options?: RestartHostOptions): never;
/** Not supported by this KiCI version: throws `waitForHostAlive is not supported by this KiCI version`. */
export declare function waitForHostAlive(probe?: () => unknown, options?: WaitForHostAliveOptions): never;

// ===========================================================================
// Utilities
// ===========================================================================

export interface DagNode {
  name: string;
  needs?: readonly (string | { name?: string })[];
}

export interface DagValidationResult {
  readonly valid: boolean;
  /** Self-dependencies, unknown dependencies and cycles, one message each. */
  readonly errors: string[];
}

/** Checks job names and `needs` for self-dependencies, missing jobs and cycles. */
export declare function validateDag(jobs: readonly DagNode[]): DagValidationResult;
export declare function isMatrixJobOutputs(value: unknown): value is MatrixJobOutputs;
export declare function isHostJobOutputs(value: unknown): value is HostJobOutputs;
export declare function isDynamicJobFn(value: unknown): value is DynamicJobFn;
export declare function isDynamicGroupRef(value: unknown): value is DynamicGroupRef;
export declare function isParallelGroup(value: unknown): value is ParallelGroup;
/** Parallel children inline, in order. */
export declare function flattenStepInputs(steps: readonly StepInput[]): (Step<any> | BareStepFn<any>)[];
export declare function normalizeApproval(approval: ApprovalConfig): NormalizedApproval;
export declare function normalizeCacheSpecs(cache: CacheInput | undefined): CacheSpec[];
/** Cartesian product (dimensions in name order) or `{ value }` combos. */
export declare function expandMatrix(matrix: StaticMatrixArray | StaticMatrixObject): Record<string, string>[];
export declare function applyIncludeExclude(
  combos: readonly MatrixCombo[],
  include?: readonly MatrixInclude[],
  exclude?: readonly MatrixExclude[],
): Record<string, string>[];
export declare function isStaticArray(matrix: unknown): matrix is StaticMatrixArray;
export declare function isStaticObject(matrix: unknown): matrix is StaticMatrixObject;
export declare function isDynamicFunction(matrix: unknown): matrix is DynamicMatrixFn;

// Only the declarations marked `export` above are part of the module.
export {};
