//! Writing the lock file and comparing it with the committed one (spec/lockfile.md §10).

use std::io;
use std::path::Path;

use serde_json::Value;

/// Writes `text` to `path` atomically (temp file + rename), and only when the bytes change,
/// so that build tools watching mtimes are not woken for nothing. Returns whether it wrote.
pub fn write_lock(path: &Path, text: &str) -> io::Result<bool> {
    if std::fs::read(path).is_ok_and(|existing| existing == text.as_bytes()) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("kici.lock.json");
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&temp, text)?;
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(true)
}

/// One difference between the generated and the committed lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    Added(String),
    Removed(String),
    /// Workflow name and the top-level keys whose values differ.
    Changed(String, Vec<String>),
    /// The committed file is not a lock we can read, or differs outside the workflows.
    Other(String),
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Added(name) => write!(f, "  + workflow \"{name}\" (new)"),
            Drift::Removed(name) => write!(f, "  - workflow \"{name}\" (removed)"),
            Drift::Changed(name, keys) => write!(f, "  ~ workflow \"{name}\": {}", keys.join(", ")),
            Drift::Other(what) => write!(f, "  ~ {what}"),
        }
    }
}

/// Compares byte for byte; when they differ, explains the difference per workflow.
pub fn drift(generated: &str, committed: &str) -> Vec<Drift> {
    if generated == committed {
        return Vec::new();
    }
    let parsed: Result<Value, _> = serde_json::from_str(committed);
    let Ok(committed_value) = parsed else {
        return vec![Drift::Other(
            "the committed lock is not valid JSON".to_string(),
        )];
    };
    let generated_value: Value = serde_json::from_str(generated).unwrap_or(Value::Null);
    let workflows = |v: &Value| -> Vec<Value> {
        v.get("workflows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let name_of = |w: &Value| {
        w.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (new, old) = (workflows(&generated_value), workflows(&committed_value));
    let mut out = Vec::new();
    for w in &new {
        match old.iter().find(|o| name_of(o) == name_of(w)) {
            None => out.push(Drift::Added(name_of(w))),
            Some(o) => {
                let keys = differing_keys(w, o);
                if !keys.is_empty() {
                    out.push(Drift::Changed(name_of(w), keys));
                }
            }
        }
    }
    for o in &old {
        if !new.iter().any(|w| name_of(w) == name_of(o)) {
            out.push(Drift::Removed(name_of(o)));
        }
    }
    if out.is_empty() {
        let keys = differing_keys(&generated_value, &committed_value)
            .into_iter()
            .filter(|k| k != "workflows")
            .collect::<Vec<_>>();
        let what = if keys.is_empty() {
            "formatting or workflow order differs".to_string()
        } else {
            format!("top-level keys differ: {}", keys.join(", "))
        };
        out.push(Drift::Other(what));
    }
    out
}

fn differing_keys(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["<not an object>".to_string()];
    };
    let mut keys: Vec<String> = Vec::new();
    for (key, value) in a {
        if b.get(key) != Some(value) {
            keys.push(key.clone());
        }
    }
    for key in b.keys() {
        if !a.contains_key(key) {
            keys.push(key.clone());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_names_added_removed_and_changed_workflows() {
        let old = r#"{"workflows":[{"name":"a","jobs":[]},{"name":"b","jobs":[]}]}"#;
        let new = r#"{"workflows":[{"name":"a","jobs":[1]},{"name":"c","jobs":[]}]}"#;
        let lines: Vec<String> = drift(new, old).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "  ~ workflow \"a\": jobs".to_string(),
                "  + workflow \"c\" (new)".to_string(),
                "  - workflow \"b\" (removed)".to_string(),
            ]
        );
        assert!(drift(new, new).is_empty());
    }

    #[test]
    fn write_lock_only_rewrites_changed_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".kici/kici.lock.json");
        assert!(write_lock(&path, "{}").expect("write"));
        assert!(!write_lock(&path, "{}").expect("write"));
        assert!(write_lock(&path, "{\"a\": 1}").expect("write"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\": 1}");
    }
}
