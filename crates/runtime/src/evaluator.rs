//! One QuickJS runtime that loads workflow entry files and lowers their workflows to lock form.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::{
    Array, Context, Ctx, Error as JsError, Function, Module, Object, Promise, Runtime, Value,
};

use crate::modules::{self, Registry, SharedRegistry, WorkflowLoader, WorkflowResolver};
use crate::stack::{self, Anchor, describe_thrown, first_user_frame, map_stack};
use crate::{LoadError, LoadErrorKind, SourcePosition, purity, sdk, shims};

/// Settings of one evaluator.
#[derive(Debug, Clone)]
pub struct EvaluatorOptions {
    /// Root of the repository; module paths in the lock are relative to it.
    pub git_root: PathBuf,
    /// QuickJS heap limit.
    pub memory_limit_bytes: usize,
    /// QuickJS stack limit.
    pub stack_limit_bytes: usize,
    /// How long loading one entry file (with its imports and top-level await) may take.
    pub load_timeout: Duration,
    /// What `process.env` shows to module top-level code.
    pub env: Vec<(String, String)>,
}

impl EvaluatorOptions {
    pub fn new(git_root: &Path) -> Self {
        Self {
            git_root: git_root.to_path_buf(),
            memory_limit_bytes: 256 << 20,
            stack_limit_bytes: 1 << 20,
            load_timeout: Duration::from_secs(10),
            env: Vec::new(),
        }
    }
}

/// One workflow of an entry file, lowered to its lock form by the SDK.
#[derive(Debug, Clone)]
pub struct LoweredWorkflow {
    /// `#default`, `#default[<i>]` or `#<exportName>`.
    pub export: String,
    /// The `LockWorkflow` object, keys in emission order, `contentHash` still a placeholder.
    pub lock: serde_json::Value,
    /// The author's `hashFiles` globs, if any.
    pub hash_files: Option<Vec<String>>,
    /// `[kici] ...` warnings produced while lowering.
    pub warnings: Vec<String>,
    /// Configuration errors the SDK found while lowering, as (code, message): E105.
    pub errors: Vec<(String, String)>,
    /// Where `workflow()` was called.
    pub workflow_site: Option<SourcePosition>,
    /// Where each static job was declared, by job name, in declaration order (a name
    /// declared twice has two sites).
    pub job_sites: Vec<(String, Vec<SourcePosition>)>,
}

/// Everything the compiler needs from one entry file.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub workflows: Vec<LoweredWorkflow>,
    /// Local modules the entry file imports, transitively, relative to the git root, sorted.
    pub import_closure: Vec<String>,
    /// Loader warnings (W004) and console output of module top-level code, in order.
    pub messages: Vec<String>,
}

pub struct Evaluator {
    // Field order matters: the context must be dropped before its runtime.
    context: Context,
    runtime: Runtime,
    registry: SharedRegistry,
    deadline: Arc<Mutex<Option<Instant>>>,
    console: Arc<Mutex<Vec<String>>>,
    options: EvaluatorOptions,
}

