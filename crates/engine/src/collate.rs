//! `String.prototype.localeCompare` as the reference runs it (Node with full ICU, root /
//! en-US collation, default strength), approximated without ICU's tables.
//!
//! The reference sorts matrix dimension names and ranks matrix children (`fanoutIndex`) with
//! `localeCompare`, so byte order would give different job names and indices. We reproduce
//! the three-level comparison of the Unicode Collation Algorithm for what matters in
//! practice:
//!
//! * **Primary** (base characters): ignorable controls are skipped; then whitespace <
//!   ASCII punctuation and symbols in the CLDR root order
//!   (`_ - , ; : ! ? . ' " ( ) [ ] { } @ * / \ & # % ` ^ + < = > | ~ $`) < other
//!   non-letter characters (by code point) < digits (one at a time: `10 < 9`) < Latin letters
//!   (case- and accent-folded, after canonical decomposition, with `æ`, `ß`, `œ` expanded and
//!   `ð ø đ ł ı þ` placed next to their base letters) < letters of other scripts (by the
//!   code point of their lowercase form).
//! * **Secondary** (accents): a combining mark sorts after its absence, so `e < é < f`.
//! * **Tertiary** (case): lowercase before uppercase, so `a < A < b < B`.
//!
//! Differences from ICU (documented in `fixes.md` O03): non-Latin scripts are ordered by code
//! point rather than by ICU's script order and per-script tables, non-ASCII punctuation is
//! not interleaved with ASCII punctuation, compatibility characters (full-width forms,
//! ligatures other than `æ`/`œ`) are not folded, and contractions/reorderings of specific
//! languages (e.g. Thai, Hangul jamo) are not modelled. Strings that ICU considers equal at
//! all three levels compare `Equal` here too, with no identical-level tie-break, which keeps
//! a stable sort in authored order exactly like `Array.prototype.sort`.

use std::cmp::Ordering;

use unicode_normalization::UnicodeNormalization;

/// `a.localeCompare(b)` as an [`Ordering`].
pub fn locale_compare(a: &str, b: &str) -> Ordering {
    let ka = collation_elements(a);
    let kb = collation_elements(b);
    let primaries =
        |k: &[Element]| -> Vec<u32> { k.iter().map(|e| e.primary).filter(|p| *p != 0).collect() };
    let secondaries =
        |k: &[Element]| -> Vec<u32> { k.iter().map(|e| e.secondary).filter(|s| *s != 0).collect() };
    let tertiaries = |k: &[Element]| -> Vec<u8> {
        k.iter()
            .filter(|e| e.primary != 0)
            .map(|e| e.tertiary)
            .collect()
    };
    primaries(&ka)
        .cmp(&primaries(&kb))
        .then_with(|| secondaries(&ka).cmp(&secondaries(&kb)))
        .then_with(|| tertiaries(&ka).cmp(&tertiaries(&kb)))
}

#[derive(Debug, Clone, Copy)]
struct Element {
    /// 0 = ignorable at the primary level (combining marks).
    primary: u32,
    /// 0 = ignorable at the secondary level; 1 = no accent.
    secondary: u32,
    /// 0 = lowercase or caseless, 1 = uppercase, 2 = expansion variant (`ß` vs `ss`).
    tertiary: u8,
}

/// Primary weight bases of the groups, in sort order.
const WHITESPACE: u32 = 0x100;
const ASCII_PUNCT: u32 = 0x200;
const OTHER_SYMBOL: u32 = 0x1000;
const DIGIT: u32 = 0x20_0000;
const LATIN: u32 = 0x30_0000;
const OTHER_LETTER: u32 = 0x40_0000;

/// CLDR root order of the ASCII characters that are neither letters, digits nor whitespace.
const ASCII_PUNCT_ORDER: &str = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

fn collation_elements(s: &str) -> Vec<Element> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.nfd() {
        push_elements(&mut out, c);
    }
    out
}

fn letter(index: u8, tertiary: u8) -> Element {
    Element {
        primary: LATIN + u32::from(index) * 4,
        secondary: 1,
        tertiary,
    }
}

