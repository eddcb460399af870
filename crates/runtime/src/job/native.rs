//! Native functions behind the job runtime's JavaScript (`globalThis.__kici_job`): commands,
//! timers, the file system, OS facts, hashing. The JavaScript side (`shims/runtime.js`,
//! `sdk/runner.js`) builds the Node-shaped APIs on top of these small primitives.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rquickjs::prelude::Opt;
use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object, Promise, Value};
use sha2::{Digest, Sha256};

use super::fetch::{self, FetchRequest};
use super::host::{CommandOutput, CommandSpec, JobHost, LogStream, ScopeId};

struct InFlight {
    abort: tokio::sync::oneshot::Sender<()>,
    cancel: Arc<AtomicBool>,
}

type Done = Pin<Box<dyn Future<Output = CommandOutput> + Send>>;

struct Process {
    done: Option<Done>,
    kill: Arc<dyn Fn(&str) + Send + Sync>,
}

/// State shared by the native functions of one job runtime.
pub(crate) struct Native {
    pub host: Arc<dyn JobHost>,
    processes: Mutex<HashMap<u64, Process>>,
    timers: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<()>>>,
    /// Requests of `fetch` in flight: the abort trigger and the flag the HTTP thread polls.
    fetches: Mutex<HashMap<u64, InFlight>>,
    next_id: AtomicU64,
    started: Instant,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Native {
    pub fn new(host: Arc<dyn JobHost>) -> Arc<Self> {
        Arc::new(Self {
            host,
            processes: Mutex::new(HashMap::new()),
            timers: Mutex::new(HashMap::new()),
            fetches: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
        })
    }

    /// Sends `signal` to every command still running (job end, cancel).
    pub fn kill_all(&self, signal: &str) {
        for process in guard(&self.processes).values() {
            (process.kill)(signal);
        }
        for (_, request) in guard(&self.fetches).drain() {
            request.cancel.store(true, Ordering::Relaxed);
            let _ = request.abort.send(());
        }
    }
}

fn throw_error<'js>(ctx: &Ctx<'js>, message: &str, code: Option<&str>) -> rquickjs::Error {
    match Exception::from_message(ctx.clone(), message) {
        Ok(e) => {
            if let Some(code) = code {
                let _ = e.as_object().set("code", code);
            }
            ctx.throw(e.into_value())
        }
        Err(e) => e,
    }
}

fn io_error<'js>(ctx: &Ctx<'js>, e: &std::io::Error, syscall: &str, path: &str) -> rquickjs::Error {
    let (code, text) = match e.kind() {
        std::io::ErrorKind::NotFound => ("ENOENT", "no such file or directory"),
        std::io::ErrorKind::PermissionDenied => ("EACCES", "permission denied"),
        std::io::ErrorKind::AlreadyExists => ("EEXIST", "file already exists"),
        std::io::ErrorKind::DirectoryNotEmpty => ("ENOTEMPTY", "directory not empty"),
        std::io::ErrorKind::IsADirectory => ("EISDIR", "illegal operation on a directory"),
        std::io::ErrorKind::NotADirectory => ("ENOTDIR", "not a directory"),
        _ => ("EIO", "i/o error"),
    };
    let detail = if code == "EIO" {
        e.to_string()
    } else {
        text.to_string()
    };
    throw_error(
        ctx,
        &format!("{code}: {detail}, {syscall} '{path}'"),
        Some(code),
    )
}