impl Evaluator {
    pub fn new(options: EvaluatorOptions) -> Result<Self, LoadError> {
        let engine_error = |e: JsError| LoadError {
            kind: LoadErrorKind::Throw,
            message: format!("cannot start the JavaScript engine: {e}"),
            position: None,
            stack: None,
        };
        let runtime = Runtime::new().map_err(engine_error)?;
        runtime.set_memory_limit(options.memory_limit_bytes);
        runtime.set_max_stack_size(options.stack_limit_bytes);
        let registry: SharedRegistry = Arc::new(Mutex::new(Registry {
            git_root: options.git_root.clone(),
            ..Registry::default()
        }));
        runtime.set_loader(
            WorkflowResolver(registry.clone()),
            WorkflowLoader(registry.clone()),
        );
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let interrupt_deadline = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            interrupt_deadline
                .lock()
                .map(|d| d.is_some_and(|d| Instant::now() >= d))
                .unwrap_or(false)
        })));
        let context = Context::full(&runtime).map_err(engine_error)?;
        let evaluator = Self {
            context,
            runtime,
            registry,
            deadline,
            console: Arc::new(Mutex::new(Vec::new())),
            options,
        };
        evaluator.install_host().map_err(engine_error)?;
        Ok(evaluator)
    }

    /// Loads `.kici/workflows/<file>` (path relative to the git root), collects its workflow
    /// exports and lowers each of them.
    pub fn load_workflow_file(&self, relative: &str) -> Result<LoadedFile, LoadError> {
        let absolute = self
            .options
            .git_root
            .join(relative)
            .to_string_lossy()
            .into_owned();
        self.set_deadline(Some(Instant::now() + self.options.load_timeout));
        let result = self.context.with(|ctx| -> Result<LoadedFile, LoadError> {
            let namespace: Object = Module::import(&ctx, absolute.clone())
                .and_then(|p: Promise| p.finish())
                .map_err(|e| self.load_error(&ctx, e, LoadErrorKind::Throw))?;
            let compile: Object = Module::import(&ctx, sdk::COMPILE_MODULE)
                .and_then(|p: Promise| p.finish())
                .map_err(|e| self.load_error(&ctx, e, LoadErrorKind::Throw))?;
            let lowered = self
                .lower_all(&ctx, &compile, namespace, relative)
                .map_err(|e| self.load_error(&ctx, e, LoadErrorKind::Lowering))?;
            let import_closure = modules::lock(&self.registry).import_closure(&absolute);
            let messages = self.drain_messages();
            Ok(LoadedFile {
                workflows: lowered,
                import_closure,
                messages,
            })
        });
        self.set_deadline(None);
        result
    }

    fn lower_all<'js>(
        &self,
        ctx: &Ctx<'js>,
        compile: &Object<'js>,
        namespace: Object<'js>,
        relative: &str,
    ) -> rquickjs::Result<Vec<LoweredWorkflow>> {
        let collect: Function = compile.get("collect")?;
        let lower: Function = compile.get("lower")?;
        let hash_files_of: Function = compile.get("hashFilesOf")?;
        let collected: Array = collect.call((namespace,))?;
        let mut lowered = Vec::with_capacity(collected.len());
        for entry in collected.iter::<Object>() {
            let entry = entry?;
            let export: String = entry.get("export")?;
            let workflow: Value = entry.get("workflow")?;
            let source = Object::new(ctx.clone())?;
            source.set("file", relative)?;
            source.set("export", export.as_str())?;
            let result: Object = lower.call((workflow.clone(), source))?;
            let lock_value: Value = result.get("workflow")?;
            let warnings: Vec<String> = result
                .get::<_, Option<Vec<String>>>("warnings")?
                .unwrap_or_default();
            let hash_files: Option<Vec<String>> = hash_files_of.call((workflow,))?;
            let mut errors = Vec::new();
            if let Some(found) = result.get::<_, Option<Vec<Object>>>("diagnostics")? {
                for diagnostic in found {
                    errors.push((diagnostic.get("code")?, diagnostic.get("message")?));
                }
            }
            let json = ctx
                .json_stringify(lock_value)?
                .map(|s| s.to_string())
                .transpose()?
                .unwrap_or_else(|| "null".to_string());
            let lock = serde_json::from_str(&json).map_err(|e| {
                rquickjs::Exception::throw_internal(
                    ctx,
                    &format!("lowered workflow is not JSON: {e}"),
                )
            })?;
            let (workflow_site, job_sites) = read_locations(&result)?;
            lowered.push(LoweredWorkflow {
                export,
                lock,
                hash_files,
                warnings,
                errors,
                workflow_site,
                job_sites,
            });
        }
        Ok(lowered)
    }

    fn set_deadline(&self, deadline: Option<Instant>) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = deadline;
        }
    }

    fn deadline_passed(&self) -> bool {
        self.deadline
            .lock()
            .map(|d| d.is_some_and(|d| Instant::now() >= d))
            .unwrap_or(false)
    }

    fn drain_messages(&self) -> Vec<String> {
        let mut messages = std::mem::take(&mut modules::lock(&self.registry).warnings);
        if let Ok(mut console) = self.console.lock() {
            messages.append(&mut console);
        }
        messages
    }

    /// Turns an rquickjs error into a [`LoadError`], preferring what the loader recorded (it
    /// knows the file and position) over QuickJS's generic module errors.
    fn load_error(&self, ctx: &Ctx<'_>, error: JsError, default_kind: LoadErrorKind) -> LoadError {
        // Always take the pending exception, even when the loader's own record wins: a
        // leftover exception would be reported again by the next file's load.
        let thrown = if matches!(error, JsError::Exception) {
            Some(ctx.catch())
        } else {
            None
        };
        if let Some(mut failure) = modules::lock(&self.registry).failure.take() {
            if matches!(failure.kind, LoadErrorKind::Import) {
                locate_import_statement(&self.options.git_root, &mut failure);
                locate_invalid_utf8(&self.options.git_root, &mut failure);
            }
            return failure;
        }
        let timeout = self.deadline_passed();
        let (message, stack) = match &thrown {
            Some(value) => describe_thrown(value),
            None => (error.to_string(), None),
        };
        if timeout {
            return LoadError {
                kind: LoadErrorKind::Timeout,
                message: format!(
                    "workflow code did not finish loading within {} s (an endless loop at module top level?)",
                    self.options.load_timeout.as_secs_f64()
                ),
                position: None,
                stack: None,
            };
        }
        if message.contains("out of memory") {
            return LoadError {
                kind: LoadErrorKind::OutOfMemory,
                message: format!(
                    "workflow code exceeded the memory limit of {} MiB",
                    self.options.memory_limit_bytes >> 20
                ),
                position: None,
                stack: None,
            };
        }
        if matches!(error, JsError::WouldBlock) {
            return LoadError {
                kind: default_kind,
                message: "module top-level await never settled".to_string(),
                position: None,
                stack: None,
            };
        }
        // QuickJS rejects a few things oxc accepts (decorators, invalid regex literals): a
        // SyntaxError raised while compiling a module is a syntax error (E002), not a throw.
        let (kind, message) = match message.strip_prefix("SyntaxError: ") {
            Some(rest) if is_compile_time(stack.as_deref()) => {
                (LoadErrorKind::Syntax, rest.to_string())
            }
            _ => (default_kind, message),
        };
        let registry = modules::lock(&self.registry);
        let mapped_stack = stack
            .as_deref()
            .map(|s| map_stack(&registry, s, Anchor::Callee));
        let position = stack
            .as_deref()
            .and_then(|s| first_user_frame(&registry, s, Anchor::Callee));
        LoadError {
            kind,
            message,
            position,
            stack: mapped_stack,
        }
    }

    fn install_host(&self) -> rquickjs::Result<()> {
        self.context.with(|ctx| install_host(&ctx, self))
    }

    /// Bytes the JavaScript heap uses now (for benchmarks and diagnostics).
    pub fn heap_bytes(&self) -> i64 {
        self.runtime.memory_usage().malloc_size
    }
}

