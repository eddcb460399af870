// POSIX `node:path`, written for KiCI workflows (sdk.md §19).
const sep = '/';
const delimiter = ':';

function assertPath(p, name) {
  if (typeof p !== 'string') {
    throw new TypeError(`The "${name}" argument must be of type string. Received ${typeof p}`);
  }
}

function normalizeSegments(path, allowAboveRoot) {
  const out = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (allowAboveRoot) out.push('..');
      continue;
    }
    out.push(part);
  }
  return out;
}

export function normalize(p) {
  assertPath(p, 'path');
  if (p === '') return '.';
  const absolute = p.startsWith('/');
  const trailing = p.endsWith('/');
  let result = normalizeSegments(p, !absolute).join('/');
  if (result === '' && !absolute) result = '.';
  if (result !== '' && trailing) result += '/';
  return (absolute ? '/' : '') + result;
}

export function join(...parts) {
  parts.forEach((p) => assertPath(p, 'path'));
  const joined = parts.filter((p) => p !== '').join('/');
  return joined === '' ? '.' : normalize(joined);
}

export function isAbsolute(p) {
  assertPath(p, 'path');
  return p.startsWith('/');
}

export function resolve(...parts) {
  let resolved = '';
  for (let i = parts.length - 1; i >= -1 && !resolved.startsWith('/'); i--) {
    const part = i >= 0 ? parts[i] : globalThis.process.cwd();
    assertPath(part, 'paths[' + i + ']');
    if (part === '') continue;
    resolved = resolved === '' ? part : part + '/' + resolved;
  }
  const segments = normalizeSegments(resolved, false).join('/');
  return '/' + segments;
}

export function dirname(p) {
  assertPath(p, 'path');
  if (p === '') return '.';
  const trimmed = p.length > 1 ? p.replace(/\/+$/, '') : p;
  const index = trimmed.lastIndexOf('/');
  if (index === -1) return '.';
  if (index === 0) return '/';
  return trimmed.slice(0, index);
}

export function basename(p, ext) {
  assertPath(p, 'path');
  const trimmed = p.length > 1 ? p.replace(/\/+$/, '') : p;
  let base = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  if (ext !== undefined && base.endsWith(ext) && base !== ext) base = base.slice(0, -ext.length);
  return base;
}

export function extname(p) {
  const base = basename(p);
  const index = base.lastIndexOf('.');
  if (index <= 0) return '';
  return base.slice(index);
}

export function relative(from, to) {
  const fromParts = resolve(from).split('/').filter(Boolean);
  const toParts = resolve(to).split('/').filter(Boolean);
  let common = 0;
  while (common < fromParts.length && common < toParts.length && fromParts[common] === toParts[common]) {
    common++;
  }
  const up = fromParts.slice(common).map(() => '..');
  return up.concat(toParts.slice(common)).join('/');
}

export function parse(p) {
  assertPath(p, 'path');
  const root = p.startsWith('/') ? '/' : '';
  const base = basename(p);
  const ext = extname(p);
  let dir = dirname(p);
  if (dir === '.' && !p.includes('/')) dir = '';
  return { root, dir, base, ext, name: ext ? base.slice(0, -ext.length) : base };
}

export function format(obj) {
  const dir = obj.dir || obj.root || '';
  const base = obj.base || (obj.name || '') + (obj.ext || '');
  if (!dir) return base;
  return dir === obj.root ? dir + base : dir + '/' + base;
}

const path = { sep, delimiter, normalize, join, isAbsolute, resolve, dirname, basename, extname, relative, parse, format };
path.posix = path;
export const posix = path;
export { sep, delimiter };
export default path;
