//! The SDK and the compile-time lowering, both our own JavaScript embedded in the binary.

/// Module name under which `@kici-dev/sdk` and `kici:sdk` are loaded (one instance for both).
pub const SDK_MODULE: &str = "kici:sdk";
/// Internal module with `collect`, `lower` and `hashFilesOf`, used by the compiler only.
pub const COMPILE_MODULE: &str = "kici:compile";

const SDK_JS: &str = include_str!("../sdk/sdk.js");
const COMPILE_JS: &str = include_str!("../sdk/compile.js");

/// Source of one of our own modules, by module name.
pub(crate) fn module_source(name: &str) -> Option<&'static str> {
    match name {
        SDK_MODULE => Some(SDK_JS),
        COMPILE_MODULE => Some(COMPILE_JS),
        _ => None,
    }
}

/// Whether `name` names one of our own modules other than the SDK entry.
pub(crate) fn is_internal_module(name: &str) -> bool {
    module_source(name).is_some()
}
