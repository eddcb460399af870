//! Static matrix expansion, as the reference orchestrator materialises a fan-out
//! (`sdk.md` §8, `orchestrator.md` §7.5) and as the compiler counts it for E104.
//!
//! Semantics that are easy to get wrong and that the conformance corpus pins down:
//! dimensions are sorted with `localeCompare` ([`crate::collate`]) and combined row-major;
//! each combination is a JavaScript object, so integer-like keys enumerate first (this
//! changes the name suffix); exclude runs before include; `{}` entries are ignored by both;
//! values are compared with `===` (`20` is not `"20"`, objects are never equal); more than
//! [`MAX_MATRIX_JOBS`] children or none at all is an error.

use serde_json::{Map, Value};

use crate::collate::locale_compare;
use crate::json::{js_property_order, number_to_js_string};
use crate::lock::StaticMatrixValues;

/// Most children one static matrix may produce.
pub const MAX_MATRIX_JOBS: usize = 256;

/// Above this many raw combinations we do not enumerate them; see [`MatrixError::TooMany`].
const ENUMERATION_LIMIT: u64 = 10_000_000;

/// One combination (`ctx.matrix`), keys in JavaScript enumeration order.
pub type Combination = Map<String, Value>;

/// One materialised child job of a matrix fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixChild {
    /// `<job> (<suffix>)`.
    pub name: String,
    pub values: Combination,
    /// Rank of the suffix under `localeCompare` (stable for ties); `None` for a single child.
    pub fanout_index: Option<usize>,
    /// Number of children; `None` for a single child.
    pub fanout_total: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error("matrix for job '{job}' expands to zero combinations")]
    ZeroCombinations { job: String },
    /// `count` is exact, except above 10 million raw combinations, where it is the raw
    /// product plus the number of non-empty `include` entries (the reference would try to
    /// enumerate them).
    #[error("matrix for job '{job}' expands to {count} combinations (max {MAX_MATRIX_JOBS})")]
    TooMany { job: String, count: u64 },
    /// A dimension of the object form is not an array (the reference throws a TypeError).
    #[error("matrix dimension '{dimension}' of job '{job}' is not an array")]
    DimensionNotArray { job: String, dimension: String },
}

/// Expands a static matrix into named children (`materializeFanout`).
pub fn materialize(
    job: &str,
    values: &StaticMatrixValues,
    include: &[Map<String, Value>],
    exclude: &[Map<String, Value>],
) -> Result<Vec<MatrixChild>, MatrixError> {
    let combos = expand_combinations(job, values, include, exclude)?;
    let total = combos.len();
    let names: Vec<String> = combos.iter().map(format_suffix).collect();
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by(|a, b| locale_compare(&names[*a], &names[*b]));
    let mut rank = vec![0; total];
    for (position, index) in order.into_iter().enumerate() {
        rank[index] = position;
    }
    Ok(combos
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (values, suffix))| MatrixChild {
            name: format!("{job} ({suffix})"),
            values,
            fanout_index: (total > 1).then_some(rank[i]),
            fanout_total: (total > 1).then_some(total),
        })
        .collect())
}

/// The combinations after exclude and include, with the zero and 256 limits applied.
pub fn expand_combinations(
    job: &str,
    values: &StaticMatrixValues,
    include: &[Map<String, Value>],
    exclude: &[Map<String, Value>],
) -> Result<Vec<Combination>, MatrixError> {
    let dims = dimensions(job, values)?;
    let raw = raw_product(&dims);
    let excludes: Vec<&Map<String, Value>> = exclude.iter().filter(|e| !e.is_empty()).collect();
    let includes: Vec<&Map<String, Value>> = include.iter().filter(|e| !e.is_empty()).collect();
    if raw > ENUMERATION_LIMIT {
        return Err(MatrixError::TooMany {
            job: job.to_owned(),
            count: raw.saturating_add(includes.len() as u64),
        });
    }

    // Stream the product so that an oversized matrix is counted without being built.
    let mut kept: Vec<Vec<usize>> = Vec::new();
    let mut surviving: u64 = 0;
    if !dims.is_empty() && raw > 0 {
        let mut cursor = vec![0usize; dims.len()];
        loop {
            let excluded = excludes.iter().any(|e| matches_exclude(&dims, &cursor, e));
            if !excluded {
                surviving += 1;
                if kept.len() <= MAX_MATRIX_JOBS {
                    kept.push(cursor.clone());
                }
            }
            if !advance(&mut cursor, &dims) {
                break;
            }
        }
    }

    let mut added: Vec<Combination> = Vec::new();
    for incl in includes {
        let in_product = product_contains(&dims, &excludes, incl);
        let in_added = added.iter().any(|combo| same_combination(combo, incl));
        if !in_product && !in_added {
            added.push(js_ordered(incl));
        }
    }

    let count = surviving + added.len() as u64;
    if count == 0 {
        return Err(MatrixError::ZeroCombinations {
            job: job.to_owned(),
        });
    }
    if count > MAX_MATRIX_JOBS as u64 {
        return Err(MatrixError::TooMany {
            job: job.to_owned(),
            count,
        });
    }
    let mut combos: Vec<Combination> = kept
        .iter()
        .map(|cursor| {
            let mut combo = Map::new();
            for ((name, values), i) in dims.iter().zip(cursor) {
                combo.insert((*name).to_owned(), values[*i].clone());
            }
            js_ordered(&combo)
        })
        .collect();
    combos.extend(added);
    Ok(combos)
}

