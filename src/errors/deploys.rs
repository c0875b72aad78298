//! Deploys and error groups. A deploy is a release of a service seen for the
//! first time: in telemetry (`service.version`) or recorded by CI
//! (`POST /api/v1/releases`). The writer asks this module, with the
//! [`GroupBook`] in hand, what a commit means for groups around deploys:
//!
//! - which groups became new or regressed, and where (one change row each,
//!   so a group's first event or regression can be laid at a deploy's door
//!   when read: "started with 1.5.0");
//! - which groups marked "resolved in the next release" a new release
//!   fixes (`fixed`): the first release of one of the group's services in
//!   its environment that is newer than the release it was marked in and
//!   appeared after the marking. An event from that release (or any newer
//!   one) regresses the group, as `groups` decides;
//! - which unresolved groups went quiet after a deploy (`quiet`): no event
//!   since the latest deploy of one of their services, in their
//!   environment, while that release has been seen running for
//!   `[errors] auto_resolve_after_deploy`. Those are resolved (`auto`).
//!
//! The window after a deploy in which groups, error rates and latency are
//! compared ([`window_end`]) is `[errors] deploy_window` long, or ends at
//! the next deploy of the same service and environment if that is sooner.

use std::collections::{HashMap, HashSet};

use super::groups::{GroupBook, Release, ReleaseKey};
use crate::model::errors::GroupChange;
use crate::model::Record;

/// One row of `error_group_changes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub group_id: i64,
    /// `new`, `regressed`, `fixed` or `quiet`.
    pub change: &'static str,
    pub time_unix_nano: u64,
    pub service: String,
    pub environment: Option<String>,
    /// The event's release (`new`, `regressed`), or the deploy's.
    pub release: Option<String>,
}

/// Where a deploy's window ends: `window_ns` after `deployed`, or at the
/// next deploy of the service if that comes first (then `true`).
pub fn window_end(deployed: u64, next: Option<u64>, window_ns: u64) -> (u64, bool) {
    let end = deployed.saturating_add(window_ns);
    match next {
        Some(n) if n < end => (n.max(deployed), true),
        _ => (end, false),
    }
}

/// The groups that became new or regressed, from the events a commit is
/// about to publish.
pub fn changes_from_events(publish: &[Record]) -> Vec<ChangeRow> {
    publish
        .iter()
        .filter_map(|r| match r {
            Record::Error(e) => {
                let time = match e.change {
                    GroupChange::New => e.first_seen_unix_nano,
                    GroupChange::Regressed => e.last_seen_unix_nano,
                    _ => return None,
                };
                Some(ChangeRow {
                    group_id: e.group_id,
                    change: e.change.as_str(),
                    time_unix_nano: time,
                    service: e.service_name.clone(),
                    environment: e.environment.clone(),
                    release: e.release.clone(),
                })
            }
            _ => None,
        })
        .collect()
}

/// Every release the book knows, this commit's staged ones included.
fn releases(book: &GroupBook) -> impl Iterator<Item = (&ReleaseKey, &Release)> {
    book.staged.releases.iter().chain(
        book.state
            .releases
            .iter()
            .filter(|(k, _)| !book.staged.releases.contains_key(*k)),
    )
}

/// Every group id, this commit's new ones included.
fn group_ids(book: &GroupBook) -> Vec<i64> {
    let mut ids: Vec<i64> = book.state.groups.keys().copied().collect();
    ids.extend(
        book.staged
            .groups
            .keys()
            .filter(|id| !book.state.groups.contains_key(id)),
    );
    ids.sort_unstable();
    ids
}

