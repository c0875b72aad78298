//! Moving error groups to a new fingerprint version without splitting
//! their history. When [`FINGERPRINT_VERSION`] changes, a new event of an
//! old bug computes a hash no stored group has; left alone, every bug would
//! start over as a new group. So once, at start, each group of an older
//! version is fingerprinted again from its stored events (the parsed stack
//! trace each event keeps): the group takes the new keys, keeps its old
//! hashes as aliases, and groups the old rules split but the new ones do
//! not (the same bug under two deploy roots) are merged, oldest first, with
//! the same machinery a user's merge uses. Storage reads the inputs and
//! applies the plan (`storage::writer::derived::error_groups`); the
//! decisions are here.

use std::collections::HashMap;

use super::fingerprint::{fingerprint, ErrorSignature, Fingerprint, FINGERPRINT_VERSION};
use super::inapp::InAppRules;
use super::stacktrace::StackTrace;

/// A group as the plan sees it.
#[derive(Debug, Clone)]
pub struct OldGroup {
    pub id: i64,
    pub version: i32,
    pub rule: String,
    pub fingerprint: String,
    pub in_app_hash: Option<String>,
    pub full_stack_hash: Option<String>,
    /// The group's components (JSON array), for explicit fingerprints.
    pub components: String,
    pub first_seen: u64,
    /// The group it was folded into: its keys find that group, and it is
    /// never merged again itself.
    pub merged_into: Option<i64>,
}

impl OldGroup {
    fn keys(&self) -> Vec<String> {
        let mut keys = vec![self.fingerprint.clone()];
        if self.rule != "explicit" {
            keys.extend(self.in_app_hash.iter().cloned());
            keys.extend(self.full_stack_hash.iter().cloned());
        }
        keys
    }

    /// Rules whose keys come from frames (the explicit one when it embeds
    /// the default rules): what a fingerprint version changes.
    fn keyed_by_frames(&self) -> bool {
        match self.rule.as_str() {
            "in_app_frames" | "all_frames" => true,
            "explicit" => explicit_parts(&self.components).is_some(),
            _ => false,
        }
    }
}

/// The newest stored event of a group for one of the hashes its events
/// were recorded with.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub group_id: i64,
    /// The hash the event was grouped by when it arrived.
    pub fingerprint: String,
    pub time_unix_nano: u64,
    /// The parsed stack trace ([`StackTrace`] as JSON).
    pub frames: String,
    pub exception_type: Option<String>,
    pub message: Option<String>,
}

/// A group's keys under the current version.
#[derive(Debug, Clone, PartialEq)]
pub struct Rekeyed {
    pub id: i64,
    pub fingerprint: Fingerprint,
    /// Other hashes that find the group from now on: its old keys and the
    /// current keys of its other event variants.
    pub aliases: Vec<String>,
}

/// What to do with the stored groups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub rekeyed: Vec<Rekeyed>,
    /// Groups whose keys do not change (nothing in them comes from frames,
    /// or no event is left to read frames from): only their version moves.
    pub version_only: Vec<i64>,
    /// (target, sources): groups the current rules see as one bug.
    pub merges: Vec<(i64, Vec<i64>)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.rekeyed.is_empty() && self.version_only.is_empty() && self.merges.is_empty()
    }
}

/// Whether a group was keyed by an older version of the rules.
pub fn outdated(version: i32) -> bool {
    version < FINGERPRINT_VERSION as i32
}

/// Plans the move of every outdated group in `groups` (all stored groups,
/// so merges see the current ones too) using `events`, the newest event
/// per group and recorded hash.
pub fn plan(groups: &[OldGroup], events: &[StoredEvent], rules: &InAppRules) -> Plan {
    let mut by_group: HashMap<i64, Vec<&StoredEvent>> = HashMap::new();
    for e in events {
        by_group.entry(e.group_id).or_default().push(e);
    }
    let mut out = Plan::default();
    // Every live group's keys under the current rules; a merged group's
    // keys count as its target's.
    let live = |g: &OldGroup| live_target(groups, g);
    let mut keys: Vec<(i64, Vec<String>)> = Vec::new();
    for g in groups {
        let current = !outdated(g.version);
        let rekeyed = if !current && g.keyed_by_frames() {
            by_group.get(&g.id).and_then(|evs| rekey(g, evs, rules))
        } else {
            None
        };
        let own = match &rekeyed {
            Some(r) => r.fingerprint.hashes().map(str::to_string).collect(),
            None => g.keys(),
        };
        if let Some(target) = live(g) {
            keys.push((target, own));
        }
        match rekeyed {
            Some(r) => out.rekeyed.push(r),
            None if !current => out.version_only.push(g.id),
            None => {}
        }
    }
    out.merges = merges(groups, &keys);
    out
}

/// The live group `g`'s keys lead to: itself, or the end of its merges.
fn live_target(groups: &[OldGroup], g: &OldGroup) -> Option<i64> {
    let mut id = g.id;
    let mut next = g.merged_into;
    for _ in 0..16 {
        let Some(n) = next else {
            return Some(id);
        };
        id = n;
        next = groups.iter().find(|x| x.id == n)?.merged_into;
    }
    None
}