fn push_elements(out: &mut Vec<Element>, c: char) {
    let cp = c as u32;
    if is_combining_mark(c) {
        out.push(Element {
            primary: 0,
            secondary: 2 + cp,
            tertiary: 0,
        });
        return;
    }
    if is_completely_ignorable(c) {
        return;
    }
    if c.is_ascii_lowercase() || c.is_ascii_uppercase() {
        let upper = u8::from(c.is_ascii_uppercase());
        out.push(letter(c.to_ascii_lowercase() as u8 - b'a', upper));
        return;
    }
    if let Some(elements) = special_latin(c) {
        out.extend(elements);
        return;
    }
    if c.is_ascii_digit() {
        out.push(Element {
            primary: DIGIT + (cp - '0' as u32),
            secondary: 1,
            tertiary: 0,
        });
        return;
    }
    let primary = if c.is_whitespace() {
        match c {
            '\t' => WHITESPACE,
            '\n' => WHITESPACE + 1,
            '\u{0b}' => WHITESPACE + 2,
            '\u{0c}' => WHITESPACE + 3,
            '\r' => WHITESPACE + 4,
            ' ' => WHITESPACE + 5,
            _ => WHITESPACE + 6 + (cp & 0xff),
        }
    } else if let Some(i) = ASCII_PUNCT_ORDER.find(c) {
        ASCII_PUNCT + i as u32
    } else if c.is_alphabetic() {
        let lower = c.to_lowercase().next().unwrap_or(c);
        let tertiary = u8::from(c.is_uppercase());
        out.push(Element {
            primary: OTHER_LETTER + lower as u32,
            secondary: 1,
            tertiary,
        });
        return;
    } else {
        OTHER_SYMBOL + cp
    };
    out.push(Element {
        primary,
        secondary: 1,
        tertiary: 0,
    });
}

/// Latin letters that canonical decomposition leaves alone but ICU sorts with a base letter.
fn special_latin(c: char) -> Option<Vec<Element>> {
    let idx = |l: char| l as u8 - b'a';
    // A secondary difference from the base letter, like an accent.
    let variant = |l: char, upper: u8| {
        let mut e = letter(idx(l), upper);
        e.secondary = 2;
        e
    };
    // A separate primary right after the base letter.
    let after = |l: char, upper: u8| {
        let mut e = letter(idx(l), upper);
        e.primary += 1;
        e
    };
    let expansion = |a: char, b: char, upper: u8| {
        let mut first = letter(idx(a), upper);
        let mut second = letter(idx(b), upper);
        first.tertiary += 2;
        second.tertiary += 2;
        vec![first, second]
    };
    Some(match c {
        'æ' => expansion('a', 'e', 0),
        'Æ' => expansion('a', 'e', 1),
        'œ' => expansion('o', 'e', 0),
        'Œ' => expansion('o', 'e', 1),
        'ß' => expansion('s', 's', 0),
        'ẞ' => expansion('s', 's', 1),
        'ð' => vec![after('d', 0)],
        'Ð' => vec![after('d', 1)],
        'đ' => vec![variant('d', 0)],
        'Đ' => vec![variant('d', 1)],
        'ø' => vec![variant('o', 0)],
        'Ø' => vec![variant('o', 1)],
        'ł' => vec![variant('l', 0)],
        'Ł' => vec![variant('l', 1)],
        'ı' => vec![after('i', 0)],
        'þ' => vec![after('z', 0)],
        'Þ' => vec![after('z', 1)],
        _ => return None,
    })
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A
        | 0x064B..=0x065F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF
        | 0x3099..=0x309A | 0xFE20..=0xFE2F)
}

/// Control and format characters that ICU ignores at every level.
fn is_completely_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x0000..=0x0008 | 0x000E..=0x001F | 0x007F..=0x009F | 0x00AD
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0xFEFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(items: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| locale_compare(a, b));
        v
    }

    #[test]
    fn corpus_order() {
        assert_eq!(
            sorted(&["é", "B", "9", "e", "a", "10", "_c"]),
            ["_c", "10", "9", "a", "B", "e", "é"]
        );
        assert_eq!(sorted(&["b", "a", "B", "A"]), ["a", "A", "b", "B"]);
        assert_eq!(
            sorted(&["NodeVersion", "nodeVersion", "node_version", "node-version"]),
            ["node_version", "node-version", "nodeVersion", "NodeVersion"]
        );
        assert_eq!(sorted(&["Value", "value"]), ["value", "Value"]);
        assert_eq!(
            sorted(&["ü", "日本", "emoji 🚀"]),
            ["emoji 🚀", "ü", "日本"]
        );
        assert_eq!(
            sorted(&["linux, arm64", "a (b)", ""]),
            ["", "a (b)", "linux, arm64"]
        );
        assert_eq!(
            sorted(&["s2", "s10", "s1", "s0"]),
            ["s0", "s1", "s10", "s2"]
        );
        assert_eq!(sorted(&["f", "é", "e"]), ["e", "é", "f"]);
    }

    #[test]
    fn punctuation_order_and_prefixes() {
        assert_eq!(locale_compare("a", "a"), Ordering::Equal);
        assert_eq!(locale_compare("a", "ab"), Ordering::Less);
        assert_eq!(locale_compare("$", "~"), Ordering::Greater);
        assert_eq!(locale_compare(" ", "_"), Ordering::Less);
        assert_eq!(locale_compare("~", "0"), Ordering::Less);
        assert_eq!(locale_compare("é", "E"), Ordering::Greater);
        assert_eq!(locale_compare("ss", "ß"), Ordering::Less);
        assert_eq!(locale_compare("ß", "st"), Ordering::Less);
        // Precomposed and decomposed forms are canonically equivalent.
        assert_eq!(locale_compare("e\u{301}", "é"), Ordering::Equal);
    }
}
