//! Typed reads from a JSON payload that turn absence and wrong types into errors naming the
//! field by its dotted path.

use serde_json::Value;

use super::NormaliseError;

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value at a property path (decimal segments index arrays); `null` counts as absent,
/// like JavaScript's `?.`.
pub(crate) fn at<'a>(payload: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = payload;
    for key in path {
        current = match current {
            Value::Object(map) => map.get(*key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!current.is_null()).then_some(current)
}

fn wrong_type(path: &[&str], expected: &'static str, found: &Value) -> NormaliseError {
    NormaliseError::WrongType {
        field: path.join("."),
        expected,
        found: kind(found),
    }
}

fn missing(path: &[&str]) -> NormaliseError {
    NormaliseError::MissingField {
        field: path.join("."),
    }
}

pub(crate) fn opt_str<'a>(
    payload: &'a Value,
    path: &[&str],
) -> Result<Option<&'a str>, NormaliseError> {
    match at(payload, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(path, "a string", other)),
    }
}

pub(crate) fn req_str<'a>(payload: &'a Value, path: &[&str]) -> Result<&'a str, NormaliseError> {
    opt_str(payload, path)?.ok_or_else(|| missing(path))
}

/// A string that may not be empty (branch names, commit ids).
pub(crate) fn req_non_empty<'a>(
    payload: &'a Value,
    path: &[&str],
) -> Result<&'a str, NormaliseError> {
    let s = req_str(payload, path)?;
    if s.is_empty() {
        Err(missing(path))
    } else {
        Ok(s)
    }
}

pub(crate) fn opt_bool(payload: &Value, path: &[&str]) -> Result<Option<bool>, NormaliseError> {
    match at(payload, path) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(path, "a boolean", other)),
    }
}

/// An id that providers send as a number (GitHub) or a string (some forges), as a string.
pub(crate) fn opt_id(payload: &Value, path: &[&str]) -> Result<Option<String>, NormaliseError> {
    match at(payload, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(wrong_type(path, "a number or string", other)),
    }
}

/// A positive integer that may arrive as a number or a numeric string.
pub(crate) fn opt_number(payload: &Value, path: &[&str]) -> Result<Option<u64>, NormaliseError> {
    match at(payload, path) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| wrong_type(path, "a non-negative integer", &Value::Number(n.clone()))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| wrong_type(path, "a non-negative integer", &Value::String(s.clone()))),
        Some(other) => Err(wrong_type(path, "a non-negative integer", other)),
    }
}

/// The value at a dot-path (`event.type`, `items.0.id`; a leading `$.` is accepted), used by
/// the generic source's `eventTypePath` and `idempotencyKeyPath`. Numeric segments index
/// arrays.
pub fn dot_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.strip_prefix("$.").unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    if path.is_empty() {
        return Some(value);
    }
    let mut current = value;
    for segment in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A scalar as text, the way JavaScript's template literal would print it; objects, arrays
/// and `null` have no useful text and give `None`.
pub(crate) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