type Sites = (Option<SourcePosition>, Vec<(String, Vec<SourcePosition>)>);

/// The `locations` side channel of `lower()`: call sites of `workflow()` and `job()`.
fn read_locations(result: &Object<'_>) -> rquickjs::Result<Sites> {
    let Some(locations) = result.get::<_, Option<Object>>("locations")? else {
        return Ok((None, Vec::new()));
    };
    let site = |o: &Object<'_>| -> rquickjs::Result<SourcePosition> {
        Ok(SourcePosition {
            file: o.get("file")?,
            line: o.get("line")?,
            column: o.get("column")?,
        })
    };
    let workflow_site = match locations.get::<_, Option<Object>>("workflow")? {
        Some(o) => Some(site(&o)?),
        None => None,
    };
    let mut job_sites = Vec::new();
    if let Some(jobs) = locations.get::<_, Option<Object>>("jobs")? {
        for entry in jobs.props::<String, Vec<Object>>() {
            let (name, sites) = entry?;
            let sites = sites
                .iter()
                .map(site)
                .collect::<rquickjs::Result<Vec<_>>>()?;
            job_sites.push((name, sites));
        }
    }
    Ok((workflow_site, job_sites))
}

/// The resolver knows which module imported a specifier but not where: point an import error
/// that sits at 1:1 of the importer at the first line of the importer that names the
/// specifier in quotes (validation.md §1.3: "import errors point at the import statement").
fn locate_import_statement(git_root: &Path, failure: &mut LoadError) {
    let Some(position) = failure.position.as_mut() else {
        return;
    };
    if (position.line, position.column) != (1, 1) {
        return;
    }
    const PREFIXES: [&str; 4] = [
        "Cannot find module \"",
        "Cannot import \"",
        "Module \"",
        "Import \"",
    ];
    let Some(specifier) = PREFIXES
        .iter()
        .find_map(|p| failure.message.strip_prefix(p))
        .and_then(|rest| rest.split_once('"'))
        .map(|(specifier, _)| specifier)
    else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(git_root.join(&position.file)) else {
        return;
    };
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") || trimmed.starts_with('*') {
            continue;
        }
        let found = ['"', '\'', '`'].iter().find_map(|quote| {
            let needle = format!("{quote}{specifier}{quote}");
            line.find(&needle)
        });
        if let Some(byte) = found {
            position.line = u32::try_from(index + 1).unwrap_or(u32::MAX);
            position.column = u32::try_from(line[..byte].chars().count() + 1).unwrap_or(1);
            return;
        }
    }
}

