// Node.js APIs available inside KiCI workflows.
//
// KiCI runs workflow files in an embedded engine, not in Node.js. Only the
// modules, members and globals declared here exist at run time; anything else
// fails with `TypeError: <module>.<member> is not supported in KiCI workflows`.
// That is why this file deliberately declares a small subset of Node's API:
// editors and `tsc --noEmit` flag unsupported calls before a run does.
//
// Relative paths resolve against `process.cwd()`, which is the checkout root.
// Written by `kici init` / `kici types`; regenerate instead of editing.

// ---------------------------------------------------------------------------
// Globals
// ---------------------------------------------------------------------------

type KiciBufferEncoding = 'utf8' | 'utf-8' | 'base64' | 'base64url' | 'hex' | 'latin1';

interface KiciProcessEnv {
  [key: string]: string | undefined;
}

interface KiciWritable {
  /** Appends text to the current step log. */
  write(chunk: string | Uint8Array): boolean;
}

interface KiciProcess {
  /** Live environment of the runner; reads, assignments and `delete` are supported. */
  env: KiciProcessEnv;
  /** The checkout root. */
  cwd(): string;
  readonly platform: 'linux' | 'darwin';
  readonly arch: 'x64' | 'arm64';
  readonly pid: number;
  /** `['kici', '<entry file>']`. */
  readonly argv: readonly string[];
  /** Always `'v24.0.0'`. */
  readonly version: string;
  readonly versions: { readonly node: string; readonly kici: string };
  exitCode: number | undefined;
  /**
   * Ends the current step: code 0 succeeds, any other code fails the step and
   * its job with `process.exit(<code>) called`.
   */
  exit(code?: number): never;
  readonly stdout: KiciWritable;
  readonly stderr: KiciWritable;
  readonly hrtime: { bigint(): bigint };
  nextTick(callback: (...args: any[]) => void, ...args: any[]): void;
}

declare var process: KiciProcess;

interface Console {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  /** Written to the step log with a `[warn] ` prefix. */
  warn(...data: unknown[]): void;
  /** Written to the step log with an `[error] ` prefix. */
  error(...data: unknown[]): void;
  /** Shown only when `KICI_DEBUG` is `true` or `1`. */
  debug(...data: unknown[]): void;
}

declare var console: Console;

type KiciTimerHandle = number;

declare function setTimeout<A extends unknown[]>(
  callback: (...args: A) => void,
  ms?: number,
  ...args: A
): KiciTimerHandle;
declare function clearTimeout(handle: KiciTimerHandle | undefined): void;
declare function setInterval<A extends unknown[]>(
  callback: (...args: A) => void,
  ms?: number,
  ...args: A
): KiciTimerHandle;
declare function clearInterval(handle: KiciTimerHandle | undefined): void;
declare function setImmediate<A extends unknown[]>(
  callback: (...args: A) => void,
  ...args: A
): KiciTimerHandle;
declare function queueMicrotask(callback: () => void): void;
/** Clones JSON-like values, `Date`, `Map`, `Set` and typed arrays. */
declare function structuredClone<T>(value: T): T;
declare function atob(data: string): string;
declare function btoa(data: string): string;

declare var performance: { now(): number };
declare var crypto: { randomUUID(): string };

interface TextEncoder {
  readonly encoding: 'utf-8';
  encode(input?: string): Uint8Array;
}
declare var TextEncoder: { prototype: TextEncoder; new (): TextEncoder };

interface TextDecoder {
  readonly encoding: 'utf-8';
  decode(input?: ArrayBuffer | ArrayBufferView): string;
}
declare var TextDecoder: {
  prototype: TextDecoder;
  new (label?: 'utf-8' | 'utf8', options?: { fatal?: boolean }): TextDecoder;
};