/// The groups "resolved in the next release" that releases first seen in
/// this commit (and not in `done`, which collects them) fix. Nothing about
/// the group changes: it was resolved when marked, and an event from the
/// fixing release regresses it (`groups`); the row records which release
/// the fix shipped in.
pub fn fixed_by_new_releases(book: &GroupBook, done: &mut HashSet<ReleaseKey>) -> Vec<ChangeRow> {
    let new: Vec<&ReleaseKey> = book
        .staged
        .releases
        .keys()
        .filter(|k| !book.state.releases.contains_key(*k) && !done.contains(*k))
        .collect();
    if new.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for id in group_ids(book) {
        let Some(g) = book.group(id) else {
            continue;
        };
        let (Some(marked_in), Some(marked_at)) = (&g.resolved_in_release, g.resolved_at) else {
            continue;
        };
        if g.status != "resolved" || g.substatus != "in_next_release" {
            continue;
        }
        let env = g.resolved_environment.as_ref();
        // The fix is the earliest release after the marking that is newer
        // than the marked one, in any of the group's services.
        let fix = releases(book)
            .filter(|((s, e, v), r)| {
                e.as_ref() == env
                    && g.services.contains(s)
                    && r.first_seen >= marked_at
                    && book.is_newer(s, env, v, marked_in)
            })
            .min_by_key(|((s, _, v), r)| (r.first_seen, s.clone(), v.clone()));
        if let Some((key, r)) = fix {
            if new.contains(&key) {
                rows.push(ChangeRow {
                    group_id: id,
                    change: "fixed",
                    time_unix_nano: r.first_seen,
                    service: key.0.clone(),
                    environment: key.1.clone(),
                    release: Some(key.2.clone()),
                });
            }
        }
    }
    done.extend(new.into_iter().cloned());
    rows
}

