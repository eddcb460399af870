//! Module resolution and loading for workflow code (spec/sdk.md §1.3).
//!
//! One module instance per resolved absolute path per runtime. Every module that was loaded
//! is kept in the [`Registry`] with its position map and its imports, so that stack positions
//! can be mapped back to the `.ts` source and so that the compiler can hash the import closure.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Error as JsError, Module};

use crate::shims;
use crate::strip::{self, Position, Stripped};
use crate::{LoadError, LoadErrorKind, SourcePosition, sdk};

/// Node built-ins for which we ship a shim (sdk.md §19).
const SHIMMED_BUILTINS: &[&str] = &[
    "fs",
    "fs/promises",
    "path",
    "path/posix",
    "os",
    "url",
    "process",
    "crypto",
    "timers",
    "timers/promises",
    "util",
    "buffer",
];

/// Node built-ins that exist in Node but not in KiCI workflows, with a hint.
const UNAVAILABLE_BUILTINS: &[(&str, &str)] = &[
    ("child_process", "run commands with ctx.$"),
    ("http", "use the global fetch()"),
    ("https", "use the global fetch()"),
    ("http2", "use the global fetch()"),
    ("net", ""),
    ("tls", ""),
    ("dgram", ""),
    ("dns", ""),
    ("stream", ""),
    ("stream/promises", ""),
    ("worker_threads", ""),
    ("cluster", ""),
    ("vm", ""),
    ("zlib", ""),
    ("readline", ""),
    ("events", ""),
    ("assert", ""),
    ("module", ""),
    ("perf_hooks", ""),
    ("v8", ""),
    ("tty", ""),
    ("inspector", ""),
    ("async_hooks", ""),
    ("string_decoder", ""),
    ("querystring", ""),
];

/// What the runtime knows about one loaded user module.
pub(crate) struct LoadedModule {
    /// Path relative to the git root, POSIX separators.
    pub relative: String,
    /// Position map; `None` for plain `.js`/`.json` modules, which run as written.
    pub stripped: Option<Stripped>,
    /// Absolute paths of the local modules this one imports.
    pub imports: BTreeSet<String>,
}

/// Shared state of resolver, loader and host functions of one runtime.
#[derive(Default)]
pub(crate) struct Registry {
    pub git_root: PathBuf,
    pub modules: HashMap<String, LoadedModule>,
    /// The first resolution or load failure, reported instead of QuickJS's generic message.
    pub failure: Option<LoadError>,
    /// Warnings such as W004 (extensionless import), in the order they happened.
    pub warnings: Vec<String>,
    /// A job runtime: Node built-ins get their working implementations.
    pub job: bool,
}

pub(crate) type SharedRegistry = Arc<Mutex<Registry>>;

pub(crate) fn lock(registry: &SharedRegistry) -> MutexGuard<'_, Registry> {
    // A panic while holding the lock cannot leave the registry half-updated in a way that
    // matters for error reporting, so a poisoned lock is still usable.
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// The import closure of `entry` (absolute path), excluding `entry` itself, as paths
    /// relative to the git root.
    pub fn import_closure(&self, entry: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![entry.to_string()];
        while let Some(current) = stack.pop() {
            if let Some(module) = self.modules.get(&current) {
                for dep in &module.imports {
                    if dep != entry && seen.insert(dep.clone()) {
                        stack.push(dep.clone());
                    }
                }
            }
        }
        let mut relative: Vec<String> = seen
            .iter()
            .filter_map(|abs| self.modules.get(abs).map(|m| m.relative.clone()))
            .collect();
        relative.sort();
        relative
    }

    fn fail(&mut self, error: LoadError) {
        if self.failure.is_none() {
            self.failure = Some(error);
        }
    }
}

pub(crate) struct WorkflowResolver(pub SharedRegistry);
pub(crate) struct WorkflowLoader(pub SharedRegistry);

impl Resolver for WorkflowResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        let mut registry = lock(&self.0);
        match resolve(&mut registry, base, name) {
            Ok(resolved) => {
                if let Some(importer) = registry.modules.get_mut(base)
                    && resolved.starts_with('/')
                {
                    importer.imports.insert(resolved.clone());
                }
                Ok(resolved)
            }
            Err(message) => {
                let importer = registry.modules.get(base).map(|m| m.relative.clone());
                registry.fail(LoadError {
                    kind: LoadErrorKind::Import,
                    message: message.clone(),
                    position: importer.map(SourcePosition::start_of),
                    stack: None,
                });
                Err(JsError::new_resolving_message(base, name, message))
            }
        }
    }
}

