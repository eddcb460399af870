//! Secret masking of outgoing text (`agent.md` §9, `sdk.md` §13).
//!
//! A [`Masker`] is built once per job from the job's secrets and replaces, in any text, every
//! occurrence of a secret in any of the forms it is likely to leak in with [`MASK`] (`***`):
//!
//! 1. the value itself;
//! 2. each line of a multi-line value (a trailing `\r` removed), if at least 3 characters;
//! 3. standard base64 with and without `=` padding, base64url with and without padding;
//! 4. for values of at least 6 bytes, the three alignment-independent base64 fragments, so
//!    the secret is found even when it sits at any byte offset inside a larger base64 blob
//!    (and the same fragments in the base64url alphabet);
//! 5. `encodeURIComponent` percent-encoding, and the form-encoding of `URLSearchParams`
//!    (space as `+`), when they differ from the value;
//! 6. the `JSON.stringify` escaping of the value (without quotes), when it differs.
//!
//! Items 1–5 (minus base64url with padding, base64url fragments and the `+` form) are the
//! list of §9; the other forms are ours: they can only hide more, and each of them is a way a step prints a secret
//! without meaning to (`curl -d`, `jq`, a base64url JWT segment).
//!
//! Values shorter than [`MIN_SECRET_CHARS`] characters are not masked — they would blank out
//! ordinary words — and produce a warning line instead ([`Masker::warnings`]).
//!
//! All patterns go into one Aho-Corasick automaton with leftmost-longest semantics, so the
//! cost of masking is one pass over the text whatever the number of secrets, and the padded
//! base64 form wins over the unpadded one.
//!
//! [`LineBuffer`] is the streaming side: it takes the raw byte chunks a pipe delivers and
//! emits complete, masked lines, so that a secret split across two reads is still found.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// What every match is replaced with.
pub const MASK: &str = "***";

/// Secret values (and lines of multi-line values) shorter than this, in characters, are not
/// masked.
pub const MIN_SECRET_CHARS: usize = 3;

/// Alignment fragments are only derived from values at least this long, in bytes: shorter
/// values give fragments so short that they would match random base64.
const MIN_FRAGMENT_SOURCE_BYTES: usize = 6;

/// Fragments shorter than this are dropped for the same reason.
const MIN_FRAGMENT_CHARS: usize = 4;

/// Default maximum length of one emitted line (`protocol.md` §11: longer lines are split into
/// 64 KiB pieces).
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

/// Replaces secrets in text. Cheap to clone (shared, immutable); `Send + Sync`.
#[derive(Clone)]
pub struct Masker {
    inner: Arc<Inner>,
}

struct Inner {
    matcher: Matcher,
    /// Longest pattern in bytes; the streaming buffer keeps this much look-ahead.
    max_pattern_len: usize,
    pattern_count: usize,
    /// `(key, value)` as given, so that [`Masker::with_secrets`] can rebuild.
    secrets: Vec<(String, String)>,
    warnings: Vec<String>,
}

enum Matcher {
    /// No secret long enough: the fast path does not even scan.
    Nothing,
    Automaton(AhoCorasick),
    /// The automaton could not be built: every non-empty text is replaced by the mask.
    Everything,
}

impl std::fmt::Debug for Masker {
    // Never print the secrets or the patterns: a Debug dump must not leak.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("secrets", &self.inner.secrets.len())
            .field("patterns", &self.inner.pattern_count)
            .finish()
    }
}

impl Default for Masker {
    fn default() -> Self {
        Self::empty()
    }
}

impl Masker {
    /// A masker that masks nothing.
    pub fn empty() -> Self {
        Self::new(std::iter::empty::<(String, String)>())
    }

    /// Builds the masker for `(key, value)` secrets. Keys are only used in warnings.
    pub fn new<I, K, V>(secrets: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let secrets: Vec<(String, String)> = secrets
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::build(secrets)
    }

    /// Builds the masker from bare values (no keys, so no warnings are produced for short
    /// ones): for text that must be masked but has no name, e.g. a mounted file's content.
    pub fn from_values<I, V>(values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        Self::new(values.into_iter().map(|v| (String::new(), v.into())))
    }