/// Bytes ↔ JavaScript strings with one char per byte (how binary data crosses the boundary;
/// `Buffer`/`Uint8Array` conversions happen in JavaScript).
fn latin1_to_bytes(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

fn bytes_to_latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

fn object_to_env(env: &Object<'_>) -> rquickjs::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in env.props::<String, Value>() {
        let (k, v) = entry?;
        if let Some(s) = v.as_string() {
            out.push((k, s.to_string()?));
        } else if !v.is_undefined() && !v.is_null() {
            // Node converts assigned values to strings; numbers are the common case.
            if let Some(n) = v.as_number() {
                out.push((k, kici_engine::json::number_to_js_string(n)));
            } else if let Some(b) = v.as_bool() {
                out.push((k, b.to_string()));
            }
        }
    }
    Ok(out)
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else {
        "other"
    }
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
fn mode_of(_meta: &fs::Metadata) -> u32 {
    0o644
}

fn mtime_ms(meta: &fs::Metadata) -> f64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let filled = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        // No /dev/urandom: derive bytes from the clock; only reachable on exotic systems.
        let mut seed = Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64;
        for b in buf.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
    }
    buf
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Installs `globalThis.__kici_job`.
pub(crate) fn install<'js>(ctx: &Ctx<'js>, native: &Arc<Native>) -> rquickjs::Result<()> {
    let o = Object::new(ctx.clone())?;

    let n = native.clone();
    o.set(
        "log",
        Function::new(
            ctx.clone(),
            move |scope: f64, stream: String, text: String| {
                let stream = if stream == "err" {
                    LogStream::Stderr
                } else {
                    LogStream::Stdout
                };
                for line in text.split('\n') {
                    n.host.log(scope as ScopeId, stream, line);
                }
            },
        )?,
    )?;

    let n = native.clone();
    o.set(
        "addSecret",
        Function::new(ctx.clone(), move |value: String| n.host.add_secret(&value))?,
    )?;

    o.set(
        "quote",
        Function::new(ctx.clone(), |s: String| kici_engine::shell::quote(&s))?,
    )?;

    let n = native.clone();
    o.set(
        "spawn",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  scope: f64,
                  command: String,
                  cwd: String,
                  env: Object<'js>,
                  input: Opt<Option<String>>,
                  quiet: Opt<bool>|
                  -> rquickjs::Result<f64> {
                let spec = CommandSpec {
                    scope: scope as ScopeId,
                    command,
                    cwd: PathBuf::from(cwd),
                    env: object_to_env(&env)?,
                    input: input.0.flatten().map(|s| latin1_to_bytes(&s)),
                    quiet: quiet.0.unwrap_or(false),
                };
                match n.host.spawn(spec) {
                    Ok(running) => {
                        let id = n.next_id.fetch_add(1, Ordering::Relaxed);
                        guard(&n.processes).insert(
                            id,
                            Process {
                                done: Some(running.done),
                                kill: running.kill,
                            },
                        );
                        Ok(id as f64)
                    }
                    Err(message) => Err(throw_error(&ctx, &message, None)),
                }
            },
        )?,
    )?;

    let n = native.clone();
    o.set(
        "wait",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, id: f64, timeout_ms: Opt<Option<f64>>| {
                let id = id as u64;
                let (done, kill) = {
                    let mut processes = guard(&n.processes);
                    match processes.get_mut(&id) {
                        Some(p) => (p.done.take(), p.kill.clone()),
                        None => (
                            None,
                            Arc::new(|_: &str| {}) as Arc<dyn Fn(&str) + Send + Sync>,
                        ),
                    }
                };
                let n = n.clone();
                let timeout = timeout_ms
                    .0
                    .flatten()
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .map(|t| Duration::from_millis(t as u64));
                let c = ctx.clone();
                Promise::wrap_future(&ctx, async move {
                    let Some(mut done) = done else {
                        return Err(throw_error(&c, "internal: unknown command handle", None));
                    };
                    let output = match timeout {
                        None => done.await,
                        Some(t) => {
                            tokio::select! {
                                out = &mut done => out,
                                _ = tokio::time::sleep(t) => {
                                    kill("SIGTERM");
                                    done.await
                                }
                            }
                        }
                    };
                    guard(&n.processes).remove(&id);
                    let o = Object::new(c.clone())?;
                    o.set("stdout", output.stdout)?;
                    o.set("stderr", output.stderr)?;
                    o.set("stderrTail", output.stderr_tail)?;
                    o.set("stdall", output.stdall)?;
                    o.set("exitCode", output.exit_code)?;
                    o.set("signal", output.signal)?;
                    o.set("duration", output.duration_ms as f64)?;
                    Ok::<_, rquickjs::Error>(o)
                })
            },
        )?,
    )?;

    let n = native.clone();
    o.set(
        "kill",
        Function::new(ctx.clone(), move |id: f64, signal: Opt<String>| {
            let signal = signal.0.unwrap_or_else(|| "SIGTERM".to_string());
            if let Some(p) = guard(&n.processes).get(&(id as u64)) {
                (p.kill)(&signal);
            }
        })?,
    )?;

    let n = native.clone();
    o.set(
        "sleep",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, ms: f64, id: f64| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            guard(&n.timers).insert(id as u64, tx);
            let n = n.clone();
            let ms = if ms.is_finite() && ms > 0.0 { ms } else { 0.0 };
            Promise::wrap_future(&ctx, async move {
                let fired = tokio::select! {
                    _ = tokio::time::sleep(Duration::from_micros((ms * 1000.0) as u64)) => true,
                    _ = rx => false,
                };
                guard(&n.timers).remove(&(id as u64));
                fired
            })
        })?,
    )?;

    let n = native.clone();
    o.set(
        "cancelTimer",
        Function::new(ctx.clone(), move |id: f64| {
            if let Some(tx) = guard(&n.timers).remove(&(id as u64)) {
                let _ = tx.send(());
            }
        })?,
    )?;

    let n = native.clone();
    o.set(
        "now",
        Function::new(ctx.clone(), move || {
            n.started.elapsed().as_secs_f64() * 1000.0
        })?,
    )?;
    o.set(
        "epochMs",
        Function::new(ctx.clone(), || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0)
        })?,
    )?;

    install_fs(ctx, &o)?;
    install_os(ctx, &o)?;
    install_fetch(ctx, &o, native)?;

    o.set(
        "randomBytes",
        Function::new(ctx.clone(), |n: f64| {
            bytes_to_latin1(&random_bytes(n.clamp(0.0, 65536.0) as usize))
        })?,
    )?;
    o.set(
        "hash",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, algorithm: String, data: String| -> rquickjs::Result<String> {
                match algorithm.as_str() {
                    "sha256" => Ok(bytes_to_latin1(&Sha256::digest(latin1_to_bytes(&data)))),
                    other => Err(throw_error(
                        &ctx,
                        &format!("Digest method not supported: {other} (KiCI supports sha256)"),
                        None,
                    )),
                }
            },
        )?,
    )?;
    o.set(
        "hmac",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             algorithm: String,
             key: String,
             data: String|
             -> rquickjs::Result<String> {
                match algorithm.as_str() {
                    "sha256" => Ok(bytes_to_latin1(&hmac_sha256(
                        &latin1_to_bytes(&key),
                        &latin1_to_bytes(&data),
                    ))),
                    other => Err(throw_error(
                        &ctx,
                        &format!("Digest method not supported: {other} (KiCI supports sha256)"),
                        None,
                    )),
                }
            },
        )?,
    )?;

    ctx.globals().set("__kici_job", o)?;
    Ok(())
}