/// "<file> is not valid UTF-8": point at the first invalid byte instead of 1:1.
fn locate_invalid_utf8(git_root: &Path, failure: &mut LoadError) {
    let Some(position) = failure.position.as_mut() else {
        return;
    };
    if !failure.message.ends_with("is not valid UTF-8") {
        return;
    }
    let Ok(bytes) = std::fs::read(git_root.join(&position.file)) else {
        return;
    };
    let Err(error) = std::str::from_utf8(&bytes) else {
        return;
    };
    let valid = &bytes[..error.valid_up_to()];
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count()
        + 1;
    position.line = u32::try_from(line).unwrap_or(u32::MAX);
    position.column = u32::try_from(column).unwrap_or(u32::MAX);
}

/// Whether an error's stack says it was raised by the parser rather than by running code:
/// parse errors carry at most bare `at <module>:<line>:<col>` frames, while anything raised
/// at run time has a function frame (`at <anonymous> (…)`) or comes from `eval`/`Function`
/// source (`at <input>:…`).
fn is_compile_time(stack: Option<&str>) -> bool {
    stack.unwrap_or("").lines().all(|line| {
        let frame = line.trim();
        frame.is_empty() || (!frame.contains(" (") && !frame.starts_with("at <"))
    })
}

fn install_host<'js>(ctx: &Ctx<'js>, evaluator: &Evaluator) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set(
        "location",
        stack::location_function(ctx, evaluator.registry.clone(), Anchor::Callee)?,
    )?;
    host.set(
        "purity",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, source: String| -> rquickjs::Result<Object<'js>> {
                let o = Object::new(ctx)?;
                match purity::check(&source) {
                    Ok(()) => o.set("pure", true)?,
                    Err(reason) => {
                        o.set("pure", false)?;
                        o.set("reason", reason)?;
                    }
                }
                Ok(o)
            },
        )?,
    )?;
    let console = evaluator.console.clone();
    host.set(
        "print",
        Function::new(ctx.clone(), move |level: String, text: String| {
            if let Ok(mut console) = console.lock() {
                let prefix = match level.as_str() {
                    "warn" => "warn: ",
                    "error" => "error: ",
                    _ => "",
                };
                console.push(format!("{prefix}{text}"));
            }
        })?,
    )?;
    shims::set_process_facts(
        ctx,
        &host,
        evaluator.options.env.clone(),
        evaluator.options.git_root.to_string_lossy().into_owned(),
    )?;
    ctx.globals().set("__kici_host", host)?;
    ctx.eval::<(), _>(shims::GLOBALS_JS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{locate, parse_frame};

    fn evaluator_for(files: &[(&str, &str)]) -> (tempfile::TempDir, Evaluator) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        let evaluator = Evaluator::new(EvaluatorOptions::new(dir.path())).expect("evaluator");
        (dir, evaluator)
    }

    /// Imports `relative` and returns its export `name` as a string.
    fn export_string(
        evaluator: &Evaluator,
        relative: &str,
        name: &str,
    ) -> Result<String, LoadError> {
        let absolute = evaluator
            .options
            .git_root
            .join(relative)
            .to_string_lossy()
            .into_owned();
        evaluator.context.with(|ctx| {
            let ns: Object = Module::import(&ctx, absolute)
                .and_then(|p: Promise| p.finish())
                .map_err(|e| evaluator.load_error(&ctx, e, LoadErrorKind::Throw))?;
            ns.get::<_, String>(name)
                .map_err(|e| evaluator.load_error(&ctx, e, LoadErrorKind::Throw))
        })
    }

    #[test]
    fn stack_positions_map_to_the_callee_in_the_ts_source() {
        let source = "// a comment\n\ninterface X { a: number }\nconst o = {\n  step(x: number): string { return new Error('e').stack ?? ''; },\n};\n\n/* block */\nexport const s: string =   o.step(1 as number);\n";
        let (_dir, evaluator) = evaluator_for(&[("w.ts", source)]);
        let stack = export_string(&evaluator, "w.ts", "s").expect("loads");
        let registry = modules::lock(&evaluator.registry);
        let frames: Vec<_> = stack.lines().filter_map(parse_frame).collect();
        let caller = frames.get(1).expect("two frames");
        let mapped =
            locate(&registry, caller.0, caller.1, Some("step"), Anchor::Callee).expect("mapped");
        assert_eq!(
            (mapped.file.as_str(), mapped.line, mapped.column),
            ("w.ts", 9, 30),
            "{stack}"
        );
    }

    #[test]
    fn bare_package_import_is_a_clear_error() {
        let (_dir, evaluator) = evaluator_for(&[(
            "w.ts",
            "import _ from 'lodash';\nexport const s = String(_);\n",
        )]);
        let error = export_string(&evaluator, "w.ts", "s").expect_err("fails");
        assert_eq!(error.kind, LoadErrorKind::Import);
        assert!(
            error
                .message
                .contains("Cannot import \"lodash\": npm packages are not supported"),
            "{error:?}"
        );
        assert_eq!(error.position.map(|p| p.file), Some("w.ts".to_string()));
    }

    #[test]
    fn fetch_is_refused_while_compiling() {
        let (_dir, evaluator) = evaluator_for(&[(
            "w.ts",
            "let m = 'no throw';\ntry { fetch('http://127.0.0.1:9/'); } catch (e) { m = `${e.name}: ${e.message}`; }\nexport const s = m;\n",
        )]);
        let message = export_string(&evaluator, "w.ts", "s").expect("loads");
        assert_eq!(
            message,
            "TypeError: fetch is not available while compiling workflows; call it inside a step"
        );
    }

    #[test]
    fn endless_loop_at_top_level_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("w.ts"),
            "while (true) {}\nexport const s = 'x';\n",
        )
        .expect("write");
        let mut options = EvaluatorOptions::new(dir.path());
        options.load_timeout = Duration::from_millis(200);
        let evaluator = Evaluator::new(options).expect("evaluator");
        let absolute = dir.path().join("w.ts").to_string_lossy().into_owned();
        evaluator.set_deadline(Some(Instant::now() + Duration::from_millis(200)));
        let error = evaluator.context.with(|ctx| {
            Module::import(&ctx, absolute)
                .and_then(|p: Promise| p.finish::<Object>())
                .map(|_| ())
                .map_err(|e| evaluator.load_error(&ctx, e, LoadErrorKind::Throw))
        });
        assert_eq!(error.expect_err("times out").kind, LoadErrorKind::Timeout);
    }

    #[test]
    fn syntax_errors_carry_the_original_position() {
        let (_dir, evaluator) = evaluator_for(&[("w.ts", "const a: number = 1;\nlet x = (;\n")]);
        let error = export_string(&evaluator, "w.ts", "s").expect_err("fails");
        assert_eq!(error.kind, LoadErrorKind::Syntax);
        let position = error.position.expect("position");
        assert_eq!(
            (position.line, position.column),
            (2, 10),
            "{}",
            error.message
        );
    }
}
