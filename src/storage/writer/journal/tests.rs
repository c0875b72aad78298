//! The journal's files: entries come back in order, a torn or corrupt
//! tail ends a segment without losing what came before it, and only
//! segments the database holds entirely are deleted.

use super::*;
use crate::model::{LogRecord, SpanRecord};

fn batch(n: u64) -> Batch {
    Batch {
        spans: vec![SpanRecord {
            trace_id: format!("{n:032x}").into(),
            span_id: format!("{n:016x}").into(),
            name: format!("op {n}"),
            kind: "SERVER",
            status_code: "OK",
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            ..SpanRecord::default()
        }],
        logs: vec![LogRecord {
            body: Some(format!("log {n}")),
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..LogRecord::default()
        }],
        ..Batch::default()
    }
}

fn read_all(dir: &Path, watermark: u64) -> (Vec<(u64, String)>, Replayed) {
    let mut seen = Vec::new();
    let r = replay(dir, watermark, |n, b| {
        seen.push((n, b.spans[0].name.clone()));
        Ok(())
    })
    .unwrap();
    (seen, r)
}

fn only_segment(dir: &Path) -> PathBuf {
    let s = segments(dir).unwrap();
    assert_eq!(s.len(), 1, "{s:?}");
    s[0].1.clone()
}

#[test]
fn entries_come_back_in_order_after_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), 1).unwrap();
    for n in 1..=5 {
        assert_eq!(j.append(&batch(n)), n);
        if n % 2 == 0 {
            j.sync().unwrap();
        }
    }
    j.sync().unwrap();
    let (seen, r) = read_all(dir.path(), 2);
    let names: Vec<_> = seen.iter().map(|(n, s)| format!("{n}:{s}")).collect();
    assert_eq!(names, ["3:op 3", "4:op 4", "5:op 5"]);
    assert_eq!((r.entries, r.torn, r.next), (3, 0, 6));
    // Numbering continues past everything seen, even below the watermark.
    assert_eq!(read_all(dir.path(), 9).1.next, 10);
    assert_eq!(
        read_all(dir.path(), 5).1,
        Replayed {
            next: 6,
            ..Replayed::default()
        }
    );
}

#[test]
fn a_torn_or_corrupt_entry_ends_its_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), 1).unwrap();
    for n in 1..=3 {
        j.append(&batch(n));
    }
    j.sync().unwrap();
    drop(j);
    let seg = only_segment(dir.path());
    let len = fs::metadata(&seg).unwrap().len();
    // A crash in the middle of the last write.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let (seen, r) = read_all(dir.path(), 0);
    assert_eq!(seen.len(), 2);
    assert_eq!(r.torn, 1);

    // A flipped byte inside the second entry: its checksum fails, so the
    // segment ends after the first; a later segment is still read.
    let mut bytes = fs::read(&seg).unwrap();
    let second = HEADER + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    bytes[second + HEADER + 3] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();
    let mut j = Journal::open(dir.path(), 10).unwrap();
    j.append(&batch(10));
    j.sync().unwrap();
    let (seen, r) = read_all(dir.path(), 0);
    assert_eq!(
        seen.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 10],
        "{r:?}"
    );
    assert_eq!(r.torn, 1);
}

#[test]
fn a_failed_sync_cuts_its_entries_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), 1).unwrap();
    j.append(&batch(1));
    j.sync().unwrap();
    // Writing to a file opened read-only fails like a full disk would.
    j.file = File::open(only_segment(dir.path())).unwrap();
    j.append(&batch(2));
    assert!(j.sync().is_err());
    j.append(&batch(3));
    j.sync().unwrap();
    let (seen, _) = read_all(dir.path(), 0);
    assert_eq!(seen.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 3]);
}

#[test]
fn only_segments_the_database_holds_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), 1).unwrap();
    j.segment_bytes = 1; // a new segment after every sync
    for n in 1..=6 {
        j.append(&batch(n));
        if n % 2 == 0 {
            j.sync().unwrap();
        }
    }
    // Segments start at 1, 3, 5 and 7 (empty, being appended to).
    let firsts = |d: &Path| segments(d).unwrap().iter().map(|s| s.0).collect::<Vec<_>>();
    assert_eq!(firsts(dir.path()), [1, 3, 5, 7]);
    assert_eq!(forget_through(dir.path(), 3).unwrap(), 1);
    assert_eq!(firsts(dir.path()), [3, 5, 7]);
    assert_eq!(forget_through(dir.path(), 6).unwrap(), 2);
    assert_eq!(firsts(dir.path()), [7]);
    // The open segment stays even when everything is held.
    assert_eq!(forget_through(dir.path(), 100).unwrap(), 0);
    forget_all(dir.path()).unwrap();
    assert!(firsts(dir.path()).is_empty());
    assert_eq!(read_all(dir.path(), 0).1.next, 1);
}

#[test]
fn a_journal_of_another_database_is_set_aside() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("q.duckdb.journal");
    assert_eq!(claim(&dir, "db-1").unwrap(), None);
    let mut j = Journal::open(&dir, 1).unwrap();
    j.append(&batch(1));
    j.sync().unwrap();
    drop(j);
    // The same database again: its entries stay to be replayed.
    assert_eq!(claim(&dir, "db-1").unwrap(), None);
    assert_eq!(read_all(&dir, 0).0.len(), 1);
    // A new database at the same path must not get them.
    let aside = claim(&dir, "db-2").unwrap().expect("set aside");
    assert!(read_all(&dir, 0).0.is_empty());
    assert_eq!(read_all(&aside, 0).0.len(), 1, "kept beside");
    assert_eq!(fs::read_to_string(dir.join(OWNER)).unwrap(), "db-2");
}

#[test]
fn a_held_batch_outlives_forgetting_and_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path(), 1).unwrap();
    for n in 1..=3 {
        j.append(&batch(n));
    }
    j.sync().unwrap();
    let (path, new) = hold(dir.path(), 2, &batch(2)).unwrap();
    assert!(new);
    // Held again (a retry that failed): the same file, not a second one.
    assert_eq!(
        hold(dir.path(), 2, &batch(2)).unwrap(),
        (path.clone(), false)
    );
    forget_through(dir.path(), 100).unwrap();
    forget_all(dir.path()).unwrap();
    assert_eq!(held(dir.path()).unwrap(), [(2, path.clone())]);
    let back = read_held(&path).unwrap().expect("the held batch");
    assert_eq!((back.spans, back.logs), (batch(2).spans, batch(2).logs));
    // A replay (which starts after the watermark) does not see it twice.
    assert!(read_all(dir.path(), 0).0.is_empty());
    release(&path).unwrap();
    assert!(held(dir.path()).unwrap().is_empty());
    // A damaged file reads as nothing, and stays for a person to look at.
    let (path, _) = hold(dir.path(), 5, &batch(5)).unwrap();
    std::fs::write(&path, b"not an entry").unwrap();
    assert!(read_held(&path).unwrap().is_none());
}