    /// A new masker that masks everything this one does plus `more` (the automaton is rebuilt;
    /// clones of `self` are unaffected). Used when the set grows during a job, e.g. the
    /// content of a file assembled by `ctx.secrets.mountFile`.
    pub fn with_secrets<I, K, V>(&self, more: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut secrets = self.inner.secrets.clone();
        secrets.extend(more.into_iter().map(|(k, v)| (k.into(), v.into())));
        Self::build(secrets)
    }

    fn build(secrets: Vec<(String, String)>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        let mut warnings = Vec::new();
        for (key, value) in &secrets {
            if value.chars().count() < MIN_SECRET_CHARS {
                // Unnamed values (from_values) are internal; a warning without a name helps
                // nobody.
                if !key.is_empty() {
                    warnings.push(format!("secret \"{key}\" is too short to be masked"));
                }
                continue;
            }
            patterns_for(value, &mut patterns);
        }
        patterns.sort_unstable();
        patterns.dedup();
        let max_pattern_len = patterns.iter().map(String::len).max().unwrap_or(0);
        let pattern_count = patterns.len();
        let matcher = if patterns.is_empty() {
            Matcher::Nothing
        } else {
            match AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
            {
                Ok(ac) => Matcher::Automaton(ac),
                // Only pattern sets far beyond any real job's secrets exceed the automaton's
                // limits. Masking nothing would leak, so fail closed.
                Err(_) => Matcher::Everything,
            }
        };
        Masker {
            inner: Arc::new(Inner {
                matcher,
                max_pattern_len,
                pattern_count,
                secrets,
                warnings,
            }),
        }
    }

    /// Warning lines to log once at the start of the job (`secret "<key>" is too short to be
    /// masked`), in secret order. A masker made by [`Masker::with_secrets`] lists the
    /// warnings of all its secrets again.
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// True when nothing would ever be masked.
    pub fn is_empty(&self) -> bool {
        matches!(self.inner.matcher, Matcher::Nothing)
    }

    /// Number of distinct patterns in the automaton (for diagnostics and tests).
    pub fn pattern_count(&self) -> usize {
        self.inner.pattern_count
    }

    /// Length in bytes of the longest pattern: a caller cutting a stream into pieces keeps at
    /// least this much look-ahead so that no match straddles a cut.
    pub fn max_pattern_len(&self) -> usize {
        self.inner.max_pattern_len
    }

    /// `text` with every match replaced by `***`; borrowed when nothing matched.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.mask_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Patterns are whole UTF-8 strings and so is the mask, so replacing them in valid
            // UTF-8 keeps it valid; the lossy conversion never actually replaces anything.
            Cow::Owned(bytes) => Cow::Owned(match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
        }
    }

    /// Byte version of [`Masker::mask`] for text that may not be UTF-8.
    pub fn mask_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let ac = match &self.inner.matcher {
            Matcher::Nothing => return Cow::Borrowed(bytes),
            Matcher::Everything if bytes.is_empty() => return Cow::Borrowed(bytes),
            Matcher::Everything => return Cow::Owned(MASK.as_bytes().to_vec()),
            Matcher::Automaton(ac) => ac,
        };
        let mut matches = ac.find_iter(bytes).peekable();
        if matches.peek().is_none() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut last = 0;
        for m in matches {
            out.extend_from_slice(&bytes[last..m.start()]);
            out.extend_from_slice(MASK.as_bytes());
            last = m.end();
        }
        out.extend_from_slice(&bytes[last..]);
        Cow::Owned(out)
    }

    /// Masks `text` in place; returns whether anything was replaced.
    pub fn mask_in_place(&self, text: &mut String) -> bool {
        match self.mask(text) {
            Cow::Borrowed(_) => false,
            Cow::Owned(masked) => {
                *text = masked;
                true
            }
        }
    }

    /// Masks every string inside a JSON value (object values and array elements, recursively;
    /// keys are left alone). Returns whether anything was replaced, so the caller can log the
    /// warning §9 asks for when a step output was masked.
    pub fn mask_json(&self, value: &mut serde_json::Value) -> bool {
        if self.is_empty() {
            return false;
        }
        // Not `any`: every string must be visited, not just those up to the first change.
        let mut changed = false;
        match value {
            serde_json::Value::String(s) => changed = self.mask_in_place(s),
            serde_json::Value::Array(items) => {
                for v in items {
                    changed |= self.mask_json(v);
                }
            }
            serde_json::Value::Object(map) => {
                for v in map.values_mut() {
                    changed |= self.mask_json(v);
                }
            }
            _ => {}
        }
        changed
    }

    /// Finds the matches of `bytes` (for [`LineBuffer`]'s cut decisions).
    fn find_spans(&self, bytes: &[u8]) -> Vec<(usize, usize)> {
        match &self.inner.matcher {
            Matcher::Nothing => Vec::new(),
            Matcher::Automaton(ac) => ac.find_iter(bytes).map(|m| (m.start(), m.end())).collect(),
            Matcher::Everything => vec![(0, bytes.len())],
        }
    }
}