/// `fetch(id, method, url, [[name, value]], body?, binary?)` (a binary body as Latin-1)
/// resolves to `{status, statusText, headers, text(), bytes()}`, `{error, code}` when the request failed, or `null` once
/// `abortFetch(id)` was called (the JavaScript side rejects with the signal's reason itself).
fn install_fetch<'js>(
    ctx: &Ctx<'js>,
    o: &Object<'js>,
    native: &Arc<Native>,
) -> rquickjs::Result<()> {
    let n = native.clone();
    o.set(
        "fetch",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  id: f64,
                  method: String,
                  url: String,
                  headers: Vec<Vec<String>>,
                  body: Opt<Option<String>>,
                  binary: Opt<bool>|
                  -> rquickjs::Result<Promise<'js>> {
                let binary = binary.0.unwrap_or(false);
                let body = body.0.flatten().map(|s| {
                    if binary {
                        latin1_to_bytes(&s)
                    } else {
                        s.into_bytes()
                    }
                });
                let id = id as u64;
                let request = FetchRequest {
                    method,
                    url,
                    headers: headers
                        .into_iter()
                        .filter_map(|mut pair| {
                            let value = pair.pop()?;
                            Some((pair.pop()?, value))
                        })
                        .collect(),
                    body,
                };
                let cancel = Arc::new(AtomicBool::new(false));
                let (abort, aborted) = tokio::sync::oneshot::channel::<()>();
                let (done_tx, done) = tokio::sync::oneshot::channel();
                guard(&n.fetches).insert(
                    id,
                    InFlight {
                        abort,
                        cancel: cancel.clone(),
                    },
                );
                // A plain thread, not the blocking pool: an aborted request may still wait on
                // its socket until a timeout, and must not hold up the runtime's shutdown.
                let spawned =
                    std::thread::Builder::new()
                        .name("kici-fetch".into())
                        .spawn(move || {
                            let _ = done_tx.send(fetch::perform(request, &cancel));
                        });
                let n = n.clone();
                let c = ctx.clone();
                Promise::wrap_future(&ctx, async move {
                    let outcome = match spawned {
                        Err(e) => Some(Err(fetch::FetchError {
                            message: format!("cannot start a thread: {e}"),
                            code: None,
                        })),
                        Ok(_) => tokio::select! {
                            r = done => Some(r.unwrap_or_else(|_| Err(fetch::FetchError {
                                message: "internal: the request thread ended early".into(),
                                code: None,
                            }))),
                            _ = aborted => None,
                        },
                    };
                    guard(&n.fetches).remove(&id);
                    let Some(outcome) = outcome else {
                        return Ok(Value::new_null(c.clone()));
                    };
                    let o = Object::new(c.clone())?;
                    match outcome {
                        Ok(r) => {
                            o.set("status", r.status)?;
                            o.set("statusText", r.status_text)?;
                            let headers: Vec<Vec<String>> =
                                r.headers.into_iter().map(|(k, v)| vec![k, v]).collect();
                            o.set("headers", headers)?;
                            // The body stays in Rust until read; the closures own it, so it
                            // goes when the response object is collected.
                            let body = Arc::new(r.body);
                            let b = body.clone();
                            o.set(
                                "text",
                                Function::new(c.clone(), move || {
                                    let bytes = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&b);
                                    String::from_utf8_lossy(bytes).into_owned()
                                })?,
                            )?;
                            o.set(
                                "bytes",
                                Function::new(c.clone(), move |ctx: Ctx<'js>| {
                                    ArrayBuffer::new_copy(ctx, body.as_slice())
                                })?,
                            )?;
                        }
                        Err(e) => {
                            o.set("error", e.message)?;
                            o.set("code", e.code)?;
                        }
                    }
                    Ok::<_, rquickjs::Error>(o.into_value())
                })
            },
        )?,
    )?;

    let n = native.clone();
    o.set(
        "abortFetch",
        Function::new(ctx.clone(), move |id: f64| {
            if let Some(request) = guard(&n.fetches).remove(&(id as u64)) {
                request.cancel.store(true, Ordering::Relaxed);
                let _ = request.abort.send(());
            }
        })?,
    )?;
    Ok(())
}