/// The compiler's static count for E104: the raw product (array length for the array form)
/// plus the number of `include` entries; excludes are ignored.
pub fn static_job_count(values: &StaticMatrixValues, include_len: usize) -> u64 {
    let raw = match values {
        StaticMatrixValues::List(items) => items.len() as u64,
        StaticMatrixValues::Dimensions(dims) => dims.values().fold(1u64, |acc, v| {
            acc.saturating_mul(v.as_array().map_or(0, |a| a.len() as u64))
        }),
    };
    raw.saturating_add(include_len as u64)
}

/// The name suffix: the single value of a `{value}` combination, else all values joined by
/// `", "` in the combination's key order.
pub fn format_suffix(values: &Combination) -> String {
    let entries = js_property_order(values);
    if let [(key, value)] = entries.as_slice()
        && key.as_str() == "value"
    {
        return js_to_string(value);
    }
    entries
        .iter()
        .map(|(_, v)| js_join_element(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<job> (<suffix>)`.
pub fn expanded_job_name(base: &str, values: &Combination) -> String {
    format!("{base} ({})", format_suffix(values))
}

/// `a === b` for JSON values: primitives by value, objects and arrays never (distinct
/// objects in JavaScript).
pub fn js_strict_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// Dimensions in expansion order: `[("value", items)]` for the array form, else sorted with
/// `localeCompare` (stable, like `Array.prototype.sort`).
fn dimensions<'a>(
    job: &str,
    values: &'a StaticMatrixValues,
) -> Result<Vec<(&'a str, &'a [Value])>, MatrixError> {
    match values {
        StaticMatrixValues::List(items) => Ok(vec![("value", items.as_slice())]),
        StaticMatrixValues::Dimensions(map) => {
            let mut dims = Vec::with_capacity(map.len());
            for (name, v) in js_property_order(map) {
                let items = v.as_array().ok_or_else(|| MatrixError::DimensionNotArray {
                    job: job.to_owned(),
                    dimension: name.clone(),
                })?;
                dims.push((name.as_str(), items.as_slice()));
            }
            dims.sort_by(|a, b| locale_compare(a.0, b.0));
            Ok(dims)
        }
    }
}

fn raw_product(dims: &[(&str, &[Value])]) -> u64 {
    if dims.is_empty() {
        return 0;
    }
    dims.iter()
        .fold(1u64, |acc, (_, v)| acc.saturating_mul(v.len() as u64))
}

/// Row-major odometer step; `false` after the last combination.
fn advance(cursor: &mut [usize], dims: &[(&str, &[Value])]) -> bool {
    for i in (0..cursor.len()).rev() {
        cursor[i] += 1;
        if cursor[i] < dims[i].1.len() {
            return true;
        }
        cursor[i] = 0;
    }
    false
}

fn lookup<'a>(dims: &[(&str, &'a [Value])], cursor: &[usize], key: &str) -> Option<&'a Value> {
    dims.iter()
        .position(|(name, _)| *name == key)
        .map(|d| &dims[d].1[cursor[d]])
}

/// Every key of a non-empty exclude entry equals the combination's value.
fn matches_exclude(
    dims: &[(&str, &[Value])],
    cursor: &[usize],
    exclude: &Map<String, Value>,
) -> bool {
    exclude.iter().all(|(key, value)| {
        lookup(dims, cursor, key).is_some_and(|actual| js_strict_equals(actual, value))
    })
}

/// Whether some surviving product combination equals `incl` (same key count, equal values).
/// Such a combination is fully determined by `incl`, so no enumeration is needed.
fn product_contains(
    dims: &[(&str, &[Value])],
    excludes: &[&Map<String, Value>],
    incl: &Map<String, Value>,
) -> bool {
    if dims.is_empty() || incl.len() != dims.len() {
        return false;
    }
    let mut cursor = Vec::with_capacity(dims.len());
    for (name, values) in dims {
        let Some(wanted) = incl.get(*name) else {
            return false;
        };
        // Equal values exclude identically, so the first equal one stands for all.
        match values.iter().position(|v| js_strict_equals(v, wanted)) {
            Some(i) => cursor.push(i),
            None => return false,
        }
    }
    !excludes.iter().any(|e| matches_exclude(dims, &cursor, e))
}

fn same_combination(combo: &Combination, incl: &Map<String, Value>) -> bool {
    combo.len() == incl.len()
        && incl
            .iter()
            .all(|(k, v)| combo.get(k).is_some_and(|c| js_strict_equals(c, v)))
}

/// A copy of `map` with its keys in JavaScript enumeration order.
fn js_ordered(map: &Map<String, Value>) -> Combination {
    js_property_order(map)
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `String(value)`.
fn js_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_js_string(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(js_join_element)
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// How `Array.prototype.join` renders an element: `null` becomes the empty string.
fn js_join_element(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => js_to_string(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dims(v: Value) -> StaticMatrixValues {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn integer_like_keys_lead_the_suffix() {
        let children = materialize(
            "compat",
            &dims(json!({"9": ["5"], "10": ["4"], "B": ["1"], "a": ["2"], "_c": ["3"]})),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].name, "compat (5, 4, 3, 2, 1)");
        let keys: Vec<&String> = children[0].values.keys().collect();
        assert_eq!(keys, ["9", "10", "_c", "a", "B"]);
        assert_eq!(children[0].fanout_index, None);
    }

    #[test]
    fn limits() {
        let too_many = dims(
            json!({"a": (0..17).map(|i| i.to_string()).collect::<Vec<_>>(),
                                    "b": (0..16).map(|i| i.to_string()).collect::<Vec<_>>()}),
        );
        assert_eq!(
            materialize("grid", &too_many, &[], &[])
                .unwrap_err()
                .to_string(),
            "matrix for job 'grid' expands to 272 combinations (max 256)"
        );
        assert_eq!(
            materialize("x", &dims(json!({"os": []})), &[], &[])
                .unwrap_err()
                .to_string(),
            "matrix for job 'x' expands to zero combinations"
        );
        let huge = dims(json!({"a": vec!["x"; 1000], "b": vec!["y"; 1000], "c": vec!["z"; 1000]}));
        assert!(matches!(
            materialize("h", &huge, &[], &[]),
            Err(MatrixError::TooMany {
                count: 1_000_000_000,
                ..
            })
        ));
        assert!(matches!(
            materialize("bad", &dims(json!({"os": "linux"})), &[], &[]),
            Err(MatrixError::DimensionNotArray { .. })
        ));
    }

    #[test]
    fn static_count_ignores_excludes() {
        let values = dims(json!({"a": ["1", "2"], "b": ["1", "2", "3"]}));
        assert_eq!(static_job_count(&values, 2), 8);
        assert_eq!(static_job_count(&dims(json!({})), 0), 1);
        assert_eq!(static_job_count(&dims(json!(["a"])), 0), 1);
    }

    #[test]
    fn suffix_renders_javascript_strings() {
        let combo: Combination = serde_json::from_value(json!({"value": 1.5})).unwrap();
        assert_eq!(format_suffix(&combo), "1.5");
        let combo: Combination = serde_json::from_value(
            json!({"a": null, "b": [1, null, "x"], "c": {"k": 1}, "d": true}),
        )
        .unwrap();
        assert_eq!(format_suffix(&combo), ", 1,,x, [object Object], true");
        let combo: Combination = serde_json::from_value(json!({"value": null})).unwrap();
        assert_eq!(format_suffix(&combo), "null");
    }
}