/// Appends every pattern of one secret value (≥ 3 characters) to `out`.
fn patterns_for(value: &str, out: &mut Vec<String>) {
    push_forms(value, out);
    if value.contains('\n') {
        for line in value.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            // The line itself only: encodings of a short line would be short enough to hit
            // unrelated base64 text, and an encoder sees the whole value anyway.
            if line.chars().count() >= MIN_SECRET_CHARS {
                out.push(line.to_owned());
            }
        }
    }
    let bytes = value.as_bytes();
    if bytes.len() >= MIN_FRAGMENT_SOURCE_BYTES {
        // Where the value starts inside a larger base64 stream decides which 6-bit groups it
        // shares with its neighbours; `start` skips the characters that mix in the preceding
        // bytes, and the last character is dropped unless the value ends on a 3-byte boundary.
        const START: [usize; 3] = [0, 2, 3];
        for (offset, start) in START.into_iter().enumerate() {
            let mut prefixed = vec![0u8; offset];
            prefixed.extend_from_slice(bytes);
            let encoded = STANDARD_NO_PAD.encode(&prefixed);
            let trailing = usize::from(!(offset + bytes.len()).is_multiple_of(3));
            let end = encoded.len().saturating_sub(trailing);
            if let Some(fragment) = encoded.get(start..end)
                && fragment.len() >= MIN_FRAGMENT_CHARS
            {
                out.push(fragment.to_owned());
                // The same fragment in the URL-safe alphabet.
                let url = fragment.replace('+', "-").replace('/', "_");
                if url != fragment {
                    out.push(url);
                }
            }
        }
    }
}

/// The value and its whole-value encodings.
fn push_forms(value: &str, out: &mut Vec<String>) {
    out.push(value.to_owned());
    let bytes = value.as_bytes();
    out.push(STANDARD.encode(bytes));
    out.push(STANDARD_NO_PAD.encode(bytes));
    out.push(URL_SAFE.encode(bytes));
    out.push(URL_SAFE_NO_PAD.encode(bytes));
    for encoded in [
        encode_uri_component(value),
        form_urlencode(value),
        json_escape(value),
    ] {
        if encoded != value {
            out.push(encoded);
        }
    }
}

/// JavaScript's `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` becomes
/// `%XX` (upper-case hex) per UTF-8 byte.
pub(crate) fn encode_uri_component(s: &str) -> String {
    percent_encode(
        s,
        |b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
                )
        },
        false,
    )
}

/// `application/x-www-form-urlencoded` as `URLSearchParams` writes it: space is `+`, only
/// `A-Z a-z 0-9 * - . _` stay literal.
pub(crate) fn form_urlencode(s: &str) -> String {
    percent_encode(
        s,
        |b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_'),
        true,
    )
}

fn percent_encode(s: &str, literal: impl Fn(u8) -> bool, space_as_plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if literal(b) {
            out.push(char::from(b));
        } else if space_as_plus && b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}

/// `JSON.stringify(s)` without the surrounding quotes.
pub(crate) fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    // serde_json writes `"…"`; it never fails for a string.
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .map(str::to_owned)
        .unwrap_or(quoted)
}