interface URLSearchParams {
  append(name: string, value: string): void;
  delete(name: string): void;
  get(name: string): string | null;
  getAll(name: string): string[];
  has(name: string): boolean;
  set(name: string, value: string): void;
  sort(): void;
  forEach(callback: (value: string, key: string, parent: URLSearchParams) => void): void;
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  toString(): string;
  readonly size: number;
  [Symbol.iterator](): IterableIterator<[string, string]>;
}
declare var URLSearchParams: {
  prototype: URLSearchParams;
  new (
    init?: string | Record<string, string> | Iterable<readonly [string, string]> | URLSearchParams,
  ): URLSearchParams;
};

interface URL {
  hash: string;
  host: string;
  hostname: string;
  href: string;
  readonly origin: string;
  password: string;
  pathname: string;
  port: string;
  protocol: string;
  search: string;
  readonly searchParams: URLSearchParams;
  username: string;
  toString(): string;
  toJSON(): string;
}
declare var URL: {
  prototype: URL;
  new (url: string | URL, base?: string | URL): URL;
  canParse(url: string, base?: string): boolean;
};

interface AbortSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  onabort: ((event: { type: 'abort' }) => void) | null;
  throwIfAborted(): void;
  addEventListener(type: 'abort', listener: (event: { type: 'abort' }) => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: (event: { type: 'abort' }) => void): void;
}
declare var AbortSignal: {
  prototype: AbortSignal;
  abort(reason?: unknown): AbortSignal;
  timeout(ms: number): AbortSignal;
  any(signals: readonly AbortSignal[]): AbortSignal;
};

interface AbortController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}
declare var AbortController: { prototype: AbortController; new (): AbortController };

type HeadersInit = Headers | Record<string, string> | Iterable<readonly [string, string]>;

interface Headers {
  append(name: string, value: string): void;
  delete(name: string): void;
  get(name: string): string | null;
  has(name: string): boolean;
  set(name: string, value: string): void;
  forEach(callback: (value: string, key: string, parent: Headers) => void): void;
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  getSetCookie(): string[];
  [Symbol.iterator](): IterableIterator<[string, string]>;
}
declare var Headers: { prototype: Headers; new (init?: HeadersInit): Headers };

/** Request and response bodies are buffered: streaming bodies are not supported. */
type BodyInit = string | Uint8Array | ArrayBuffer | URLSearchParams;

interface RequestInit {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit | null;
  signal?: AbortSignal | null;
  redirect?: 'follow' | 'error' | 'manual';
}

interface Request {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
  readonly signal: AbortSignal;
  readonly redirect: 'follow' | 'error' | 'manual';
  text(): Promise<string>;
  json(): Promise<any>;
  arrayBuffer(): Promise<ArrayBuffer>;
}
declare var Request: { prototype: Request; new (input: string | URL | Request, init?: RequestInit): Request };

interface Response {
  readonly ok: boolean;
  readonly status: number;
  readonly statusText: string;
  readonly url: string;
  readonly redirected: boolean;
  readonly headers: Headers;
  text(): Promise<string>;
  json(): Promise<any>;
  arrayBuffer(): Promise<ArrayBuffer>;
  bytes(): Promise<Uint8Array>;
  clone(): Response;
}

/** HTTP(S) client; TLS uses the system roots. */
declare function fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;

interface Buffer extends Uint8Array {
  toString(encoding?: KiciBufferEncoding): string;
}
declare var Buffer: {
  prototype: Buffer;
  from(data: string, encoding?: KiciBufferEncoding): Buffer;
  from(data: ArrayBuffer | Uint8Array | readonly number[]): Buffer;
  alloc(size: number, fill?: number): Buffer;
  byteLength(data: string | Uint8Array | ArrayBuffer, encoding?: KiciBufferEncoding): number;
  concat(list: readonly Uint8Array[], totalLength?: number): Buffer;
  isBuffer(value: unknown): value is Buffer;
};

interface ImportMeta {
  /** `file://` URL of the current module. */
  readonly url: string;
  /** Absolute path of the current module. */
  readonly filename: string;
  /** Absolute path of the directory of the current module. */
  readonly dirname: string;
}

// ---------------------------------------------------------------------------
// Modules (`node:X` and bare `X`)
// ---------------------------------------------------------------------------

