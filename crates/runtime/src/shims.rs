//! Node built-in modules that workflow code may import (spec/sdk.md §19).
//!
//! `path` is complete. The members of the other modules exist, so that importing them links,
//! but at compile time they throw: module top-level code runs on every machine that loads the
//! workflow and must not do IO. The job runtime (the executor) provides the working versions.

const PATH_JS: &str = include_str!("../shims/path.js");
pub(crate) const GLOBALS_JS: &str = include_str!("../shims/globals.js");

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
    ("url", &["fileURLToPath", "pathToFileURL"]),
    (
        "crypto",
        &["randomUUID", "randomBytes", "createHash", "createHmac"],
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
    ("timers/promises", &["setTimeout", "setInterval"]),
    ("util", &["format", "inspect", "promisify"]),
    ("buffer", &["Buffer"]),
];

/// JavaScript source of the module `node:<builtin>`.
pub(crate) fn module_source(builtin: &str) -> String {
    match builtin {
        "path" | "path/posix" => PATH_JS.to_string(),
        "process" => {
            "const p = globalThis.process;\nexport default p;\nexport const env = p.env;\n\
                      export const cwd = p.cwd;\nexport const platform = p.platform;\n\
                      export const arch = p.arch;\nexport const argv = p.argv;\n"
                .to_string()
        }
        other => unavailable_module(other),
    }
}

fn unavailable_module(builtin: &str) -> String {
    let members = MEMBERS
        .iter()
        .find(|(name, _)| *name == builtin)
        .map(|(_, m)| *m)
        .unwrap_or(&[]);
    let mut source = String::from(
        "const unavailable = (name) => function () {\n  throw new TypeError(`${name} is not available while compiling workflows; call it inside a step`);\n};\n",
    );
    for member in members {
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