/// Turns a stream of raw byte chunks into complete masked lines.
///
/// * Lines end at `\n`; the `\n` and one `\r` just before it are removed. Empty lines are
///   kept. A lone `\r` (progress bars) stays inside the line.
/// * Bytes that are not UTF-8 become U+FFFD after masking (so masking sees the raw bytes).
/// * A line longer than `max_line_bytes` is emitted in pieces of at most that many bytes, cut
///   at UTF-8 boundaries and never through a secret: the buffer keeps enough look-ahead that a
///   match in progress is complete before it decides where to cut. Memory stays bounded by
///   `max_line_bytes` plus the longest pattern, whatever the input.
/// * [`LineBuffer::finish`] emits the final partial line at end of stream (if any).
///
/// ```ignore
/// let mut buf = LineBuffer::new(masker);
/// buf.push(b"token=hun", |line| send(line));
/// buf.push(b"ter2\nnext", |line| send(line));   // emits "token=***"
/// buf.finish(|line| send(line));                   // emits "next"
/// ```
#[derive(Debug)]
pub struct LineBuffer {
    masker: Masker,
    pending: Vec<u8>,
    max_line_bytes: usize,
}

impl LineBuffer {
    /// A buffer with the default 64 KiB line limit.
    pub fn new(masker: Masker) -> Self {
        Self::with_max_line_bytes(masker, DEFAULT_MAX_LINE_BYTES)
    }

    /// A buffer whose emitted lines are at most `max_line_bytes` long (at least 4 bytes, so
    /// that a piece always holds one character).
    pub fn with_max_line_bytes(masker: Masker, max_line_bytes: usize) -> Self {
        LineBuffer {
            masker,
            pending: Vec::new(),
            max_line_bytes: max_line_bytes.max(4),
        }
    }

    /// Replaces the masker for lines not yet emitted (including the buffered partial line).
    pub fn set_masker(&mut self, masker: Masker) {
        self.masker = masker;
    }

    /// Bytes buffered for the current, incomplete line.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one chunk; calls `emit` for every line it completes, in order.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(String)) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(nl);
            if self.pending.is_empty() {
                self.emit_line(line, &mut emit);
            } else {
                self.pending.extend_from_slice(line);
                let full = std::mem::take(&mut self.pending);
                self.emit_line(&full, &mut emit);
                // Keep the allocation for the next partial line.
                self.pending = full;
                self.pending.clear();
            }
            rest = &after[1..];
        }
        if !rest.is_empty() {
            self.pending.extend_from_slice(rest);
            self.cut_long_pending(&mut emit);
        }
    }

    /// [`LineBuffer::push`] collecting the lines.
    pub fn push_lines(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        self.push(chunk, |l| lines.push(l));
        lines
    }

    /// End of stream: emits the partial last line, if there is one (a stream ending in `\n`
    /// has none, so `"a\n"` is one line, not two).
    pub fn finish(&mut self, mut emit: impl FnMut(String)) {
        if !self.pending.is_empty() {
            let full = std::mem::take(&mut self.pending);
            let line = full.strip_suffix(b"\r").unwrap_or(&full);
            self.emit_masked_split(line, &mut emit);
        }
    }

    /// [`LineBuffer::finish`] returning the line.
    pub fn finish_line(&mut self) -> Option<String> {
        let mut last = None;
        self.finish(|l| last = Some(l));
        last
    }

    fn emit_line(&self, line: &[u8], emit: &mut impl FnMut(String)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.emit_masked_split(line, emit);
    }

    /// Masks a complete line, then cuts the result into pieces. Cutting after masking means no
    /// secret can straddle a cut.
    fn emit_masked_split(&self, line: &[u8], emit: &mut impl FnMut(String)) {
        let masked = self.masker.mask_bytes(line);
        let mut rest: &[u8] = &masked;
        loop {
            if rest.len() <= self.max_line_bytes {
                emit(String::from_utf8_lossy(rest).into_owned());
                return;
            }
            let cut = utf8_cut(rest, self.max_line_bytes);
            emit(String::from_utf8_lossy(&rest[..cut]).into_owned());
            rest = &rest[cut..];
        }
    }

    /// Emits pieces of an over-long unfinished line while keeping the buffer bounded.
    fn cut_long_pending(&mut self, emit: &mut impl FnMut(String)) {
        let lookahead = self.masker.max_pattern_len();
        while self.pending.len() >= self.max_line_bytes + lookahead {
            // Every match that starts before the cut is complete in the buffer, because the
            // buffer extends at least one longest pattern past it.
            let spans = self.masker.find_spans(&self.pending);
            let mut cut = utf8_cut(&self.pending, self.max_line_bytes);
            if let Some(&(start, end)) = spans.iter().find(|&&(s, e)| s < cut && e > cut) {
                cut = if start > 0 { start } else { end };
            }
            let mut piece = Vec::with_capacity(cut);
            let mut last = 0;
            for &(s, e) in spans.iter().take_while(|&&(_, e)| e <= cut) {
                piece.extend_from_slice(&self.pending[last..s]);
                piece.extend_from_slice(MASK.as_bytes());
                last = e;
            }
            piece.extend_from_slice(&self.pending[last..cut]);
            emit(String::from_utf8_lossy(&piece).into_owned());
            self.pending.drain(..cut);
        }
    }
}