/// The group's keys from its events: the one recorded with the group's own
/// hash (else the newest) decides; the others' keys become aliases.
fn rekey(g: &OldGroup, events: &[&StoredEvent], rules: &InAppRules) -> Option<Rekeyed> {
    let mut computed: Vec<(&StoredEvent, Fingerprint)> = events
        .iter()
        .filter_map(|e| refingerprint(g, e, rules).map(|f| (*e, f)))
        .collect();
    // Newest first, the group's own hash before any other.
    computed.sort_by_key(|(e, _)| {
        (
            e.fingerprint != g.fingerprint,
            std::cmp::Reverse(e.time_unix_nano),
        )
    });
    let mut iter = computed.into_iter();
    let (_, primary) = iter.next()?;
    let own: Vec<String> = primary.hashes().map(str::to_string).collect();
    let mut aliases: Vec<String> = Vec::new();
    let others = g
        .keys()
        .into_iter()
        .chain(iter.flat_map(|(_, f)| f.hashes().map(str::to_string).collect::<Vec<_>>()));
    for h in others {
        if !own.contains(&h) && !aliases.contains(&h) {
            aliases.push(h);
        }
    }
    Some(Rekeyed {
        id: g.id,
        fingerprint: primary,
        aliases,
    })
}

/// One stored event fingerprinted by the current rules, with the in-app
/// verdicts of the current rules too.
fn refingerprint(g: &OldGroup, e: &StoredEvent, rules: &InAppRules) -> Option<Fingerprint> {
    let mut trace: StackTrace = serde_json::from_str(&e.frames).ok()?;
    trace.classify(rules);
    let explicit = if g.rule == "explicit" {
        Some(explicit_parts(&g.components)?)
    } else {
        None
    };
    let f = fingerprint(&ErrorSignature {
        exception_type: e.exception_type.as_deref(),
        message: e.message.as_deref(),
        stacktrace: Some(&trace),
        explicit: explicit.as_deref(),
        ..Default::default()
    });
    Some(f)
}

/// An explicit fingerprint's parts back from its components: `custom:`
/// components are the user's parts, and each run of other components is
/// where `{{ default }}` stood. `None` when it has no default part (then
/// the rules' version does not matter to it).
fn explicit_parts(components: &str) -> Option<Vec<String>> {
    let components: Vec<String> = serde_json::from_str(components).ok()?;
    let mut parts = Vec::new();
    let mut in_default = false;
    let mut has_default = false;
    for c in &components {
        match c.strip_prefix("custom:") {
            Some(custom) => {
                parts.push(custom.to_string());
                in_default = false;
            }
            None if !in_default => {
                parts.push("{{ default }}".to_string());
                in_default = true;
                has_default = true;
            }
            None => {}
        }
    }
    has_default.then_some(parts)
}

