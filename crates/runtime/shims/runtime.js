// Job-runtime globals and Node built-ins (sdk.md §19), on top of the native primitives in
// `globalThis.__kici_job` (crates/runtime/src/job/native.rs). Runs after globals.js, whose
// compile-time console/process it replaces. `__kici_scope.current` is the scope (step attempt,
// hook or prepare log) that console output is attributed to.
(() => {
  const native = globalThis.__kici_job;
  const scope = { current: 0 };
  globalThis.__kici_scope = scope;

  // ---------------------------------------------------------------- formatting
  const describe = (a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.stack ? `${a.name === 'Error' ? 'Error' : a.name}: ${a.message}\n${a.stack}`.trimEnd() : String(a);
    if (typeof a === 'function') return `[Function ${a.name || '(anonymous)'}]`;
    if (typeof a === 'bigint') return `${a}n`;
    if (a === undefined) return 'undefined';
    if (typeof a === 'symbol') return a.toString();
    try {
      const seen = new WeakSet();
      const text = JSON.stringify(a, (k, v) => {
        if (typeof v === 'bigint') return `${v}n`;
        if (typeof v === 'function') return `[Function ${v.name || '(anonymous)'}]`;
        if (v instanceof Map) return Object.fromEntries(v);
        if (v instanceof Set) return [...v];
        if (v !== null && typeof v === 'object') {
          if (seen.has(v)) return '[Circular]';
          seen.add(v);
        }
        return v;
      });
      return text ?? String(a);
    } catch {
      return String(a);
    }
  };
  const formatArgs = (args) => {
    if (args.length > 0 && typeof args[0] === 'string' && /%[sdifjoO%]/.test(args[0])) {
      let i = 1;
      const first = args[0].replace(/%([sdifjoO%])/g, (m, c) => {
        if (c === '%') return '%';
        if (i >= args.length) return m;
        const v = args[i++];
        if (c === 's') return typeof v === 'string' ? v : describe(v);
        if (c === 'd' || c === 'i') return String(c === 'i' ? Math.trunc(Number(v)) : Number(v));
        if (c === 'f') return String(Number(v));
        return describe(v);
      });
      return [first, ...args.slice(i).map(describe)].join(' ');
    }
    return args.map(describe).join(' ');
  };
  globalThis.__kici_format = formatArgs;

  const debugEnabled = () => {
    const v = globalThis.process?.env?.KICI_DEBUG;
    return v === 'true' || v === '1';
  };
  const print = (stream, prefix) => (...args) => native.log(scope.current, stream, prefix + formatArgs(args));
  globalThis.console = {
    log: print('out', ''),
    info: print('out', ''),
    debug: (...args) => {
      if (debugEnabled()) native.log(scope.current, 'out', formatArgs(args));
    },
    trace: print('out', ''),
    warn: print('err', '[warn] '),
    error: print('err', '[error] '),
    table: print('out', ''),
    dir: print('out', ''),
  };

  // ---------------------------------------------------------------- timers
  let nextTimer = 1;
  const intervals = new Set();
  globalThis.setTimeout = (fn, ms = 0, ...args) => {
    const id = nextTimer++;
    native.sleep(Number(ms) || 0, id).then((fired) => {
      if (fired && typeof fn === 'function') fn(...args);
    });
    return id;
  };
  globalThis.clearTimeout = (id) => {
    if (id !== undefined && id !== null) native.cancelTimer(Number(id));
  };
  globalThis.setInterval = (fn, ms = 0, ...args) => {
    const id = nextTimer++;
    intervals.add(id);
    const tick = () => {
      native.sleep(Math.max(1, Number(ms) || 0), id).then((fired) => {
        if (!fired || !intervals.has(id)) return;
        fn(...args);
        tick();
      });
    };
    tick();
    return id;
  };
  globalThis.clearInterval = (id) => {
    intervals.delete(id);
    native.cancelTimer(Number(id));
  };
  globalThis.setImmediate = (fn, ...args) => globalThis.setTimeout(fn, 0, ...args);
  globalThis.clearImmediate = globalThis.clearTimeout;
  globalThis.performance = { now: () => native.now(), timeOrigin: native.epochMs() - native.now() };

  // ---------------------------------------------------------------- bytes and text
  const bytesFromLatin1 = (s) => {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  };
  const latin1FromBytes = (b) => {
    let s = '';
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
    return s;
  };
  const utf8Encode = (str) => {
    const out = [];
    for (let i = 0; i < str.length; i++) {
      let c = str.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < str.length) {
        const d = str.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(out);
  };
  const utf8Decode = (bytes) => {
    let s = '';
    const b = bytes;
    for (let i = 0; i < b.length; ) {
      const c = b[i];
      let cp = 0xfffd;
      let n = 1;
      if (c < 0x80) cp = c;
      else if (c >= 0xc2 && c < 0xe0 && (b[i + 1] & 0xc0) === 0x80) {
        cp = ((c & 31) << 6) | (b[i + 1] & 63);
        n = 2;
      } else if (c >= 0xe0 && c < 0xf0 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
        cp = ((c & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63);
        n = 3;
      } else if (c >= 0xf0 && c < 0xf5 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
        cp = ((c & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63);
        n = 4;
      }
      s += String.fromCodePoint(cp);
      i += n;
    }
    return s;
  };
  globalThis.TextEncoder = class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(s = '') { return utf8Encode(String(s)); }
  };
  globalThis.TextDecoder = class TextDecoder {
    constructor(label = 'utf-8') {
      if (!/^utf-?8$/i.test(label)) throw new RangeError(`The "${label}" encoding is not supported`);
    }
    get encoding() { return 'utf-8'; }
    decode(b) {
      if (b === undefined) return '';
      const bytes = b instanceof Uint8Array ? b : new Uint8Array(b.buffer ?? b);
      return utf8Decode(bytes);
    }
  };
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const base64Encode = (bytes, url) => {
    let out = '';
    for (let i = 0; i < bytes.length; i += 3) {
      const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
      out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
      out += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
      out += i + 2 < bytes.length ? B64[n & 63] : '=';
    }
    if (url) out = out.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    return out;
  };
  const base64Decode = (text) => {
    const clean = String(text).replace(/[\s=]/g, '').replace(/-/g, '+').replace(/_/g, '/');
    const out = [];
    let buffer = 0;
    let bits = 0;
    for (const ch of clean) {
      const v = B64.indexOf(ch);
      if (v < 0) throw new DOMExceptionLike('The string to be decoded is not correctly encoded.', 'InvalidCharacterError');
      buffer = (buffer << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((buffer >> bits) & 255);
      }
    }
    return new Uint8Array(out);
  };
  class DOMExceptionLike extends Error {
    constructor(message, name) {
      super(message);
      this.name = name;
    }
  }
  globalThis.btoa = (s) => {
    const str = String(s);
    for (let i = 0; i < str.length; i++) {
      if (str.charCodeAt(i) > 255) throw new DOMExceptionLike('Invalid character', 'InvalidCharacterError');
    }
    return base64Encode(bytesFromLatin1(str), false);
  };
  globalThis.atob = (s) => latin1FromBytes(base64Decode(s));

  // ---------------------------------------------------------------- Buffer
  class Buffer extends Uint8Array {
    static from(value, encoding) {
      if (typeof value === 'string') return Buffer._wrap(Buffer._encode(value, encoding));
      if (value instanceof ArrayBuffer) return Buffer._wrap(new Uint8Array(value));
      if (ArrayBuffer.isView(value)) return Buffer._wrap(new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice());
      if (Array.isArray(value)) return Buffer._wrap(new Uint8Array(value));
      if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer._wrap(new Uint8Array(value.data));
      throw new TypeError('The first argument must be of type string, Buffer, ArrayBuffer, Array, or Array-like Object');
    }
    static _wrap(u8) {
      const b = new Buffer(u8.length);
      b.set(u8);
      return b;
    }
    static _encode(s, encoding = 'utf8') {
      switch (String(encoding).toLowerCase()) {
        case 'utf8': case 'utf-8': return utf8Encode(s);
        case 'base64': case 'base64url': return base64Decode(s);
        case 'hex': {
          const out = new Uint8Array(Math.floor(s.length / 2));
          for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
          return out;
        }
        case 'latin1': case 'binary': case 'ascii': return bytesFromLatin1(s);
        default: throw new TypeError(`Unknown encoding: ${encoding}`);
      }
    }
    static alloc(n, fill = 0) {
      const b = new Buffer(n);
      b.fill(typeof fill === 'number' ? fill : 0);
      return b;
    }
    static byteLength(s, encoding) {
      return typeof s === 'string' ? Buffer._encode(s, encoding).length : s.byteLength;
    }
    static concat(list, total) {
      const length = total ?? list.reduce((n, b) => n + b.length, 0);
      const out = new Buffer(length);
      let at = 0;
      for (const b of list) {
        out.set(b.subarray(0, Math.min(b.length, length - at)), at);
        at += b.length;
        if (at >= length) break;
      }
      return out;
    }
    static isBuffer(v) {
      return v instanceof Buffer;
    }
    toString(encoding = 'utf8', start = 0, end = this.length) {
      const bytes = this.subarray(start, end);
      switch (String(encoding).toLowerCase()) {
        case 'utf8': case 'utf-8': return utf8Decode(bytes);
        case 'base64': return base64Encode(bytes, false);
        case 'base64url': return base64Encode(bytes, true);
        case 'hex': return Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');
        case 'latin1': case 'binary': case 'ascii': return latin1FromBytes(bytes);
        default: throw new TypeError(`Unknown encoding: ${encoding}`);
      }
    }
    equals(other) {
      return this.length === other.length && this.every((v, i) => v === other[i]);
    }
    toJSON() {
      return { type: 'Buffer', data: Array.from(this) };
    }
  }
  globalThis.Buffer = Buffer;
  const toBytes = (data, encoding) => {
    if (typeof data === 'string') return Buffer._encode(data, encoding ?? 'utf8');
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    return utf8Encode(String(data));
  };

  // ---------------------------------------------------------------- structuredClone
  globalThis.structuredClone = function structuredClone(value) {
    const seen = new Map();
    const clone = (v) => {
      if (v === null || typeof v !== 'object') {
        if (typeof v === 'function' || typeof v === 'symbol') throw new Error('DataCloneError: value could not be cloned');
        return v;
      }
      if (seen.has(v)) return seen.get(v);
      let out;
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof Map) {
        out = new Map();
        seen.set(v, out);
        for (const [k, x] of v) out.set(clone(k), clone(x));
        return out;
      } else if (v instanceof Set) {
        out = new Set();
        seen.set(v, out);
        for (const x of v) out.add(clone(x));
        return out;
      } else if (ArrayBuffer.isView(v)) out = v.slice();
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (Array.isArray(v)) {
        out = [];
        seen.set(v, out);
        for (const x of v) out.push(clone(x));
        return out;
      } else {
        out = {};
        seen.set(v, out);
        for (const k of Object.keys(v)) out[k] = clone(v[k]);
        return out;
      }
      seen.set(v, out);
      return out;
    };
    return clone(value);
  };

  // ---------------------------------------------------------------- crypto
  const randomUUID = () => {
    const b = bytesFromLatin1(native.randomBytes(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
  const digestOf = (latin1, encoding) => {
    const bytes = Buffer._wrap(bytesFromLatin1(latin1));
    return encoding === undefined ? bytes : bytes.toString(encoding);
  };
  class Hash {
    constructor(algorithm, key) {
      this.algorithm = String(algorithm).toLowerCase().replace('-', '');
      this.key = key;
      this.parts = [];
      native.hash(this.algorithm, ''); // unsupported algorithms fail at creation, as in Node
    }
    update(data, encoding) {
      this.parts.push(toBytes(data, encoding));
      return this;
    }
    digest(encoding) {
      const data = latin1FromBytes(Buffer.concat(this.parts));
      const raw = this.key === undefined
        ? native.hash(this.algorithm, data)
        : native.hmac(this.algorithm, latin1FromBytes(toBytes(this.key)), data);
      return digestOf(raw, encoding);
    }
  }
  const cryptoModule = {
    randomUUID,
    randomBytes: (n) => Buffer._wrap(bytesFromLatin1(native.randomBytes(n))),
    createHash: (algorithm) => new Hash(algorithm),
    createHmac: (algorithm, key) => new Hash(algorithm, key),
    getRandomValues: (array) => {
      const b = bytesFromLatin1(native.randomBytes(array.byteLength));
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(b);
      return array;
    },
  };
  cryptoModule.webcrypto = { randomUUID, getRandomValues: cryptoModule.getRandomValues };
  globalThis.crypto = { randomUUID, getRandomValues: cryptoModule.getRandomValues };

  // ---------------------------------------------------------------- AbortController
  class AbortSignal {
    constructor() {
      this.aborted = false;
      this.reason = undefined;
      this.onabort = null;
      this._listeners = [];
    }
    addEventListener(type, fn, options) {
      if (type === 'abort' && typeof fn === 'function') this._listeners.push({ fn, once: options?.once === true });
    }
    removeEventListener(type, fn) {
      this._listeners = this._listeners.filter((l) => l.fn !== fn);
    }
    throwIfAborted() {
      if (this.aborted) throw this.reason;
    }
    _abort(reason) {
      if (this.aborted) return;
      this.aborted = true;
      this.reason = reason === undefined ? new DOMExceptionLike('This operation was aborted', 'AbortError') : reason;
      const event = { type: 'abort', target: this };
      if (typeof this.onabort === 'function') this.onabort(event);
      for (const l of this._listeners.slice()) l.fn.call(this, event);
      this._listeners = [];
    }
    static abort(reason) {
      const s = new AbortSignal();
      s._abort(reason);
      return s;
    }
    static timeout(ms) {
      const s = new AbortSignal();
      setTimeout(() => s._abort(new DOMExceptionLike('The operation was aborted due to timeout', 'TimeoutError')), ms);
      return s;
    }
    static any(signals) {
      const s = new AbortSignal();
      for (const x of signals) {
        if (x.aborted) {
          s._abort(x.reason);
          break;
        }
        x.addEventListener('abort', () => s._abort(x.reason));
      }
      return s;
    }
  }
  class AbortController {
    constructor() {
      this.signal = new AbortSignal();
    }
    abort(reason) {
      this.signal._abort(reason);
    }
  }
  globalThis.AbortSignal = AbortSignal;
  globalThis.AbortController = AbortController;
  globalThis.DOMException = DOMExceptionLike;

  // ---------------------------------------------------------------- URL
  const DEFAULT_PORTS = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443', 'ftp:': '21' };
  const encodeParam = (s) => encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const decodeParam = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
  class URLSearchParams {
    constructor(init = '') {
      this._list = [];
      this._url = null;
      if (typeof init === 'string') {
        const text = init.startsWith('?') ? init.slice(1) : init;
        for (const part of text.split('&')) {
          if (part === '') continue;
          const eq = part.indexOf('=');
          this._list.push(eq < 0 ? [decodeParam(part), ''] : [decodeParam(part.slice(0, eq)), decodeParam(part.slice(eq + 1))]);
        }
      } else if (init instanceof URLSearchParams) this._list = init._list.map((p) => p.slice());
      else if (Array.isArray(init)) this._list = init.map(([k, v]) => [String(k), String(v)]);
      else if (init && typeof init === 'object') this._list = Object.entries(init).map(([k, v]) => [k, String(v)]);
    }
    _update() {
      if (this._url) this._url._search = this._list.length ? `?${this.toString()}` : '';
    }
    append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
    delete(k) { this._list = this._list.filter(([x]) => x !== k); this._update(); }
    get(k) { const e = this._list.find(([x]) => x === k); return e ? e[1] : null; }
    getAll(k) { return this._list.filter(([x]) => x === k).map(([, v]) => v); }
    has(k) { return this._list.some(([x]) => x === k); }
    set(k, v) {
      const i = this._list.findIndex(([x]) => x === k);
      if (i < 0) this._list.push([String(k), String(v)]);
      else {
        this._list[i][1] = String(v);
        this._list = this._list.filter(([x], j) => x !== k || j === i);
      }
      this._update();
    }
    sort() { this._list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._update(); }
    forEach(fn, thisArg) { for (const [k, v] of this._list) fn.call(thisArg, v, k, this); }
    keys() { return this._list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this._list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this._list.map((p) => p.slice())[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    get size() { return this._list.length; }
    toString() { return this._list.map(([k, v]) => `${encodeParam(k)}=${encodeParam(v)}`).join('&'); }
  }
  const URL_PATTERN = /^([a-zA-Z][a-zA-Z0-9+.-]*:)(?:\/\/(?:([^:@/?#]*)(?::([^@/?#]*))?@)?(\[[^\]]*\]|[^:/?#]*)(?::(\d*))?)?([^?#]*)(\?[^#]*)?(#.*)?$/;
  const normalizePath = (path) => {
    const out = [];
    const parts = path.split('/');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (p === '..') {
        if (out.length > 1) out.pop();
        if (i === parts.length - 1) out.push('');
      } else if (p === '.') {
        if (i === parts.length - 1) out.push('');
      } else out.push(p);
    }
    const joined = out.join('/');
    return joined.startsWith('/') ? joined : `/${joined}`;
  };
  class URL {
    constructor(input, base) {
      let text = String(input).trim();
      if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(text)) {
        if (base === undefined) throw new TypeError(`Invalid URL: ${text}`);
        const b = base instanceof URL ? base : new URL(base);
        if (text.startsWith('//')) text = b.protocol + text;
        else if (text.startsWith('/')) text = `${b.origin === 'null' ? `${b.protocol}//` : b.origin}${text}`;
        else if (text.startsWith('?')) text = `${b.origin === 'null' ? `${b.protocol}//` : b.origin}${b.pathname}${text}`;
        else if (text.startsWith('#')) text = `${b.href.split('#')[0]}${text}`;
        else {
          const dir = b.pathname.slice(0, b.pathname.lastIndexOf('/') + 1);
          text = `${b.origin === 'null' ? `${b.protocol}//` : b.origin}${dir}${text}`;
        }
      }
      const m = URL_PATTERN.exec(text);
      if (!m) throw new TypeError(`Invalid URL: ${input}`);
      this._protocol = m[1].toLowerCase();
      const special = this._protocol in DEFAULT_PORTS || this._protocol === 'file:';
      this._username = m[2] ?? '';
      this._password = m[3] ?? '';
      this._hostname = (m[4] ?? '').toLowerCase();
      this._port = m[5] && m[5] !== DEFAULT_PORTS[this._protocol] ? m[5] : '';
      this._hasAuthority = text.slice(m[1].length).startsWith('//');
      if (special && !this._hasAuthority) throw new TypeError(`Invalid URL: ${input}`);
      if ((this._protocol === 'http:' || this._protocol === 'https:') && this._hostname === '') throw new TypeError(`Invalid URL: ${input}`);
      let path = m[6] ?? '';
      if (special || this._hasAuthority) path = normalizePath(path === '' ? '/' : path);
      this._pathname = path.replace(/ /g, '%20');
      this._search = m[7] && m[7] !== '?' ? m[7] : '';
      this._hash = m[8] && m[8] !== '#' ? m[8] : '';
      this._params = null;
    }
    get protocol() { return this._protocol; }
    set protocol(v) { this._protocol = String(v).endsWith(':') ? String(v) : `${v}:`; }
    get username() { return this._username; }
    set username(v) { this._username = String(v); }
    get password() { return this._password; }
    set password(v) { this._password = String(v); }
    get hostname() { return this._hostname; }
    set hostname(v) { this._hostname = String(v); }
    get port() { return this._port; }
    set port(v) { this._port = String(v) === DEFAULT_PORTS[this._protocol] ? '' : String(v); }
    get host() { return this._port ? `${this._hostname}:${this._port}` : this._hostname; }
    set host(v) { const [h, p] = String(v).split(':'); this._hostname = h; this._port = p ?? ''; }
    get origin() { return this._protocol in DEFAULT_PORTS ? `${this._protocol}//${this.host}` : 'null'; }
    get pathname() { return this._pathname; }
    set pathname(v) { this._pathname = String(v).startsWith('/') ? String(v) : `/${v}`; }
    get search() { return this._search; }
    set search(v) { const s = String(v); this._search = s === '' || s === '?' ? '' : s.startsWith('?') ? s : `?${s}`; this._params = null; }
    get searchParams() {
      if (!this._params) {
        this._params = new URLSearchParams(this._search);
        this._params._url = this;
      }
      return this._params;
    }
    get hash() { return this._hash; }
    set hash(v) { const s = String(v); this._hash = s === '' || s === '#' ? '' : s.startsWith('#') ? s : `#${s}`; }
    get href() {
      const auth = this._username || this._password ? `${this._username}${this._password ? `:${this._password}` : ''}@` : '';
      const authority = this._hasAuthority ? `//${auth}${this.host}` : '';
      return `${this._protocol}${authority}${this._pathname}${this._search}${this._hash}`;
    }
    set href(v) { Object.assign(this, new URL(v)); }
    toString() { return this.href; }
    toJSON() { return this.href; }
    static canParse(input, base) {
      try {
        new URL(input, base);
        return true;
      } catch {
        return false;
      }
    }
  }
  globalThis.URL = URL;
  globalThis.URLSearchParams = URLSearchParams;

  // ---------------------------------------------------------------- fetch
  // Headers, Request, Response and fetch (sdk.md §19). Bodies are buffered (no streams); the
  // HTTP exchange is native.fetch, one request per call: redirects are followed here, with the
  // fetch standard's rules for methods, bodies and credentials.
  const headerName = (name) => {
    const n = String(name);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n)) throw new TypeError(`Headers: invalid header name: "${n}"`);
    return n.toLowerCase();
  };
  const headerValue = (value) => {
    const v = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    if (/[\0\r\n]/.test(v)) throw new TypeError(`Headers: invalid header value: "${v}"`);
    return v;
  };
  class Headers {
    constructor(init) {
      this._map = new Map();
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        for (const [k, list] of init._map) this._map.set(k, list.slice());
      } else if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError('Headers: each header pair must be [name, value]');
          this.append(p[0], p[1]);
        }
      } else if (typeof init === 'object') {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      } else throw new TypeError('Headers: init must be an object, an iterable of pairs or Headers');
    }
    append(name, value) {
      const k = headerName(name);
      const v = headerValue(value);
      const list = this._map.get(k);
      if (list) list.push(v);
      else this._map.set(k, [v]);
    }
    set(name, value) { this._map.set(headerName(name), [headerValue(value)]); }
    delete(name) { this._map.delete(headerName(name)); }
    get(name) {
      const list = this._map.get(headerName(name));
      return list ? list.join(', ') : null;
    }
    getSetCookie() { return (this._map.get('set-cookie') ?? []).slice(); }
    has(name) { return this._map.has(headerName(name)); }
    _pairs() {
      const out = [];
      for (const k of [...this._map.keys()].sort()) {
        if (k === 'set-cookie') for (const v of this._map.get(k)) out.push([k, v]);
        else out.push([k, this._map.get(k).join(', ')]);
      }
      return out;
    }
    forEach(fn, thisArg) { for (const [k, v] of this._pairs()) fn.call(thisArg, v, k, this); }
    entries() { return this._pairs()[Symbol.iterator](); }
    keys() { return this._pairs().map(([k]) => k)[Symbol.iterator](); }
    values() { return this._pairs().map(([, v]) => v)[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'Headers'; }
  }

  // A body is null, a string (sent as UTF-8), a Uint8Array, or a native response body
  // ({text(), bytes()}). Returns [body, default content type].
  const extractBody = (init) => {
    if (init === undefined || init === null) return [null, null];
    if (typeof init === 'string') return [init, 'text/plain;charset=UTF-8'];
    if (init instanceof URLSearchParams) return [init.toString(), 'application/x-www-form-urlencoded;charset=UTF-8'];
    if (init instanceof ArrayBuffer) return [new Uint8Array(init.slice(0)), null];
    if (ArrayBuffer.isView(init)) return [new Uint8Array(init.buffer, init.byteOffset, init.byteLength).slice(), null];
    if (typeof init === 'object' && typeof init.getReader === 'function') {
      throw new TypeError('fetch: streaming bodies are not supported in KiCI; pass a string, Uint8Array or URLSearchParams');
    }
    return [String(init), 'text/plain;charset=UTF-8'];
  };
  class BodyMixin {
    _initBody(body) {
      this._body = body;
      this._used = false;
    }
    get bodyUsed() { return this._used; }
    _take() {
      if (this._used) return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
      this._used = true;
      return null;
    }
    text() {
      const used = this._take();
      if (used) return used;
      const b = this._body;
      try {
        if (b === null) return Promise.resolve('');
        if (typeof b === 'string') return Promise.resolve(b);
        if (b instanceof Uint8Array) return Promise.resolve(utf8Decode(b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? b.subarray(3) : b));
        return Promise.resolve(b.text());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    arrayBuffer() {
      const used = this._take();
      if (used) return used;
      const b = this._body;
      try {
        if (b === null) return Promise.resolve(new ArrayBuffer(0));
        if (typeof b === 'string') return Promise.resolve(utf8Encode(b).buffer);
        if (b instanceof Uint8Array) return Promise.resolve(b.slice().buffer);
        return Promise.resolve(b.bytes());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    async bytes() { return new Uint8Array(await this.arrayBuffer()); }
    async json() { return JSON.parse(await this.text()); }
  }
  const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'];
  class Request extends BodyMixin {
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      const url = new URL(from ? from.url : input instanceof URL ? input.href : String(input));
      if (url.username || url.password) {
        throw new TypeError(`Request cannot be constructed from a URL that includes credentials: ${url.href}`);
      }
      let method = init.method !== undefined ? String(init.method) : from ? from.method : 'GET';
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) throw new TypeError(`'${method}' is not a valid HTTP method.`);
      if (METHODS.includes(method.toUpperCase())) method = method.toUpperCase();
      this.url = url.href.split('#')[0];
      this.method = method;
      this.headers = new Headers(init.headers !== undefined ? init.headers : from ? from.headers : undefined);
      this.signal = init.signal !== undefined ? init.signal : from ? from.signal : null;
      this.redirect = init.redirect ?? (from ? from.redirect : 'follow');
      if (!['follow', 'error', 'manual'].includes(this.redirect)) {
        throw new TypeError(`Failed to construct 'Request': '${this.redirect}' is not a valid redirect mode`);
      }
      let body = null;
      if (init.body !== undefined && init.body !== null) {
        const [b, type] = extractBody(init.body);
        body = b;
        if (type && !this.headers.has('content-type')) this.headers.set('content-type', type);
      } else if (from && init.body === undefined) {
        body = from._body;
      }
      if (body !== null && (method === 'GET' || method === 'HEAD')) {
        throw new TypeError('Request with GET/HEAD method cannot have body.');
      }
      this._initBody(body);
    }
    clone() {
      if (this._used) throw new TypeError('Request.clone: Body has already been consumed.');
      return new Request(this);
    }
    get [Symbol.toStringTag]() { return 'Request'; }
  }
  class Response extends BodyMixin {
    constructor(body = null, init = {}) {
      super();
      const status = init.status ?? 200;
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`init["status"] must be in the range of 200 to 599, inclusive.`);
      }
      this.status = status;
      this.statusText = init.statusText ?? '';
      this.headers = new Headers(init.headers);
      this.url = '';
      this.redirected = false;
      this.type = 'default';
      const [b, type] = extractBody(body);
      if (type && !this.headers.has('content-type')) this.headers.set('content-type', type);
      this._initBody(b);
    }
    get ok() { return this.status >= 200 && this.status <= 299; }
    clone() {
      if (this._used) throw new TypeError('Response.clone: Body has already been consumed.');
      const r = Object.create(Response.prototype);
      Object.assign(r, this);
      r.headers = new Headers(this.headers);
      return r;
    }
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new Response(JSON.stringify(data), { ...init, headers });
    }
    static error() {
      const r = Object.create(Response.prototype);
      Object.assign(r, { status: 0, statusText: '', headers: new Headers(), url: '', redirected: false, type: 'error' });
      r._initBody(null);
      return r;
    }
    get [Symbol.toStringTag]() { return 'Response'; }
  }
  const fetchFailed = (message, code) => {
    const cause = new Error(message);
    if (code) cause.code = code;
    const error = new TypeError(`fetch failed: ${message}`);
    error.cause = cause;
    return error;
  };
  const REDIRECTS = [301, 302, 303, 307, 308];
  const MAX_REDIRECTS = 20;
  let nextFetch = 1;
  const fetch = (input, init = undefined) =>
    new Promise((resolve, reject) => {
      let request;
      try {
        request = new Request(input, init ?? {});
      } catch (e) {
        reject(e);
        return;
      }
      const signal = request.signal;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let settled = false;
      let inFlight = null;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        if (inFlight !== null) native.abortFetch(inFlight);
        reject(signal.reason);
      };
      signal?.addEventListener('abort', onAbort);
      const run = async () => {
        let url = request.url;
        let method = request.method;
        let body = request._body;
        const headers = new Headers(request.headers);
        let redirected = false;
        for (let hops = 0; ; hops++) {
          const protocol = new URL(url).protocol;
          if (protocol !== 'http:' && protocol !== 'https:') throw fetchFailed(`unknown scheme ${protocol}`);
          inFlight = nextFetch++;
          const binary = body instanceof Uint8Array;
          const r = await native.fetch(inFlight, method, url, headers._pairs(), binary ? latin1FromBytes(body) : body, binary);
          inFlight = null;
          if (settled) return;
          if (r === null) throw new DOMExceptionLike('This operation was aborted', 'AbortError');
          if (r.error !== undefined) throw fetchFailed(r.error, r.code);
          const responseHeaders = new Headers();
          for (const [k, v] of r.headers) responseHeaders.append(k, v);
          const location = REDIRECTS.includes(r.status) ? responseHeaders.get('location') : null;
          if (location !== null && request.redirect !== 'manual') {
            if (request.redirect === 'error') throw fetchFailed(`unexpected redirect to ${location}`);
            if (hops >= MAX_REDIRECTS) throw fetchFailed('redirect count exceeded');
            let next;
            try {
              next = new URL(location, url);
            } catch {
              throw fetchFailed(`invalid redirect location ${location}`);
            }
            if ((r.status === 303 && method !== 'GET' && method !== 'HEAD') || ((r.status === 301 || r.status === 302) && method === 'POST')) {
              method = 'GET';
              body = null;
              for (const h of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) headers.delete(h);
            }
            if (new URL(url).origin !== next.origin) {
              for (const h of ['authorization', 'cookie', 'proxy-authorization', 'host']) headers.delete(h);
            }
            url = next.href.split('#')[0];
            redirected = true;
            continue;
          }
          const response = Object.create(Response.prototype);
          Object.assign(response, {
            status: r.status,
            statusText: r.statusText,
            headers: responseHeaders,
            url,
            redirected,
            type: 'basic',
          });
          response._initBody({ text: r.text, bytes: r.bytes });
          settled = true;
          resolve(response);
          return;
        }
      };
      run()
        .catch((e) => {
          if (settled) return;
          settled = true;
          reject(e);
        })
        .finally(() => signal?.removeEventListener('abort', onAbort));
    });
  globalThis.Headers = Headers;
  globalThis.Request = Request;
  globalThis.Response = Response;
  globalThis.fetch = fetch;

  // ---------------------------------------------------------------- process
  const proc = globalThis.process;
  const cwd = proc.cwd();
  const resolvePath = (p) => {
    if (p instanceof URL) return decodeURIComponent(p.pathname);
    const s = String(p);
    if (s.startsWith('file://')) return decodeURIComponent(new URL(s).pathname);
    return s.startsWith('/') ? s : `${cwd.replace(/\/$/, '')}/${s}`;
  };
  class ProcessExit extends Error {
    constructor(code) {
      super(`process.exit(${code}) called`);
      this.name = 'ProcessExit';
      this.exitCode = code;
    }
  }
  globalThis.__kici_ProcessExit = ProcessExit;
  proc.pid = native.os.pid;
  proc.exit = (code) => {
    const c = code ?? proc.exitCode ?? 0;
    throw new ProcessExit(Number(c));
  };
  const stream = (name) => ({
    write(chunk) {
      const text = typeof chunk === 'string' ? chunk : utf8Decode(toBytes(chunk));
      native.log(scope.current, name, text.endsWith('\n') ? text.slice(0, -1) : text);
      return true;
    },
    isTTY: false,
  });
  proc.stdout = stream('out');
  proc.stderr = stream('err');
  const hrtime = (previous) => {
    const ns = Math.round(native.now() * 1e6);
    const s = Math.floor(ns / 1e9);
    const n = ns % 1e9;
    if (!previous) return [s, n];
    let ds = s - previous[0];
    let dn = n - previous[1];
    if (dn < 0) {
      ds -= 1;
      dn += 1e9;
    }
    return [ds, dn];
  };
  hrtime.bigint = () => BigInt(Math.round(native.now() * 1e6));
  proc.hrtime = hrtime;
  proc.uptime = () => native.now() / 1000;
  proc.memoryUsage = () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0 });
  proc.on = () => proc;
  proc.once = () => proc;
  proc.off = () => proc;

  // ---------------------------------------------------------------- fs
  const nfs = native.fs;
  const encodingOf = (options) => (typeof options === 'string' ? options : options?.encoding);
  const makeStat = (s) => ({
    size: s.size,
    mtimeMs: s.mtimeMs,
    mtime: new Date(s.mtimeMs),
    mode: s.mode,
    isFile: () => s.kind === 'file',
    isDirectory: () => s.kind === 'dir',
    isSymbolicLink: () => s.kind === 'symlink',
  });
  const readFileSync = (p, options) => {
    const encoding = encodingOf(options);
    if (encoding === undefined || encoding === null) return Buffer._wrap(bytesFromLatin1(nfs.readFile(resolvePath(p), true)));
    if (/^utf-?8$/i.test(encoding)) return nfs.readFile(resolvePath(p), false);
    return Buffer._wrap(bytesFromLatin1(nfs.readFile(resolvePath(p), true))).toString(encoding);
  };
  const writeData = (p, data, options, append) => {
    if (typeof data === 'string' && (encodingOf(options) === undefined || /^utf-?8$/i.test(encodingOf(options)))) {
      nfs.writeFile(resolvePath(p), data, false, append);
    } else {
      nfs.writeFile(resolvePath(p), latin1FromBytes(toBytes(data, encodingOf(options))), true, append);
    }
  };
  const readdirSync = (p, options) => {
    const entries = nfs.readdir(resolvePath(p));
    if (options?.withFileTypes) {
      return entries.map(([name, kind]) => ({
        name,
        parentPath: resolvePath(p),
        path: resolvePath(p),
        isFile: () => kind === 'file',
        isDirectory: () => kind === 'dir',
        isSymbolicLink: () => kind === 'symlink',
      }));
    }
    return entries.map(([name]) => name);
  };
  const fsSync = {
    readFileSync,
    writeFileSync: (p, data, options) => writeData(p, data, options, false),
    appendFileSync: (p, data, options) => writeData(p, data, options, true),
    existsSync: (p) => nfs.exists(resolvePath(p)),
    mkdirSync: (p, options) => {
      nfs.mkdir(resolvePath(p), options?.recursive === true);
      return options?.recursive ? resolvePath(p) : undefined;
    },
    readdirSync,
    statSync: (p) => makeStat(nfs.stat(resolvePath(p), true)),
    lstatSync: (p) => makeStat(nfs.stat(resolvePath(p), false)),
    rmSync: (p, options) => nfs.rm(resolvePath(p), options?.recursive === true, options?.force === true),
    unlinkSync: (p) => nfs.unlink(resolvePath(p)),
    rmdirSync: (p) => nfs.rmdir(resolvePath(p)),
    copyFileSync: (a, b) => nfs.copyFile(resolvePath(a), resolvePath(b)),
    renameSync: (a, b) => nfs.rename(resolvePath(a), resolvePath(b)),
    chmodSync: (p, mode) => nfs.chmod(resolvePath(p), typeof mode === 'string' ? parseInt(mode, 8) : mode),
    realpathSync: (p) => nfs.realpath(resolvePath(p)),
    mkdtempSync: (prefix) => nfs.mkdtemp(resolvePath(prefix)),
    accessSync: (p) => nfs.access(resolvePath(p)),
  };
  const promisified = (fn) => (...args) => {
    try {
      return Promise.resolve(fn(...args));
    } catch (e) {
      return Promise.reject(e);
    }
  };
  const fsPromises = {
    readFile: promisified(readFileSync),
    writeFile: promisified(fsSync.writeFileSync),
    appendFile: promisified(fsSync.appendFileSync),
    readdir: promisified(readdirSync),
    mkdir: promisified(fsSync.mkdirSync),
    stat: promisified(fsSync.statSync),
    lstat: promisified(fsSync.lstatSync),
    rm: promisified(fsSync.rmSync),
    unlink: promisified(fsSync.unlinkSync),
    rmdir: promisified(fsSync.rmdirSync),
    access: promisified(fsSync.accessSync),
    copyFile: promisified(fsSync.copyFileSync),
    rename: promisified(fsSync.renameSync),
    mkdtemp: promisified(fsSync.mkdtempSync),
    realpath: promisified(fsSync.realpathSync),
    chmod: promisified(fsSync.chmodSync),
  };
  const constants = { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 };
  fsPromises.constants = constants;
  const fsModule = { ...fsSync, promises: fsPromises, constants };

  // ---------------------------------------------------------------- os, url, util, timers
  const nos = native.os;
  const osModule = {
    tmpdir: () => nos.tmpdir,
    homedir: () => nos.homedir,
    platform: () => proc.platform,
    arch: () => proc.arch,
    cpus: () => Array.from({ length: nos.cpus }, () => ({ model: 'unknown', speed: 0 })),
    availableParallelism: () => nos.cpus,
    hostname: () => nos.hostname,
    type: () => nos.type,
    release: () => nos.release,
    EOL: '\n',
  };
  const urlModule = {
    URL,
    URLSearchParams,
    fileURLToPath: (u) => {
      const url = u instanceof URL ? u : new URL(String(u));
      if (url.protocol !== 'file:') throw new TypeError('The URL must be of scheme file');
      return decodeURIComponent(url.pathname);
    },
    pathToFileURL: (p) => new URL(`file://${encodeURI(resolvePath(p))}`),
  };
  const inspect = (v) => describe(v);
  const utilModule = {
    format: (...args) => formatArgs(args),
    inspect,
    promisify: (fn) => (...args) =>
      new Promise((resolve, reject) => fn(...args, (err, value) => (err ? reject(err) : resolve(value)))),
    types: { isPromise: (v) => v instanceof Promise },
    isDeepStrictEqual: (a, b) => JSON.stringify(a) === JSON.stringify(b),
  };
  const timersModule = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    setInterval: globalThis.setInterval,
    clearInterval: globalThis.clearInterval,
    setImmediate: globalThis.setImmediate,
    clearImmediate: globalThis.clearImmediate,
  };
  const timersPromises = {
    setTimeout: (ms, value, options) =>
      new Promise((resolve, reject) => {
        const signal = options?.signal;
        if (signal?.aborted) return reject(signal.reason);
        const id = globalThis.setTimeout(() => resolve(value), ms);
        signal?.addEventListener('abort', () => {
          globalThis.clearTimeout(id);
          reject(signal.reason);
        });
      }),
    setImmediate: (value) => new Promise((resolve) => globalThis.setTimeout(() => resolve(value), 0)),
  };
  globalThis.__kici_node = {
    fs: fsModule,
    'fs/promises': fsPromises,
    os: osModule,
    url: urlModule,
    crypto: cryptoModule,
    timers: timersModule,
    'timers/promises': timersPromises,
    util: utilModule,
    buffer: { Buffer, atob: globalThis.atob, btoa: globalThis.btoa },
  };
})();
