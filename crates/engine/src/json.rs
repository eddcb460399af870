//! An exact ECMAScript `JSON.stringify` printer for [`serde_json::Value`].
//!
//! The lock file is written byte-for-byte like the reference (`JSON.stringify(lock, null, 2)`,
//! `lockfile.md` §1) and the top-level content hash is taken over `JSON.stringify(x)`, so
//! serde_json's own printer (different number formatting, different escapes) cannot be used.
//!
//! Objects are printed in JavaScript property order: integer-like keys (canonical array
//! indices) first in ascending numeric order, then the other keys in insertion order. A
//! `serde_json::Map` has no such rule, but any object the reference printed was a JavaScript
//! object, so printing a map as if it were one keeps both sides identical.
//!
//! Known gap: a Rust `String` cannot hold a lone surrogate, so the `\udxxx` escape of
//! `JSON.stringify` never occurs here.

use serde_json::{Map, Number, Value};

/// `JSON.stringify(value, null, 2)`: two-space indentation, no trailing newline.
pub fn to_string_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, Some(0));
    out
}

/// `JSON.stringify(value)`: no whitespace at all.
pub fn to_string_compact(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, None);
    out
}

/// ECMAScript `Number::toString(x)` (radix 10), e.g. `1e+21`, `1e-7`, `0.000001`, `NaN`.
/// `-0` prints as `0`, like JavaScript.
pub fn number_to_js_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust's `{:e}` without a precision prints the shortest digit string that round-trips,
    // which is the digit string ECMAScript's algorithm selects (k minimal, closest value).
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    if digits.is_empty() {
        return "0".to_owned();
    }
    let k = digits.len() as i64;
    // ECMAScript's n: the decimal point sits after n digits.
    let n = exponent + 1;
    let body = if k <= n && n <= 21 {
        let mut s = digits.clone();
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
        s
    } else if 0 < n && n <= 21 {
        let (int_part, frac_part) = digits.split_at(n as usize);
        format!("{int_part}.{frac_part}")
    } else if -6 < n && n <= 0 {
        let mut s = String::from("0.");
        s.extend(std::iter::repeat_n('0', (-n) as usize));
        s.push_str(&digits);
        s
    } else {
        let exp = n - 1;
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{exp_sign}{}", exp.abs())
        } else {
            format!("{first}.{rest}e{exp_sign}{}", exp.abs())
        }
    };
    format!("{sign}{body}")
}

/// Formats a JSON number the way JavaScript would after parsing it into a double.
pub fn json_number_to_js_string(number: &Number) -> String {
    const MAX_SAFE: u64 = 1 << 53;
    if let Some(i) = number.as_i64() {
        if i.unsigned_abs() <= MAX_SAFE {
            return i.to_string();
        }
    } else if let Some(u) = number.as_u64()
        && u <= MAX_SAFE
    {
        return u.to_string();
    }
    // Beyond 2^53 JavaScript only ever held the nearest double, so print that.
    number_to_js_string(number.as_f64().unwrap_or(f64::NAN))
}

/// Appends `s` as a JSON string literal with `JSON.stringify`'s escapes: `"`, `\` and
/// U+0000–U+001F only (short forms where they exist, else `\u00xx` in lowercase hex).
pub fn write_js_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `key` is a canonical array index (`"0"`, `"17"`, not `"01"`), which JavaScript
/// enumerates before every other own property.
pub fn is_array_index_key(key: &str) -> bool {
    array_index(key).is_some()
}

fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || (bytes.len() > 1 && bytes[0] == b'0') {
        return None;
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Array indices stop at 2^32 - 2; larger integers are ordinary string keys.
    key.parse::<u32>().ok().filter(|i| *i != u32::MAX)
}

/// The entries of `map` in JavaScript own-property order.
pub fn js_property_order(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut indexed: Vec<(u32, &String, &Value)> = Vec::new();
    let mut others: Vec<(&String, &Value)> = Vec::with_capacity(map.len());
    for (k, v) in map {
        match array_index(k) {
            Some(i) => indexed.push((i, k, v)),
            None => others.push((k, v)),
        }
    }
    if indexed.is_empty() {
        return others;
    }
    indexed.sort_by_key(|(i, _, _)| *i);
    indexed
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .chain(others)
        .collect()
}

fn write_indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

/// `indent` is `None` for the compact form, else the current nesting level.
fn write_value(out: &mut String, value: &Value, indent: Option<usize>) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let text = json_number_to_js_string(n);
            // JSON.stringify turns non-finite numbers into null.
            if text == "NaN" || text.ends_with("Infinity") {
                out.push_str("null");
            } else {
                out.push_str(&text);
            }
        }
        Value::String(s) => write_js_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = indent {
                    out.push('\n');
                    write_indent(out, level + 1);
                }
                write_value(out, item, indent.map(|l| l + 1));
            }
            if let Some(level) = indent {
                out.push('\n');
                write_indent(out, level);
            }
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (key, item)) in js_property_order(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if let Some(level) = indent {
                    out.push('\n');
                    write_indent(out, level + 1);
                }
                write_js_string(out, key);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, indent.map(|l| l + 1));
            }
            if let Some(level) = indent {
                out.push('\n');
                write_indent(out, level);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_follow_ecmascript_number_to_string() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (0.30000000000000004, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1.5e21, "1.5e+21"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (0.0000015, "0.0000015"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740993.0, "9007199254740992"),
            (3.25, "3.25"),
            (100.0, "100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, expected) in cases {
            assert_eq!(number_to_js_string(*x), *expected, "{x:e}");
        }
    }

    #[test]
    fn json_numbers_beyond_2_pow_53_print_as_doubles() {
        let v: Value =
            serde_json::from_str("[9007199254740992, 18446744073709551615, -3, 2.50]").unwrap();
        assert_eq!(
            to_string_compact(&v),
            "[9007199254740992,18446744073709552000,-3,2.5]"
        );
    }

    #[test]
    fn strings_escape_only_what_json_stringify_escapes() {
        let v = json!("q\"b\\s/ \u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}é\u{2028}🚀");
        assert_eq!(
            to_string_compact(&v),
            "\"q\\\"b\\\\s/ \\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}é\u{2028}🚀\""
        );
    }

    #[test]
    fn pretty_layout_matches_json_stringify_with_two_spaces() {
        let v = json!({"a": [], "b": {}, "c": [1, {"d": null, "e": true}], "f": "x"});
        assert_eq!(
            to_string_pretty(&v),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": null,\n      \"e\": true\n    }\n  ],\n  \"f\": \"x\"\n}"
        );
        assert_eq!(to_string_pretty(&json!([])), "[]");
        assert_eq!(to_string_pretty(&json!("s")), "\"s\"");
    }

    #[test]
    fn compact_form_has_no_whitespace() {
        let v = json!({"schemaVersion": 29, "source": {"file": "a b", "export": "#default"}});
        assert_eq!(
            to_string_compact(&v),
            r##"{"schemaVersion":29,"source":{"file":"a b","export":"#default"}}"##
        );
    }

    #[test]
    fn integer_like_keys_come_first_like_javascript_objects() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"10":2,"a":3,"9":4,"01":5,"4294967295":6,"0":7}"#)
                .unwrap();
        assert_eq!(
            to_string_compact(&v),
            r#"{"0":7,"9":4,"10":2,"b":1,"a":3,"01":5,"4294967295":6}"#
        );
    }
}