/// Groups sharing a key join the oldest of them (first seen, then lowest
/// id).
fn merges(groups: &[OldGroup], keys: &[(i64, Vec<String>)]) -> Vec<(i64, Vec<i64>)> {
    let mut ids: Vec<i64> = keys.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let index: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (id, ks) in keys {
        let i = index[id];
        for k in ks {
            match owner.get(k.as_str()) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    if a != b {
                        parent[a] = b;
                    }
                }
                None => {
                    owner.insert(k, i);
                }
            }
        }
    }
    let first_seen: HashMap<i64, u64> = groups.iter().map(|g| (g.id, g.first_seen)).collect();
    let mut sets: HashMap<usize, Vec<i64>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let r = root(&mut parent, i);
        sets.entry(r).or_default().push(*id);
    }
    let mut out: Vec<(i64, Vec<i64>)> = sets
        .into_values()
        .filter(|ids| ids.len() > 1)
        .map(|mut ids| {
            ids.sort_by_key(|id| (first_seen.get(id).copied().unwrap_or(u64::MAX), *id));
            let target = ids.remove(0);
            (target, ids)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::fingerprint::hash_components;
    use crate::errors::stacktrace::{parse_stacktrace, LanguageHint};

    fn trace(vite_hash: &str) -> String {
        format!(
            "TypeError: Cannot read properties of undefined (reading 'price')
    at renderCart (https://shop.acme.io/assets/index-{vite_hash}.js:1:200)
    at updateCart (https://shop.acme.io/assets/index-{vite_hash}.js:1:90)
"
        )
    }

    /// A group as version 1 stored it, and its newest event.
    fn v1(id: i64, first_seen: u64, vite_hash: &str) -> (OldGroup, StoredEvent) {
        let text = trace(vite_hash);
        let hint = LanguageHint {
            sdk_language: Some("webjs"),
            exception_type: None,
        };
        let parsed = parse_stacktrace(&text, hint, &InAppRules::default()).expect("parses");
        // Version 1 kept the (non-hex) hash in the file name.
        let components: Vec<String> = vec![
            "type:TypeError".into(),
            format!("frame:index-{vite_hash}.js renderCart"),
            format!("frame:index-{vite_hash}.js updateCart"),
        ];
        let hash = hash_components(&components);
        (
            OldGroup {
                id,
                version: 1,
                rule: "in_app_frames".into(),
                fingerprint: hash.clone(),
                in_app_hash: Some(hash.clone()),
                full_stack_hash: Some(hash.clone()),
                components: serde_json::to_string(&components).unwrap(),
                first_seen,
                merged_into: None,
            },
            StoredEvent {
                group_id: id,
                fingerprint: hash,
                time_unix_nano: first_seen + 10,
                frames: serde_json::to_string(&parsed).unwrap(),
                exception_type: Some("TypeError".into()),
                message: Some("Cannot read properties of undefined (reading 'price')".into()),
            },
        )
    }

    #[test]
    fn groups_split_by_a_bundle_hash_are_rekeyed_and_merged_oldest_first() {
        let (a, ea) = v1(7, 2_000, "BfK3x9Zq");
        let (b, eb) = v1(3, 1_000, "Qw3rTy5u");
        let other = OldGroup {
            id: 9,
            version: 1,
            rule: "type_message".into(),
            fingerprint: "tm".into(),
            in_app_hash: None,
            full_stack_hash: None,
            components: "[\"type:X\"]".into(),
            first_seen: 5,
            merged_into: None,
        };
        let p = plan(
            &[a.clone(), b.clone(), other],
            &[ea, eb],
            &InAppRules::default(),
        );
        assert_eq!(p.rekeyed.len(), 2);
        let ra = p.rekeyed.iter().find(|r| r.id == 7).unwrap();
        let rb = p.rekeyed.iter().find(|r| r.id == 3).unwrap();
        assert_eq!(ra.fingerprint.hash, rb.fingerprint.hash);
        assert_eq!(ra.fingerprint.version, FINGERPRINT_VERSION);
        assert_eq!(
            ra.fingerprint.components,
            [
                "type:TypeError",
                "frame:index renderCart",
                "frame:index updateCart"
            ]
        );
        assert!(
            ra.aliases.contains(&a.fingerprint),
            "the old key still finds it"
        );
        assert_eq!(p.version_only, [9]);
        // The older group (first seen earlier) keeps the history.
        assert_eq!(p.merges, [(3, vec![7])]);
    }

    #[test]
    fn groups_without_events_or_frames_keep_their_keys() {
        let (a, _) = v1(1, 10, "BfK3x9Zq");
        let p = plan(&[a], &[], &InAppRules::default());
        assert!(p.rekeyed.is_empty());
        assert_eq!(p.version_only, [1]);
        assert!(p.merges.is_empty());
        // Current groups are left alone.
        let (mut c, ec) = v1(2, 10, "BfK3x9Zq");
        c.version = FINGERPRINT_VERSION as i32;
        let p = plan(&[c], &[ec], &InAppRules::default());
        assert!(p.is_empty());
    }

    #[test]
    fn explicit_fingerprints_keep_their_own_parts() {
        assert_eq!(
            explicit_parts(r#"["custom:checkout","type:X","frame:a f","custom:eu"]"#),
            Some(vec![
                "checkout".to_string(),
                "{{ default }}".to_string(),
                "eu".to_string()
            ])
        );
        assert_eq!(explicit_parts(r#"["custom:only"]"#), None);
        let (mut g, e) = v1(4, 10, "BfK3x9Zq");
        g.rule = "explicit".into();
        g.components =
            r#"["custom:cart","type:TypeError","frame:index-BfK3x9Zq.js renderCart"]"#.into();
        let p = plan(&[g], &[e], &InAppRules::default());
        let r = &p.rekeyed[0];
        assert_eq!(r.fingerprint.components[0], "custom:cart");
        assert_eq!(r.fingerprint.components[2], "frame:index renderCart");
    }

    #[test]
    fn a_merged_groups_keys_lead_to_its_target() {
        // 2 was merged into 1 by a user; 3 is the same bug as 2 from another
        // deploy. Under the current rules 3 belongs with 1, the live group.
        let (a, ea) = v1(1, 30, "Aa1Bb2Cc");
        let (mut b, _) = v1(2, 10, "BfK3x9Zq");
        b.merged_into = Some(1);
        let (_, mut eb) = v1(2, 10, "BfK3x9Zq");
        eb.group_id = 1;
        let (c, ec) = v1(3, 20, "Qw3rTy5u");
        let p = plan(&[a, b, c], &[ea, eb, ec], &InAppRules::default());
        // The merged group is never a target or a source again.
        assert_eq!(p.merges, [(3, vec![1])]);
        assert!(p.version_only.contains(&2));
        let r1 = p.rekeyed.iter().find(|r| r.id == 1).unwrap();
        assert!(!r1.aliases.contains(&r1.fingerprint.hash));
    }
}