declare module 'node:fs/promises' {
  type Encoding = KiciBufferEncoding;
  type Data = string | Uint8Array;

  interface Stats {
    isFile(): boolean;
    isDirectory(): boolean;
    isSymbolicLink(): boolean;
    readonly size: number;
    readonly mtimeMs: number;
    readonly mode: number;
  }

  interface Dirent {
    readonly name: string;
    isFile(): boolean;
    isDirectory(): boolean;
    isSymbolicLink(): boolean;
  }

  interface FsPromises {
    readFile(path: string, encoding: Encoding | { encoding: Encoding }): Promise<string>;
    readFile(path: string): Promise<Buffer>;
    writeFile(path: string, data: Data, encoding?: Encoding | { encoding?: Encoding; mode?: number }): Promise<void>;
    appendFile(path: string, data: Data, encoding?: Encoding | { encoding?: Encoding; mode?: number }): Promise<void>;
    readdir(path: string, options: { withFileTypes: true }): Promise<Dirent[]>;
    readdir(path: string, options?: { withFileTypes?: false }): Promise<string[]>;
    mkdir(path: string, options?: { recursive?: boolean; mode?: number }): Promise<string | undefined>;
    stat(path: string): Promise<Stats>;
    lstat(path: string): Promise<Stats>;
    rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void>;
    unlink(path: string): Promise<void>;
    rmdir(path: string): Promise<void>;
    access(path: string, mode?: number): Promise<void>;
    copyFile(src: string, dest: string): Promise<void>;
    rename(from: string, to: string): Promise<void>;
    mkdtemp(prefix: string): Promise<string>;
    realpath(path: string): Promise<string>;
    chmod(path: string, mode: number | string): Promise<void>;
  }

  const fsPromises: FsPromises;
  export = fsPromises;
}

declare module 'node:fs' {
  import fsPromises = require('node:fs/promises');

  type Encoding = KiciBufferEncoding;
  type Data = string | Uint8Array;
  type Stats = import('node:fs/promises').Stats;
  type Dirent = import('node:fs/promises').Dirent;

  interface Fs {
    readFileSync(path: string, encoding: Encoding | { encoding: Encoding }): string;
    readFileSync(path: string): Buffer;
    writeFileSync(path: string, data: Data, encoding?: Encoding | { encoding?: Encoding; mode?: number }): void;
    appendFileSync(path: string, data: Data, encoding?: Encoding | { encoding?: Encoding; mode?: number }): void;
    existsSync(path: string): boolean;
    mkdirSync(path: string, options?: { recursive?: boolean; mode?: number }): string | undefined;
    readdirSync(path: string, options: { withFileTypes: true }): Dirent[];
    readdirSync(path: string, options?: { withFileTypes?: false }): string[];
    statSync(path: string): Stats;
    lstatSync(path: string): Stats;
    rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void;
    unlinkSync(path: string): void;
    copyFileSync(src: string, dest: string): void;
    renameSync(from: string, to: string): void;
    chmodSync(path: string, mode: number | string): void;
    readonly promises: typeof fsPromises;
    readonly constants: { readonly F_OK: number; readonly R_OK: number; readonly W_OK: number; readonly X_OK: number };
  }

  const fs: Fs;
  export = fs;
}

declare module 'node:path' {
  interface ParsedPath {
    root: string;
    dir: string;
    base: string;
    ext: string;
    name: string;
  }

  /** POSIX path functions (also on macOS; Windows is not supported). */
  interface PosixPath {
    join(...paths: string[]): string;
    resolve(...paths: string[]): string;
    dirname(path: string): string;
    basename(path: string, suffix?: string): string;
    extname(path: string): string;
    relative(from: string, to: string): string;
    normalize(path: string): string;
    isAbsolute(path: string): boolean;
    parse(path: string): ParsedPath;
    format(parts: Partial<ParsedPath>): string;
    readonly sep: '/';
    readonly delimiter: ':';
    readonly posix: PosixPath;
  }

  const path: PosixPath;
  export = path;
}

