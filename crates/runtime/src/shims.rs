//! Node built-in modules that workflow code may import (spec/sdk.md §19).
//!
//! `path` is complete. The members of the other modules exist, so that importing them links,
//! but at compile time they throw: module top-level code runs on every machine that loads the
//! workflow and must not do IO. In a job runtime the same exports are bound to the working
//! implementations of `shims/runtime.js` (`globalThis.__kici_node`).

const PATH_JS: &str = include_str!("../shims/path.js");
pub(crate) const GLOBALS_JS: &str = include_str!("../shims/globals.js");
/// Job-runtime globals and Node modules; evaluated after [`GLOBALS_JS`] in job runtimes only.
pub(crate) const RUNTIME_JS: &str = include_str!("../shims/runtime.js");

/// Members of each shimmed module, as sdk.md §19 lists them.
const MEMBERS: &[(&str, &[&str])] = &[
    (
        "fs/promises",
        &[
            "readFile",
            "writeFile",
            "appendFile",
            "readdir",
            "mkdir",
            "stat",
            "lstat",
            "rm",
            "unlink",
            "rmdir",
            "access",
            "copyFile",
            "rename",
            "mkdtemp",
            "realpath",
            "chmod",
        ],
    ),
    (
        "fs",
        &[
            "readFileSync",
            "writeFileSync",
            "appendFileSync",
            "existsSync",
            "mkdirSync",
            "readdirSync",
            "statSync",
            "lstatSync",
            "rmSync",
            "unlinkSync",
            "copyFileSync",
            "renameSync",
            "chmodSync",
        ],
    ),
    (
        "os",
        &[
            "tmpdir",
            "homedir",
            "platform",
            "arch",
            "cpus",
            "availableParallelism",
            "hostname",
            "type",
            "release",
        ],
    ),
    (
        "url",
        &["fileURLToPath", "pathToFileURL", "URL", "URLSearchParams"],
    ),
    (
        "crypto",
        &[
            "randomUUID",
            "randomBytes",
            "createHash",
            "createHmac",
            "getRandomValues",
            "webcrypto",
        ],
    ),
    (
        "timers",
        &[
            "setTimeout",
            "clearTimeout",
            "setInterval",
            "clearInterval",
            "setImmediate",
        ],
    ),
    ("timers/promises", &["setTimeout", "setImmediate"]),
    ("util", &["format", "inspect", "promisify", "types"]),
    ("buffer", &["Buffer", "atob", "btoa"]),
];

/// JavaScript source of the module `node:<builtin>`; `job` selects the working versions.
pub(crate) fn module_source(builtin: &str, job: bool) -> String {
    match builtin {
        "path" | "path/posix" => PATH_JS.to_string(),
        "process" => {
            "const p = globalThis.process;\nexport default p;\nexport const env = p.env;\n\
                      export const cwd = p.cwd;\nexport const platform = p.platform;\n\
                      export const arch = p.arch;\nexport const argv = p.argv;\n"
                .to_string()
        }
        other if job => job_module(other),
        other => unavailable_module(other),
    }
}

fn members_of(builtin: &str) -> Vec<&'static str> {
    let mut members: Vec<&'static str> = MEMBERS
        .iter()
        .find(|(name, _)| *name == builtin)
        .map(|(_, m)| m.to_vec())
        .unwrap_or_default();
    match builtin {
        "fs" => members.extend(["promises", "constants"]),
        "fs/promises" => members.push("constants"),
        "os" => members.push("EOL"),
        _ => {}
    }
    members
}

/// Re-exports `globalThis.__kici_node[<builtin>]`; the default export rejects members we do
/// not provide with the error sdk.md §19 specifies.
fn job_module(builtin: &str) -> String {
    let mut source = format!(
        "const m = globalThis.__kici_node[{builtin:?}];\n\
         export default new Proxy(m, {{ get(t, p) {{\n\
           if (typeof p === 'symbol' || p in t || p === 'then' || p === 'default') return t[p];\n\
           throw new TypeError(`{builtin}.${{p}} is not supported in KiCI workflows`);\n\
         }} }});\n"
    );
    for member in members_of(builtin) {
        source.push_str(&format!("export const {member} = m.{member};\n"));
    }
    source
}

fn unavailable_module(builtin: &str) -> String {
    let members: Vec<&str> = MEMBERS
        .iter()
        .find(|(name, _)| *name == builtin)
        .map(|(_, m)| m.to_vec())
        .unwrap_or_default();
    let mut source = String::from(
        "const unavailable = (name) => function () {\n  throw new TypeError(`${name} is not available while compiling workflows; call it inside a step`);\n};\n",
    );
    for member in &members {
        source.push_str(&format!(
            "export const {member} = unavailable('{builtin}.{member}');\n"
        ));
    }
    let object: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    if builtin == "fs" {
        source.push_str("export const promises = {};\nexport const constants = { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 };\n");
    }
    if builtin == "os" {
        source.push_str("export const EOL = '\\n';\n");
    }
    source.push_str(&format!("export default {{ {} }};\n", object.join(", ")));
    source
}

/// The process facts behind the `process` global (`env`, `cwd`, `platform`, `arch`, the kici
/// version), set on the `__kici_host` object; the same for compiling and for jobs.
pub(crate) fn set_process_facts<'js>(
    ctx: &rquickjs::Ctx<'js>,
    host: &rquickjs::Object<'js>,
    env: Vec<(String, String)>,
    cwd: String,
) -> rquickjs::Result<()> {
    use rquickjs::{Ctx, Function, Object};
    host.set(
        "env",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>| -> rquickjs::Result<Object<'js>> {
                let o = Object::new(ctx)?;
                for (k, v) in &env {
                    o.set(k.as_str(), v.as_str())?;
                }
                Ok(o)
            },
        )?,
    )?;
    host.set("cwd", Function::new(ctx.clone(), move || cwd.clone())?)?;
    host.set("platform", node_platform())?;
    host.set("arch", node_arch())?;
    host.set("version", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// `process.platform` names as Node spells them.
fn node_platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// `process.arch` names as Node spells them.
fn node_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    }
}