fn install_fs<'js>(ctx: &Ctx<'js>, o: &Object<'js>) -> rquickjs::Result<()> {
    let fs_obj = Object::new(ctx.clone())?;
    fs_obj.set(
        "readFile",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, binary: Opt<bool>| -> rquickjs::Result<String> {
                let bytes = fs::read(&path).map_err(|e| io_error(&ctx, &e, "open", &path))?;
                Ok(if binary.0.unwrap_or(false) {
                    bytes_to_latin1(&bytes)
                } else {
                    String::from_utf8_lossy(&bytes).into_owned()
                })
            },
        )?,
    )?;
    fs_obj.set(
        "writeFile",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>,
             path: String,
             data: String,
             binary: bool,
             append: bool|
             -> rquickjs::Result<()> {
                let bytes = if binary {
                    latin1_to_bytes(&data)
                } else {
                    data.into_bytes()
                };
                let result = if append {
                    use std::io::Write;
                    fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&path)
                        .and_then(|mut f| f.write_all(&bytes))
                } else {
                    fs::write(&path, bytes)
                };
                result.map_err(|e| io_error(&ctx, &e, "open", &path))
            },
        )?,
    )?;
    fs_obj.set(
        "readdir",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String| -> rquickjs::Result<Vec<Vec<String>>> {
                let mut out = Vec::new();
                let entries =
                    fs::read_dir(&path).map_err(|e| io_error(&ctx, &e, "scandir", &path))?;
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&ctx, &e, "scandir", &path))?;
                    let kind = match entry.file_type() {
                        Ok(t) if t.is_symlink() => "symlink",
                        Ok(t) if t.is_dir() => "dir",
                        Ok(t) if t.is_file() => "file",
                        _ => "other",
                    };
                    out.push(vec![
                        entry.file_name().to_string_lossy().into_owned(),
                        kind.to_string(),
                    ]);
                }
                // Node returns directory order; sorting makes runs reproducible.
                out.sort();
                Ok(out)
            },
        )?,
    )?;
    fs_obj.set(
        "mkdir",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, recursive: bool| -> rquickjs::Result<()> {
                let r = if recursive {
                    fs::create_dir_all(&path)
                } else {
                    fs::create_dir(&path)
                };
                r.map_err(|e| io_error(&ctx, &e, "mkdir", &path))
            },
        )?,
    )?;
    fs_obj.set(
        "stat",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, follow: bool| -> rquickjs::Result<Object<'js>> {
                let meta = if follow {
                    fs::metadata(&path)
                } else {
                    fs::symlink_metadata(&path)
                }
                .map_err(|e| io_error(&ctx, &e, if follow { "stat" } else { "lstat" }, &path))?;
                let o = Object::new(ctx.clone())?;
                o.set("size", meta.len() as f64)?;
                o.set("mtimeMs", mtime_ms(&meta))?;
                o.set("mode", mode_of(&meta))?;
                o.set("kind", kind_of(&meta))?;
                Ok(o)
            },
        )?,
    )?;
    fs_obj.set(
        "exists",
        Function::new(ctx.clone(), |path: String| Path::new(&path).exists())?,
    )?;
    fs_obj.set(
        "rm",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, recursive: bool, force: bool| -> rquickjs::Result<()> {
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(e) if force && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(io_error(&ctx, &e, "rm", &path)),
                };
                let r = if meta.is_dir() {
                    if recursive {
                        fs::remove_dir_all(&path)
                    } else {
                        return Err(throw_error(
                            &ctx,
                            &format!(
                                "Path is a directory: rm returned EISDIR (is a directory) {path}"
                            ),
                            Some("ERR_FS_EISDIR"),
                        ));
                    }
                } else {
                    fs::remove_file(&path)
                };
                r.map_err(|e| io_error(&ctx, &e, "rm", &path))
            },
        )?,
    )?;
    fs_obj.set(
        "unlink",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String| -> rquickjs::Result<()> {
                fs::remove_file(&path).map_err(|e| io_error(&ctx, &e, "unlink", &path))
            },
        )?,
    )?;
    fs_obj.set(
        "rmdir",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String| -> rquickjs::Result<()> {
                fs::remove_dir(&path).map_err(|e| io_error(&ctx, &e, "rmdir", &path))
            },
        )?,
    )?;
    fs_obj.set(
        "copyFile",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, from: String, to: String| -> rquickjs::Result<()> {
                fs::copy(&from, &to)
                    .map(|_| ())
                    .map_err(|e| io_error(&ctx, &e, "copyfile", &from))
            },
        )?,
    )?;
    fs_obj.set(
        "rename",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, from: String, to: String| -> rquickjs::Result<()> {
                fs::rename(&from, &to).map_err(|e| io_error(&ctx, &e, "rename", &from))
            },
        )?,
    )?;
    fs_obj.set(
        "mkdtemp",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, prefix: String| -> rquickjs::Result<String> {
                for _ in 0..16 {
                    let suffix: String = random_bytes(6)
                        .iter()
                        .map(|b| {
                            let chars =
                                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                            chars[*b as usize % chars.len()] as char
                        })
                        .collect();
                    let candidate = format!("{prefix}{suffix}");
                    match fs::create_dir(&candidate) {
                        Ok(()) => return Ok(candidate),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(io_error(&ctx, &e, "mkdtemp", &prefix)),
                    }
                }
                Err(throw_error(
                    &ctx,
                    "mkdtemp: no unique name found",
                    Some("EEXIST"),
                ))
            },
        )?,
    )?;
    fs_obj.set(
        "realpath",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String| -> rquickjs::Result<String> {
                fs::canonicalize(&path)
                    .map(|p| p.to_string_lossy().into_owned())
                    .map_err(|e| io_error(&ctx, &e, "realpath", &path))
            },
        )?,
    )?;
    fs_obj.set(
        "chmod",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String, mode: f64| -> rquickjs::Result<()> {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&path, fs::Permissions::from_mode(mode as u32))
                        .map_err(|e| io_error(&ctx, &e, "chmod", &path))
                }
                #[cfg(not(unix))]
                {
                    let _ = (ctx, path, mode);
                    Ok(())
                }
            },
        )?,
    )?;
    fs_obj.set(
        "access",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, path: String| -> rquickjs::Result<()> {
                fs::symlink_metadata(&path)
                    .map(|_| ())
                    .map_err(|e| io_error(&ctx, &e, "access", &path))
            },
        )?,
    )?;
    o.set("fs", fs_obj)
}

fn install_os<'js>(ctx: &Ctx<'js>, o: &Object<'js>) -> rquickjs::Result<()> {
    let os = Object::new(ctx.clone())?;
    let hostname = read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| read_trimmed("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    os.set("hostname", hostname)?;
    os.set(
        "homedir",
        std::env::var("HOME").unwrap_or_else(|_| "/".to_string()),
    )?;
    os.set(
        "tmpdir",
        std::env::var("TMPDIR")
            .ok()
            .map(|t| t.trim_end_matches('/').to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "/tmp".to_string()),
    )?;
    os.set(
        "cpus",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64,
    )?;
    os.set(
        "release",
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
    )?;
    os.set(
        "type",
        match std::env::consts::OS {
            "macos" => "Darwin",
            "linux" => "Linux",
            other => other,
        },
    )?;
    os.set("pid", std::process::id() as f64)?;
    o.set("os", os)
}