declare module 'node:path/posix' {
  import path = require('node:path');
  export = path;
}

declare module 'node:os' {
  interface Os {
    tmpdir(): string;
    homedir(): string;
    platform(): 'linux' | 'darwin';
    arch(): 'x64' | 'arm64';
    cpus(): { model: string; speed: number }[];
    availableParallelism(): number;
    hostname(): string;
    type(): string;
    release(): string;
    readonly EOL: '\n';
  }

  const os: Os;
  export = os;
}

declare module 'node:url' {
  interface UrlModule {
    readonly URL: typeof URL;
    readonly URLSearchParams: typeof URLSearchParams;
    fileURLToPath(url: string | URL): string;
    pathToFileURL(path: string): URL;
  }

  const url: UrlModule;
  export = url;
}

declare module 'node:process' {
  const proc: KiciProcess;
  export = proc;
}

declare module 'node:crypto' {
  type HashAlgorithm = 'sha256' | 'sha1' | 'md5';

  interface Hash {
    update(data: string | Uint8Array, encoding?: KiciBufferEncoding): Hash;
    digest(encoding: 'hex' | 'base64'): string;
    digest(): Buffer;
  }

  interface CryptoModule {
    randomUUID(): string;
    randomBytes(size: number): Buffer;
    createHash(algorithm: HashAlgorithm): Hash;
    createHmac(algorithm: HashAlgorithm, key: string | Uint8Array): Hash;
  }

  const cryptoModule: CryptoModule;
  export = cryptoModule;
}

declare module 'node:timers' {
  interface Timers {
    setTimeout: typeof setTimeout;
    clearTimeout: typeof clearTimeout;
    setInterval: typeof setInterval;
    clearInterval: typeof clearInterval;
    setImmediate: typeof setImmediate;
  }

  const timers: Timers;
  export = timers;
}

declare module 'node:timers/promises' {
  interface TimersPromises {
    /** Resolves with `value` after `ms` milliseconds. */
    setTimeout<T = void>(ms?: number, value?: T, options?: { signal?: AbortSignal }): Promise<T>;
  }

  const timersPromises: TimersPromises;
  export = timersPromises;
}

declare module 'node:util' {
  interface Util {
    format(format?: unknown, ...args: unknown[]): string;
    /** Compact, single-line rendering. */
    inspect(value: unknown, options?: { depth?: number }): string;
    promisify<R>(fn: (callback: (err: unknown, result: R) => void) => void): () => Promise<R>;
    promisify<A, R>(fn: (a: A, callback: (err: unknown, result: R) => void) => void): (a: A) => Promise<R>;
    promisify<A, B, R>(
      fn: (a: A, b: B, callback: (err: unknown, result: R) => void) => void,
    ): (a: A, b: B) => Promise<R>;
    readonly types: { isPromise(value: unknown): value is Promise<unknown> };
  }

  const util: Util;
  export = util;
}

declare module 'node:buffer' {
  interface BufferModule {
    readonly Buffer: typeof Buffer;
  }

  const bufferModule: BufferModule;
  export = bufferModule;
}

declare module 'fs/promises' {
  import m = require('node:fs/promises');
  export = m;
}
declare module 'fs' {
  import m = require('node:fs');
  export = m;
}
declare module 'path' {
  import m = require('node:path');
  export = m;
}
declare module 'path/posix' {
  import m = require('node:path');
  export = m;
}
declare module 'os' {
  import m = require('node:os');
  export = m;
}
declare module 'url' {
  import m = require('node:url');
  export = m;
}
declare module 'process' {
  import m = require('node:process');
  export = m;
}
declare module 'crypto' {
  import m = require('node:crypto');
  export = m;
}
declare module 'timers' {
  import m = require('node:timers');
  export = m;
}
declare module 'timers/promises' {
  import m = require('node:timers/promises');
  export = m;
}
declare module 'util' {
  import m = require('node:util');
  export = m;
}
declare module 'buffer' {
  import m = require('node:buffer');
  export = m;
}