/// Resolves (`auto`) the unresolved groups with no event since the latest
/// deploy of one of their services in their environment, once that release
/// has been seen running for `quiet_ns`.
pub fn resolve_quiet(book: &mut GroupBook, quiet_ns: u64, at_unix_nano: u64) -> Vec<ChangeRow> {
    let mut latest: HashMap<(&str, Option<&str>), (&str, &Release)> = HashMap::new();
    for ((s, e, v), r) in releases(book) {
        let slot = latest.entry((s, e.as_deref())).or_insert((v, r));
        if (r.first_seen, v.as_str()) > (slot.1.first_seen, slot.0) {
            *slot = (v, r);
        }
    }
    let mut quiet: Vec<(i64, ChangeRow)> = Vec::new();
    for id in group_ids(book) {
        let Some(g) = book.group(id) else {
            continue;
        };
        if g.status != "unresolved" {
            continue;
        }
        let env = g.last_environment.as_deref();
        let deploy = g.services.iter().find_map(|s| {
            let (v, r) = latest.get(&(s.as_str(), env))?;
            let ran_quietly =
                r.first_seen > g.last_seen && r.last_seen >= r.first_seen.saturating_add(quiet_ns);
            ran_quietly.then(|| (s.clone(), v.to_string()))
        });
        if let Some((service, version)) = deploy {
            quiet.push((
                id,
                ChangeRow {
                    group_id: id,
                    change: "quiet",
                    time_unix_nano: at_unix_nano,
                    service,
                    environment: g.last_environment.clone(),
                    release: Some(version),
                },
            ));
        }
    }
    let mut rows = Vec::with_capacity(quiet.len());
    for (id, row) in quiet {
        if let Some(g) = book.group_mut(id) {
            g.status = "resolved".into();
            g.substatus = "auto".into();
            g.resolved_at = Some(at_unix_nano);
            rows.push(row);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::groups::{GroupSettings, State};
    use crate::model::errors::{ErrorCommand, ErrorOccurrence, StatusChange};

    const SEC: u64 = 1_000_000_000;

    fn occurrence(t: u64, release: &str) -> ErrorOccurrence {
        ErrorOccurrence {
            event_id: format!("e{t}"),
            source: "span_status",
            time_unix_nano: t * SEC,
            service_name: "api".into(),
            release: Some(release.into()),
            environment: Some("prod".into()),
            fingerprint: "f".into(),
            fingerprint_rule: "span_name",
            category: "status",
            components: "[]".into(),
            ..ErrorOccurrence::default()
        }
    }

    fn book() -> GroupBook {
        GroupBook::new(
            GroupSettings::default(),
            State {
                next_id: 1,
                ..State::default()
            },
        )
    }

    /// Runs what the writer runs for a commit of telemetry releases and
    /// occurrences; returns the change rows.
    fn commit(
        b: &mut GroupBook,
        releases: &[(&str, u64)],
        events: &[(u64, &str)],
    ) -> Vec<ChangeRow> {
        for (v, t) in releases {
            b.see_release("api", Some("prod"), v, t * SEC, "telemetry");
        }
        let mut done = HashSet::new();
        let mut rows = fixed_by_new_releases(b, &mut done);
        for (t, v) in events {
            b.see_release("api", Some("prod"), v, t * SEC, "telemetry");
            b.record(&occurrence(*t, v));
        }
        rows.extend(changes_from_events(&b.staged.publish));
        b.commit(&mut Vec::new());
        rows
    }

    fn kinds(rows: &[ChangeRow]) -> Vec<(&str, Option<&str>)> {
        rows.iter()
            .map(|r| (r.change, r.release.as_deref()))
            .collect()
    }

    #[test]
    fn windows_end_at_the_next_deploy_when_it_is_sooner() {
        assert_eq!(window_end(100, None, 50), (150, false));
        assert_eq!(window_end(100, Some(120), 50), (120, true));
        assert_eq!(window_end(100, Some(200), 50), (150, false));
    }

    #[test]
    fn the_next_newer_release_fixes_a_group_once() {
        let mut b = book();
        let rows = commit(&mut b, &[], &[(10, "1.4.0")]);
        assert_eq!(kinds(&rows), vec![("new", Some("1.4.0"))]);
        b.command(&ErrorCommand::SetStatus {
            group_id: 1,
            change: StatusChange::ResolveInNextRelease,
            at_unix_nano: 20 * SEC,
        });
        b.commit(&mut Vec::new());
        // An older release deployed afterwards fixes nothing.
        assert!(commit(&mut b, &[("1.3.9", 30)], &[]).is_empty());
        // 1.5.0 does, once; 1.6.0 after it does not fix it again.
        let rows = commit(&mut b, &[("1.5.0", 40)], &[]);
        assert_eq!(kinds(&rows), vec![("fixed", Some("1.5.0"))]);
        assert_eq!(rows[0].time_unix_nano, 40 * SEC);
        assert!(commit(&mut b, &[("1.6.0", 50)], &[]).is_empty());
        assert_eq!(b.group(1).unwrap().status, "resolved");
        // The bug comes back on 1.6.0: regressed.
        let rows = commit(&mut b, &[], &[(60, "1.6.0")]);
        assert_eq!(kinds(&rows), vec![("regressed", Some("1.6.0"))]);
        assert_eq!(b.group(1).unwrap().substatus, "regressed");
    }

    #[test]
    fn a_fix_and_its_regression_in_one_commit_are_both_recorded() {
        let mut b = book();
        commit(&mut b, &[], &[(10, "2.0.0")]);
        b.command(&ErrorCommand::SetStatus {
            group_id: 1,
            change: StatusChange::ResolveInNextRelease,
            at_unix_nano: 20 * SEC,
        });
        b.commit(&mut Vec::new());
        let rows = commit(&mut b, &[("2.1.0", 30)], &[(30, "2.1.0")]);
        assert_eq!(
            kinds(&rows),
            vec![("fixed", Some("2.1.0")), ("regressed", Some("2.1.0"))]
        );
    }

    #[test]
    fn groups_go_quiet_only_once_the_new_release_ran_long_enough() {
        let mut b = book();
        commit(&mut b, &[], &[(10, "1.0.0")]);
        // 1.1.0 deployed at 100 s and seen until 150 s: quiet for 50 s.
        commit(&mut b, &[("1.1.0", 100), ("1.1.0", 150)], &[]);
        assert!(resolve_quiet(&mut b, 60 * SEC, 200 * SEC).is_empty());
        b.commit(&mut Vec::new());
        commit(&mut b, &[("1.1.0", 170)], &[]);
        let rows = resolve_quiet(&mut b, 60 * SEC, 300 * SEC);
        assert_eq!(kinds(&rows), vec![("quiet", Some("1.1.0"))]);
        b.commit(&mut Vec::new());
        let g = b.group(1).unwrap();
        assert_eq!(
            (g.status.as_str(), g.substatus.as_str()),
            ("resolved", "auto")
        );
        // A group seen after the latest deploy stays open.
        let mut b = book();
        commit(&mut b, &[("1.1.0", 100), ("1.1.0", 400)], &[(120, "1.1.0")]);
        assert!(resolve_quiet(&mut b, 60 * SEC, 500 * SEC).is_empty());
    }
}
