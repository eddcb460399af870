//! JavaScript errors and stacks, mapped back to the original `.ts` sources: shared by the
//! compile-time evaluator and the job runtime.

use rquickjs::{Ctx, Error as JsError, Function, Object, Value};

use crate::SourcePosition;
use crate::modules::{self, Registry, SharedRegistry};
use crate::strip::Position;

/// Where a position without a callee hint lands in the original source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The callee of the innermost enclosing call: compile-time errors point at the
    /// `job(`/`step(` being declared.
    Callee,
    /// The mapped position itself: at run time it is the failing expression (or the `$`),
    /// while the innermost enclosing call would often be the whole `step(…)`.
    Exact,
}

/// Message and stack of a thrown value; the message reads `Name: message` like Node prints it
/// (just `message` for a plain `Error`).
pub(crate) fn describe_thrown(value: &Value<'_>) -> (String, Option<String>) {
    // Reading properties or converting may run user code (getters, `toString`) that throws
    // again; such a secondary exception is discarded, never left pending.
    let ctx = value.ctx();
    let settle = |result: rquickjs::Result<Option<String>>| match result {
        Ok(value) => value,
        Err(error) => {
            if matches!(error, JsError::Exception) {
                let _ = ctx.catch();
            }
            None
        }
    };
    if let Some(object) = value.as_object() {
        let message = settle(object.get("message"));
        let name = settle(object.get("name"));
        let stack = settle(object.get("stack"));
        if let Some(message) = message {
            let text = match name.as_deref() {
                Some("Error") | None => message,
                Some(name) => format!("{name}: {message}"),
            };
            return (text, stack);
        }
    }
    // Anything else thrown (`throw 42`, `throw null`, `throw {}`) reads as JavaScript's
    // `String(value)` would.
    let text = settle(
        value
            .get::<rquickjs::convert::Coerced<String>>()
            .map(|s| Some(s.0)),
    )
    .unwrap_or_else(|| format!("a thrown {}", value.type_name()));
    (text, None)
}

/// Maps a stack position (the module's absolute path as QuickJS names it, stripped-code
/// position) to the original source. With a `hint` (the callee's name) the position snaps
/// onto the innermost enclosing call of that name; without one, `anchor` decides.
pub(crate) fn locate(
    registry: &Registry,
    file: &str,
    generated: Position,
    hint: Option<&str>,
    anchor: Anchor,
) -> Option<SourcePosition> {
    let module = registry.modules.get(file)?;
    let position = match &module.stripped {
        Some(stripped) => {
            let original = stripped.original_position(generated)?;
            match (hint, anchor) {
                (None, Anchor::Exact) => original,
                _ => stripped.callee_at(original, hint),
            }
        }
        None => generated,
    };
    Some(SourcePosition {
        file: module.relative.clone(),
        line: position.line,
        column: position.column,
    })
}

/// `    at name (file:line:col)` or `    at file:line:col` → (file, position).
pub(crate) fn parse_frame(line: &str) -> Option<(&str, Position)> {
    let rest = line.trim().strip_prefix("at ")?;
    let location = match rest.rfind('(') {
        Some(open) if rest.ends_with(')') => &rest[open + 1..rest.len() - 1],
        _ => rest,
    };
    let mut parts = location.rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    Some((file, Position { line, column }))
}

/// The first frame of `stack` that lies in a user module, mapped.
pub(crate) fn first_user_frame(
    registry: &Registry,
    stack: &str,
    anchor: Anchor,
) -> Option<SourcePosition> {
    stack
        .lines()
        .filter_map(parse_frame)
        .find_map(|(file, position)| locate(registry, file, position, None, anchor))
}

/// Rewrites every frame that points into a user module to its original `.ts` position and
/// repo-relative path; frames inside our own modules (`kici:`, `node:`) and in `eval`/
/// `Function` source are dropped.
pub(crate) fn map_stack(registry: &Registry, stack: &str, anchor: Anchor) -> String {
    stack
        .lines()
        .filter_map(|line| match parse_frame(line) {
            Some((file, position)) => match locate(registry, file, position, None, anchor) {
                Some(p) => Some(line.replace(
                    &format!("{file}:{}:{}", position.line, position.column),
                    &p.to_string(),
                )),
                None if file.starts_with("kici:") || file.starts_with("node:") => None,
                None if file == "<eval>" || file == "<input>" => None,
                None => Some(line.to_string()),
            },
            None => Some(line.to_string()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `__kici_host.location(file, line, column, hint?)`: [`locate`] for the SDK, returning
/// `{file, line, column}` or `null`.
pub(crate) fn location_function<'js>(
    ctx: &Ctx<'js>,
    registry: SharedRegistry,
    anchor: Anchor,
) -> rquickjs::Result<Function<'js>> {
    Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>,
              file: String,
              line: u32,
              column: u32,
              hint: rquickjs::prelude::Opt<String>|
              -> rquickjs::Result<Value<'js>> {
            let registry = modules::lock(&registry);
            match locate(
                &registry,
                &file,
                Position { line, column },
                hint.0.as_deref(),
                anchor,
            ) {
                Some(p) => {
                    let o = Object::new(ctx)?;
                    o.set("file", p.file)?;
                    o.set("line", p.line)?;
                    o.set("column", p.column)?;
                    Ok(o.into_value())
                }
                None => Ok(Value::new_null(ctx)),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_with_and_without_a_function_name() {
        assert_eq!(
            parse_frame("    at run (/repo/.kici/workflows/ci.ts:12:5)"),
            Some((
                "/repo/.kici/workflows/ci.ts",
                Position {
                    line: 12,
                    column: 5
                }
            ))
        );
        assert_eq!(
            parse_frame("    at /a/b.ts:1:2"),
            Some(("/a/b.ts", Position { line: 1, column: 2 }))
        );
        assert_eq!(
            parse_frame("    at <anonymous> (C:x:3:4)"),
            Some(("C:x", Position { line: 3, column: 4 }))
        );
        assert_eq!(parse_frame("Error: boom"), None);
        assert_eq!(parse_frame("    at native"), None);
    }

    #[test]
    fn map_stack_drops_our_frames_and_keeps_unknown_ones() {
        let registry = Registry::default();
        let stack = "    at f (kici:sdk:1:2)\n    at g (node:fs:3:4)\n    at h (<input>:1:1)\n    at i (/elsewhere.js:5:6)\n    at native";
        assert_eq!(
            map_stack(&registry, stack, Anchor::Exact),
            "    at i (/elsewhere.js:5:6)\n    at native"
        );
        assert_eq!(first_user_frame(&registry, stack, Anchor::Callee), None);
    }
}