/// The largest cut point `≤ max` that does not split a UTF-8 sequence (falls back to `max`
/// when the bytes around it are not UTF-8 at all, so progress is guaranteed).
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let max = max.min(bytes.len());
    let mut cut = max;
    // A UTF-8 sequence is at most 4 bytes: look back at most 3 continuation bytes.
    while cut > 0 && max - cut < 4 && is_continuation(bytes.get(cut).copied()) {
        cut -= 1;
    }
    if cut == 0 || max - cut >= 4 { max } else { cut }
}

fn is_continuation(b: Option<u8>) -> bool {
    matches!(b, Some(b) if b & 0xC0 == 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(secrets: &[(&str, &str)]) -> Masker {
        Masker::new(secrets.iter().map(|&(k, v)| (k, v)))
    }

    #[test]
    fn masks_the_raw_value_everywhere() {
        let masker = m(&[("TOKEN", "hunter2")]);
        assert_eq!(masker.mask("a hunter2 b hunter2"), "a *** b ***");
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
        assert!(masker.warnings().is_empty());
    }

    #[test]
    fn short_values_warn_and_are_not_masked() {
        let masker = m(&[("A", "ab"), ("B", ""), ("C", "abc")]);
        assert_eq!(
            masker.warnings(),
            [
                "secret \"A\" is too short to be masked",
                "secret \"B\" is too short to be masked"
            ]
        );
        assert_eq!(masker.mask("ab abc"), "ab ***");
        // Three characters, not three bytes.
        let masker = m(&[("U", "éé")]);
        assert_eq!(masker.warnings().len(), 1);
        assert_eq!(masker.mask("éé"), "éé");
    }

    #[test]
    fn empty_masker_is_a_no_op() {
        let masker = Masker::empty();
        assert!(masker.is_empty());
        assert_eq!(masker.pattern_count(), 0);
        assert!(matches!(masker.mask("x"), Cow::Borrowed(_)));
        assert!(matches!(masker.mask_bytes(b"x"), Cow::Borrowed(_)));
    }

    #[test]
    fn masks_base64_forms() {
        let secret = "s3cr3t?>value"; // base64 contains '+' or '/' for '?>'
        let masker = m(&[("S", secret)]);
        for encoded in [
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
        ] {
            assert_eq!(
                masker.mask(&format!("x {encoded} y")),
                "x *** y",
                "{encoded}"
            );
        }
    }

    #[test]
    fn padded_base64_wins_over_unpadded() {
        let masker = m(&[("S", "abcd")]); // YWJjZA==
        assert_eq!(masker.mask("YWJjZA=="), "***");
    }

    #[test]
    fn masks_inside_a_longer_base64_stream_at_every_alignment() {
        let secret = "correct-horse-battery";
        let masker = m(&[("S", secret)]);
        for prefix_len in 0..6 {
            for suffix_len in 0..4 {
                let mut data = vec![b'Q'; prefix_len];
                data.extend_from_slice(secret.as_bytes());
                data.extend(std::iter::repeat_n(b'Z', suffix_len));
                let encoded = STANDARD.encode(&data);
                let masked = masker.mask(&encoded);
                assert!(
                    masked.contains(MASK),
                    "prefix {prefix_len} suffix {suffix_len}: {encoded} → {masked}"
                );
                // What is left around the mask encodes only the neighbours.
                assert!(masked.len() < encoded.len());
            }
        }
    }

    #[test]
    fn alignment_fragments_follow_the_spec_formula() {
        // value "abcdef" (6 bytes): o=0 → "YWJjZGVm" (len%3==0, r=0) → whole;
        // o=1 → base64("\0abcdef") = "AGFiY2RlZg" → [2..len-1] = "FiY2RlZ";
        // o=2 → base64("\0\0abcdef") = "AABhYmNkZWY" → [3..len-1] = "hYmNkZW".
        let mut out = Vec::new();
        patterns_for("abcdef", &mut out);
        for fragment in ["YWJjZGVm", "FiY2RlZ", "hYmNkZW"] {
            assert!(out.iter().any(|p| p == fragment), "{fragment} in {out:?}");
        }
        // Values under 6 bytes get no fragments.
        let mut out = Vec::new();
        patterns_for("abcde", &mut out);
        assert!(!out.iter().any(|p| p == "FiY2Rl"));
    }

    #[test]
    fn masks_percent_and_form_encoding() {
        let secret = "p@ss word/ü";
        let masker = m(&[("S", secret)]);
        assert_eq!(encode_uri_component(secret), "p%40ss%20word%2F%C3%BC");
        assert_eq!(form_urlencode(secret), "p%40ss+word%2F%C3%BC");
        assert_eq!(
            masker.mask("u=p%40ss%20word%2F%C3%BC&v=p%40ss+word%2F%C3%BC"),
            "u=***&v=***"
        );
    }

    #[test]
    fn masks_json_escaped_form() {
        let secret = "a\"b\\c\td";
        let masker = m(&[("S", secret)]);
        let json = serde_json::json!({ "k": secret }).to_string();
        assert_eq!(masker.mask(&json), r#"{"k":"***"}"#);
    }

    #[test]
    fn masks_each_line_of_a_multi_line_secret() {
        let secret = "-----BEGIN KEY-----\r\nMIIabc\r\nxy\r\n-----END KEY-----";
        let masker = m(&[("K", secret)]);
        assert_eq!(masker.mask("MIIabc"), "***");
        assert_eq!(masker.mask("-----END KEY-----"), "***");
        // "xy" is too short to be masked on its own.
        assert_eq!(masker.mask("xy"), "xy");
        assert_eq!(masker.mask(secret), "***");
    }

    #[test]
    fn leftmost_longest_between_overlapping_secrets() {
        let masker = m(&[("A", "abc"), ("B", "abcdef"), ("C", "defgh")]);
        assert_eq!(masker.mask("xabcdefghx"), "x***ghx");
        assert_eq!(masker.mask("abcabc"), "******");
    }

    #[test]
    fn mask_bytes_handles_invalid_utf8() {
        let masker = m(&[("S", "secret")]);
        let input = b"\xff\xfesecret\xc3";
        assert_eq!(masker.mask_bytes(input).as_ref(), b"\xff\xfe***\xc3");
    }

    #[test]
    fn with_secrets_extends_and_keeps_the_original() {
        let a = m(&[("A", "alpha1")]);
        let b = a.with_secrets([("B", "bravo2")]);
        assert_eq!(a.mask("alpha1 bravo2"), "*** bravo2");
        assert_eq!(b.mask("alpha1 bravo2"), "*** ***");
        let c = Masker::from_values(["xy"]);
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn debug_does_not_leak() {
        let masker = m(&[("S", "topsecret")]);
        assert!(!format!("{masker:?}").contains("topsecret"));
    }

    #[test]
    fn mask_json_masks_nested_strings_only() {
        let masker = m(&[("S", "topsecret")]);
        let mut v = serde_json::json!({
            "topsecret": ["a topsecret", 1, {"x": "topsecret"}],
            "n": null,
            "ok": "fine"
        });
        assert!(masker.mask_json(&mut v));
        assert_eq!(
            v,
            serde_json::json!({"topsecret": ["a ***", 1, {"x": "***"}], "n": null, "ok": "fine"})
        );
        assert!(!masker.mask_json(&mut v));
    }

    #[test]
    fn line_buffer_splits_and_keeps_empty_lines() {
        let mut buf = LineBuffer::new(Masker::empty());
        assert_eq!(buf.push_lines(b"a\n\nb\r\nc"), ["a", "", "b"]);
        assert_eq!(buf.push_lines(b"d\re"), Vec::<String>::new());
        assert_eq!(buf.finish_line().as_deref(), Some("cd\re"));
        assert_eq!(buf.finish_line(), None);
        // A stream ending in a newline has no extra empty line.
        let mut buf = LineBuffer::new(Masker::empty());
        assert_eq!(buf.push_lines(b"x\n"), ["x"]);
        assert_eq!(buf.finish_line(), None);
    }

    #[test]
    fn line_buffer_masks_a_secret_split_across_chunks() {
        let masker = m(&[("S", "hunter2")]);
        let input = b"login hunter2 ok\nagain hunter2\n";
        for split in 0..input.len() {
            let mut buf = LineBuffer::new(masker.clone());
            let mut lines = buf.push_lines(&input[..split]);
            lines.extend(buf.push_lines(&input[split..]));
            assert_eq!(buf.finish_line(), None);
            assert_eq!(lines, ["login *** ok", "again ***"], "split at {split}");
        }
        // Byte by byte.
        let mut buf = LineBuffer::new(masker);
        let mut lines = Vec::new();
        for &b in input {
            buf.push(&[b], |l| lines.push(l));
        }
        assert_eq!(lines, ["login *** ok", "again ***"]);
    }

    #[test]
    fn line_buffer_invalid_utf8_becomes_replacement_characters() {
        let masker = m(&[("S", "secret")]);
        let mut buf = LineBuffer::new(masker);
        assert_eq!(buf.push_lines(b"\xffsec"), Vec::<String>::new());
        assert_eq!(buf.push_lines(b"ret\xc3\n"), ["\u{fffd}***\u{fffd}"]);
    }

    #[test]
    fn long_lines_are_cut_without_splitting_secrets_or_characters() {
        let secret = "0123456789";
        let masker = m(&[("S", secret)]);
        // Put a secret across every possible cut position of a 16-byte limit.
        for offset in 0..20 {
            let mut line = "x".repeat(offset);
            line.push_str(secret);
            line.push_str(&"y".repeat(40));
            for chunk_size in [1, 3, 7, 100] {
                let mut buf = LineBuffer::with_max_line_bytes(masker.clone(), 16);
                let mut out = Vec::new();
                for chunk in line.as_bytes().chunks(chunk_size) {
                    buf.push(chunk, |l| out.push(l));
                }
                buf.finish(|l| out.push(l));
                let joined = out.concat();
                assert!(!joined.contains("0123"), "{offset}/{chunk_size}: {out:?}");
                assert!(joined.contains(MASK), "{offset}/{chunk_size}: {out:?}");
                assert!(out.iter().all(|l| l.len() <= 16), "{out:?}");
                assert_eq!(joined, line.replace(secret, MASK));
            }
        }
        // Multi-byte characters are never split.
        let mut buf = LineBuffer::with_max_line_bytes(Masker::empty(), 5);
        let out = buf.push_lines("éééééé\n".as_bytes());
        assert_eq!(out, ["éé", "éé", "éé"]);
        let mut buf = LineBuffer::with_max_line_bytes(Masker::empty(), 5);
        let mut out = buf.push_lines("éééééé".as_bytes());
        out.extend(buf.finish_line());
        assert_eq!(out.concat(), "éééééé");
        assert!(out.iter().all(|l| !l.contains('\u{fffd}')), "{out:?}");
    }

    #[test]
    fn pending_memory_is_bounded() {
        let masker = m(&[("S", "needle")]);
        let mut buf = LineBuffer::with_max_line_bytes(masker.clone(), 1024);
        let mut count = 0;
        for _ in 0..1000 {
            buf.push(&[b'a'; 100], |_| count += 1);
            assert!(buf.pending_len() < 1024 + masker.max_pattern_len() + 100);
        }
        assert!(count >= 90);
    }

    #[test]
    fn utf8_cut_never_returns_zero_for_garbage() {
        assert_eq!(utf8_cut(&[0x80; 10], 5), 5);
        assert_eq!(utf8_cut("aé".as_bytes(), 2), 1);
        assert_eq!(utf8_cut(b"abc", 10), 3);
    }
}
