//! Which of two releases is newer. Regression detection asks this for
//! "resolved in next release": an event regresses the group only when its
//! release comes after the one the fix was marked for.
//!
//! Versions are compared as semantic versions (the `semver` crate, with a
//! leading `v` and missing minor/patch tolerated) when every release of the
//! service in that environment reads as one; otherwise by the order they
//! were first seen, which is the deploy order.

use std::cmp::Ordering;

/// `1.2.3`, `v1.2`, `2` or `1.2.3-rc.1+build` as a semantic version.
pub fn parse_version(text: &str) -> Option<semver::Version> {
    let t = text.trim();
    let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
    if let Ok(v) = semver::Version::parse(t) {
        return Some(v);
    }
    // `1.2` and `2`: pad the missing parts (before any pre-release or build).
    let cut = t.find(['-', '+']).unwrap_or(t.len());
    let (core, rest) = t.split_at(cut);
    let parts = core.split('.').count();
    if core.is_empty() || parts >= 3 {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    semver::Version::parse(&padded).ok()
}

/// A release as the ordering needs it.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseInfo<'a> {
    pub version: &'a str,
    pub first_seen: u64,
}

/// Orders `a` against `b`. `all_semver` says whether every release of the
/// service and environment parses (only then is semver trusted: one
/// non-semver tag means the team does not version that way).
pub fn compare(a: ReleaseInfo<'_>, b: ReleaseInfo<'_>, all_semver: bool) -> Ordering {
    if a.version == b.version {
        return Ordering::Equal;
    }
    if all_semver {
        if let (Some(x), Some(y)) = (parse_version(a.version), parse_version(b.version)) {
            return x.cmp(&y);
        }
    }
    a.first_seen
        .cmp(&b.first_seen)
        .then_with(|| a.version.cmp(b.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(version: &str, first_seen: u64) -> ReleaseInfo<'_> {
        ReleaseInfo {
            version,
            first_seen,
        }
    }

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(parse_version("v1.2").unwrap().to_string(), "1.2.0");
        assert_eq!(parse_version("2").unwrap().to_string(), "2.0.0");
        assert_eq!(parse_version("1.2-rc.1").unwrap().to_string(), "1.2.0-rc.1");
        assert!(parse_version("abc123").is_none());
        assert!(parse_version("").is_none());
    }

    #[test]
    fn semver_when_all_parse_else_first_seen() {
        // 1.10.0 deployed before 1.9.1 (a hotfix on an old branch): semver
        // says 1.10 is newer.
        assert_eq!(
            compare(r("1.10.0", 1), r("1.9.1", 2), true),
            Ordering::Greater
        );
        assert_eq!(
            compare(r("1.10.0", 1), r("1.9.1", 2), false),
            Ordering::Less
        );
        assert_eq!(compare(r("abc", 5), r("def", 3), true), Ordering::Greater);
        assert_eq!(compare(r("v2", 0), r("v2", 9), true), Ordering::Equal);
    }
}
