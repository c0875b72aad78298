//! qyl's own panics as errors of service `qyl`: a panic hook turns each
//! into a FATAL log record with `exception.*` attributes (the message, the
//! location, the backtrace in Rust's printed form) and queues it like any
//! export, so it is stored, grouped by its frames and shown next to the
//! application's errors. Queueing never blocks: when the write queue is full
//! the report is dropped (the panic is still printed by the default hook).

use std::backtrace::Backtrace;
use std::panic::PanicHookInfo;

use super::capture::Capture;
use crate::ingest::jsonw::push_str;
use crate::ingest::Exporter;
use crate::model::now_unix_nano;
use crate::model::{Batch, LogRecord};

/// The service name qyl reports its own errors under.
pub const SERVICE: &str = "qyl";

/// The report of one panic: a log record and the error capture found in it.
pub fn panic_batch(
    capture: &Capture,
    thread: &str,
    message: &str,
    location: Option<&str>,
    backtrace: &str,
    time: u64,
) -> Batch {
    let header = format!(
        "thread '{thread}' panicked at {}:\n{message}\nstack backtrace:\n{backtrace}",
        location.unwrap_or("<unknown>")
    );
    let mut attributes = String::from("{\"exception.type\":\"panic\",\"exception.message\":");
    push_str(&mut attributes, message);
    attributes.push_str(",\"exception.stacktrace\":");
    push_str(&mut attributes, &header);
    attributes.push_str(",\"thread.name\":");
    push_str(&mut attributes, thread);
    attributes.push('}');
    let mut resource = String::from("{\"service.name\":\"qyl\",\"service.version\":");
    push_str(&mut resource, env!("CARGO_PKG_VERSION"));
    resource.push_str(",\"telemetry.sdk.language\":\"rust\"}");
    let log = LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: 21,
        severity_text: Some("FATAL".into()),
        body: Some(format!("panic: {message}")),
        service_name: SERVICE.into(),
        service_version: Some(env!("CARGO_PKG_VERSION").into()),
        event_name: Some("exception".into()),
        attributes,
        resource: resource.into(),
        ..LogRecord::default()
    };
    let mut batch = Batch {
        logs: vec![log],
        ..Batch::default()
    };
    batch.errors = capture.capture(&batch);
    batch
}

/// Where panics are reported to: the latest started server's exporter.
static WRITER: std::sync::Mutex<Option<Exporter>> = std::sync::Mutex::new(None);
static HOOK: std::sync::Once = std::sync::Once::new();

/// Reports panics to `writer` from now on. The hook is installed once per
/// process (keeping the previous one, which prints the panic); a later
/// server in the same process takes over the reports.
pub fn install(writer: Exporter) {
    *WRITER.lock().unwrap_or_else(|p| p.into_inner()) = Some(writer);
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            previous(info);
            report(info);
        }));
    });
}

fn report(info: &PanicHookInfo<'_>) {
    // try_lock: a panic while the lock is held (it never is for long) must
    // not deadlock the panicking thread.
    let Ok(guard) = WRITER.try_lock() else {
        return;
    };
    let Some(writer) = guard.clone() else {
        return;
    };
    drop(guard);
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".into());
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let thread = std::thread::current();
    let backtrace = Backtrace::force_capture().to_string();
    let batch = panic_batch(
        writer.capture(),
        thread.name().unwrap_or("<unnamed>"),
        &message,
        location.as_deref(),
        &backtrace,
        now_unix_nano(),
    );
    // Fire and forget: a panicking thread must not wait on the writer (it
    // may be the writer).
    let _ = writer.writer().submit(batch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_grouped_error_of_service_qyl() {
        let bt = "   0: qyl::storage::writer::WriterState::commit\n             at ./src/storage/writer.rs:600:13\n   1: qyl::storage::writer::WriterState::run\n             at ./src/storage/writer.rs:550:9\n   2: std::thread::Builder::spawn_unchecked_\n             at /rustc/abc/library/std/src/thread/mod.rs:500:5\n";
        let a = panic_batch(
            &Capture::default(),
            "qyl-writer",
            "index out of bounds: the len is 3 but the index is 7",
            Some("src/storage/writer.rs:600:13"),
            bt,
            42,
        );
        let b = panic_batch(
            &Capture::default(),
            "qyl-writer",
            "index out of bounds: the len is 5 but the index is 9",
            Some("src/storage/writer.rs:601:13"),
            &bt.replace("600", "610"),
            43,
        );
        assert_eq!(a.logs[0].service_name, "qyl");
        assert_eq!(a.errors.len(), 1);
        let e = &a.errors[0];
        assert_eq!(e.exception_type.as_deref(), Some("panic"));
        assert_eq!(e.service_name, "qyl");
        assert!(!e.handled, "FATAL is unhandled");
        assert_eq!(e.fingerprint_rule, "in_app_frames");
        assert!(
            e.culprit.as_deref().unwrap().contains("commit"),
            "{:?}",
            e.culprit
        );
        // Other numbers, other lines: the same bug.
        assert_eq!(e.fingerprint, b.errors[0].fingerprint);
    }
}
