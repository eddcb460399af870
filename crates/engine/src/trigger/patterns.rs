//! Pattern lists with list-level exclusion (`triggers.md` §4.1, `fixes.md` F54) and the
//! `paths` filter (`triggers.md` §5).

use super::{EcmaRegex, LockBranchPattern, MatchError};
use crate::glob::Glob;

/// One inclusion: a glob or an ECMAScript regex.
enum Inclusion {
    Glob(Glob),
    Regex(EcmaRegex),
}

impl Inclusion {
    fn is_match(&self, value: &str) -> bool {
        match self {
            Inclusion::Glob(glob) => glob.is_match(value),
            Inclusion::Regex(regex) => regex.test(value),
        }
    }
}

/// A compiled, non-empty pattern list: `!`-prefixed globs exclude, everything else
/// (regexes included) includes.
pub(crate) struct PatternList {
    exclusions: Vec<Glob>,
    inclusions: Vec<Inclusion>,
    /// Texts for the trace, exclusions without their `!`.
    exclusion_texts: Vec<String>,
    inclusion_texts: Vec<String>,
}

pub(crate) fn compile_glob(pattern: &str) -> Result<Glob, MatchError> {
    Glob::new(pattern).map_err(|e| MatchError::InvalidGlob {
        pattern: pattern.to_string(),
        message: e.to_string(),
    })
}

pub(crate) fn compile_regex(pattern: &str, flags: Option<&str>) -> Result<EcmaRegex, MatchError> {
    EcmaRegex::new(pattern, flags.unwrap_or("")).map_err(|e| MatchError::InvalidRegex {
        pattern: e.pattern,
        flags: e.flags,
        message: e.message,
    })
}

impl PatternList {
    pub(crate) fn from_lock(patterns: &[LockBranchPattern]) -> Result<Self, MatchError> {
        let mut list = PatternList::empty();
        for pattern in patterns {
            match pattern {
                LockBranchPattern::Glob { pattern } => list.add_glob(pattern)?,
                LockBranchPattern::Regex { pattern, flags } => {
                    list.inclusions
                        .push(Inclusion::Regex(compile_regex(pattern, flags.as_deref())?));
                    list.inclusion_texts.push(pattern.clone());
                }
            }
        }
        Ok(list)
    }

    pub(crate) fn from_globs(patterns: &[String]) -> Result<Self, MatchError> {
        let mut list = PatternList::empty();
        for pattern in patterns {
            list.add_glob(pattern)?;
        }
        Ok(list)
    }

    fn empty() -> Self {
        PatternList {
            exclusions: Vec::new(),
            inclusions: Vec::new(),
            exclusion_texts: Vec::new(),
            inclusion_texts: Vec::new(),
        }
    }

    fn add_glob(&mut self, pattern: &str) -> Result<(), MatchError> {
        match pattern.strip_prefix('!') {
            Some(excluded) => {
                self.exclusions.push(compile_glob(excluded)?);
                self.exclusion_texts.push(excluded.to_string());
            }
            None => {
                self.inclusions
                    .push(Inclusion::Glob(compile_glob(pattern)?));
                self.inclusion_texts.push(pattern.to_string());
            }
        }
        Ok(())
    }

    pub(crate) fn is_excluded(&self, value: &str) -> bool {
        self.exclusions.iter().any(|g| g.is_match(value))
    }

    pub(crate) fn is_included(&self, value: &str) -> bool {
        self.inclusions.iter().any(|i| i.is_match(value))
    }

    pub(crate) fn has_inclusions(&self) -> bool {
        !self.inclusions.is_empty()
    }

    /// §4.1: excluded → no; no inclusions → yes; else some inclusion matches.
    pub(crate) fn matches(&self, value: &str) -> bool {
        !self.is_excluded(value) && (!self.has_inclusions() || self.is_included(value))
    }

    /// `include:[a, b] exclude:[c]` (the `repos` rendering).
    pub(crate) fn render_compact(&self) -> String {
        format!(
            "include:[{}] exclude:[{}]",
            self.inclusion_texts.join(", "),
            self.exclusion_texts.join(", ")
        )
    }

    /// `include: [a, b] exclude: [c]` (the `paths` rendering).
    pub(crate) fn render_spaced(&self) -> String {
        format!(
            "include: [{}] exclude: [{}]",
            self.inclusion_texts.join(", "),
            self.exclusion_texts.join(", ")
        )
    }
}

/// The outcome of the `paths` filter: whether it passed and, for the non-obvious cases, why.
pub(crate) struct PathsOutcome {
    pub passed: bool,
    pub reason: Option<&'static str>,
}

/// `triggers.md` §5 for a non-empty `paths` list.
pub(crate) fn match_paths(
    list: &PatternList,
    changed_files: Option<&[String]>,
    truncated: bool,
) -> PathsOutcome {
    let fail = |reason| PathsOutcome {
        passed: false,
        reason: Some(reason),
    };
    let Some(files) = changed_files else {
        return fail("changed files unknown");
    };
    if files.is_empty() {
        return fail("no changed files");
    }
    if truncated {
        return PathsOutcome {
            passed: true,
            reason: Some("changed file list truncated; assuming match"),
        };
    }
    let remaining: Vec<&String> = files.iter().filter(|f| !list.is_excluded(f)).collect();
    if remaining.is_empty() {
        return fail("all changed files excluded");
    }
    let passed = !list.has_inclusions() || remaining.iter().any(|f| list.is_included(f));
    PathsOutcome {
        passed,
        reason: None,
    }
}