fn resolve(registry: &mut Registry, base: &str, name: &str) -> Result<String, String> {
    if name == "@kici-dev/sdk" || name == "kici:sdk" {
        return Ok(sdk::SDK_MODULE.to_string());
    }
    if sdk::is_internal_module(name) {
        return Ok(name.to_string());
    }
    let builtin = name.strip_prefix("node:").unwrap_or(name);
    if SHIMMED_BUILTINS.contains(&builtin) {
        return Ok(format!("node:{builtin}"));
    }
    if let Some((_, hint)) = UNAVAILABLE_BUILTINS.iter().find(|(b, _)| *b == builtin) {
        let mut message = format!("Module \"{name}\" is not available in KiCI workflows");
        if !hint.is_empty() {
            message.push_str(&format!(" ({hint})"));
        }
        return Err(message);
    }
    let is_path = name.starts_with("./")
        || name.starts_with("../")
        || name.starts_with('/')
        || name.starts_with("file://");
    if !is_path {
        // The host imports entry files and our own modules by absolute path or `kici:` name;
        // everything else is a package import that we cannot satisfy.
        let hint = if name == "zod" {
            " Hint: use: import { z } from \"@kici-dev/sdk\""
        } else {
            ""
        };
        return Err(format!(
            "Cannot import \"{name}\": npm packages are not supported in KiCI workflows (no node_modules resolution). Import from \"@kici-dev/sdk\" or a relative file.{hint}"
        ));
    }
    let raw = name.strip_prefix("file://").unwrap_or(name);
    let joined = if raw.starts_with('/') {
        PathBuf::from(raw)
    } else {
        let base_dir = Path::new(base).parent().unwrap_or(Path::new("/"));
        base_dir.join(raw)
    };
    let candidate = normalize(&joined);
    let importer = registry
        .modules
        .get(base)
        .map(|m| m.relative.clone())
        .unwrap_or_default();
    let found = find_file(&candidate)
        .ok_or_else(|| format!("Cannot find module \"{name}\" imported from {importer}"))?;
    if !found.starts_with(&registry.git_root) {
        return Err(format!("Import \"{name}\" resolves outside the repository"));
    }
    if found
        .extension()
        .is_none_or(|e| e != candidate.extension().unwrap_or_default())
        && candidate.extension().is_none()
    {
        registry.warnings.push(format!(
            "[kici] W004: extensionless import \"{name}\" in {importer} resolved to {}",
            relative_to(&registry.git_root, &found)
        ));
    }
    Ok(found.to_string_lossy().into_owned())
}

fn find_file(candidate: &Path) -> Option<PathBuf> {
    let ext = candidate.extension().and_then(|e| e.to_str());
    let is_file = |p: &Path| p.is_file();
    match ext {
        Some("ts" | "mts" | "json") if is_file(candidate) => Some(candidate.to_path_buf()),
        Some("js") => {
            let ts = candidate.with_extension("ts");
            if is_file(candidate) {
                Some(candidate.to_path_buf())
            } else if is_file(&ts) {
                Some(ts)
            } else {
                None
            }
        }
        Some("mjs") => {
            let mts = candidate.with_extension("mts");
            if is_file(candidate) {
                Some(candidate.to_path_buf())
            } else if is_file(&mts) {
                Some(mts)
            } else {
                None
            }
        }
        _ => {
            let base = candidate.to_string_lossy();
            ["ts", "mts", "js", "mjs"]
                .iter()
                .map(|e| PathBuf::from(format!("{base}.{e}")))
                .chain(["index.ts", "index.js"].iter().map(|f| candidate.join(f)))
                .find(|p| is_file(p))
        }
    }
}

/// Lexical normalisation (no symlink resolution): `a/./b/../c` → `a/c`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(crate) fn relative_to(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Loader for WorkflowLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        if let Some(source) = sdk::module_source(name) {
            return Module::declare(ctx.clone(), name, source);
        }
        if let Some(builtin) = name.strip_prefix("node:") {
            let job = lock(&self.0).job;
            return Module::declare(ctx.clone(), name, shims::module_source(builtin, job));
        }
        let path = PathBuf::from(name);
        let mut registry = lock(&self.0);
        let relative = relative_to(&registry.git_root, &path);
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    registry.fail(LoadError {
                        kind: LoadErrorKind::Import,
                        message: format!("{relative} is not valid UTF-8"),
                        position: Some(SourcePosition::start_of(relative.clone())),
                        stack: None,
                    });
                    return Err(JsError::new_loading(name));
                }
            },
            Err(e) => {
                registry.fail(LoadError {
                    kind: LoadErrorKind::Import,
                    message: format!("cannot read {relative}: {e}"),
                    position: Some(SourcePosition::start_of(relative.clone())),
                    stack: None,
                });
                return Err(JsError::new_loading(name));
            }
        };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (code, stripped) = match ext {
            "json" => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(value) => (format!("export default {value};"), None),
                Err(e) => {
                    registry.fail(LoadError {
                        kind: LoadErrorKind::Import,
                        message: format!("invalid JSON in {relative}: {e}"),
                        position: Some(SourcePosition {
                            file: relative.clone(),
                            line: e.line() as u32,
                            column: e.column() as u32,
                        }),
                        stack: None,
                    });
                    return Err(JsError::new_loading(name));
                }
            },
            "js" | "mjs" => (text, None),
            _ => match strip::strip(&path, &text) {
                Ok(stripped) => (stripped.code.clone(), Some(stripped)),
                Err(errors) => {
                    let first = errors.into_iter().next();
                    let (message, position) = match first {
                        Some(e) => (e.message, e.position),
                        None => ("syntax error".to_string(), Position { line: 1, column: 1 }),
                    };
                    registry.fail(LoadError {
                        kind: LoadErrorKind::Syntax,
                        message,
                        position: Some(SourcePosition {
                            file: relative.clone(),
                            line: position.line,
                            column: position.column,
                        }),
                        stack: None,
                    });
                    return Err(JsError::new_loading(name));
                }
            },
        };
        registry.modules.insert(
            name.to_string(),
            LoadedModule {
                relative,
                stripped,
                imports: BTreeSet::new(),
            },
        );
        drop(registry);
        Module::declare(ctx.clone(), name, code)
    }
}
