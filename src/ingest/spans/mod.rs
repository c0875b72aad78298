//! OTLP/HTTP protobuf trace exports straight from their bytes to
//! `SpanRecord`s.
//!
//! prost would first build owned `opentelemetry_proto` messages (some 27
//! allocations per span) for `convert_traces` to copy once more. This walks
//! the body's wire bytes instead (`wire::Reader`), borrowing keys, values and
//! ids from it, and writes each record's ids, promoted columns and JSON
//! columns directly, with the same rules (`enrich`, `jsonw` and `convert`'s
//! id checks). The result equals `convert_traces(prost decode)` for every
//! input, malformed ones included (both refuse them); `tests.rs` checks it
//! on realistic, random and mutated bodies.
//!
//! Fields may arrive in any order and a non-repeated message may arrive in
//! pieces (merged), so the resource and the scope are read before their
//! spans by a first pass over their parent's fields, which skips the spans
//! by length; everything else is read once.

mod value;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use self::value::{pair, WireAny};
use super::convert::{
    non_empty, optional_id, required_id, span_kind_name, status_code_name, Converted,
};
use super::enrich::{RecordScan, ResourceInfo, ResourceScan};
use super::jsonw;
use super::wire::{Reader, WireError};
use crate::model::SpanRecord;

/// Decodes an `ExportTraceServiceRequest` body into records, or refuses it
/// as prost would.
pub fn decode_traces(body: &[u8]) -> Result<Converted<SpanRecord>, WireError> {
    let mut out = Converted::default();
    let mut scratch = Scratch::default();
    for f in Reader::new(body) {
        let f = f?;
        match f.tag {
            1 => resource_spans(
                f.message("ExportTraceServiceRequest.resource_spans")?,
                &mut out,
                &mut scratch,
            )?,
            _ => f.unknown()?,
        }
    }
    Ok(out)
}

/// JSON being built, kept across spans so its capacity is reused; each
/// record gets an exact-size copy.
#[derive(Default)]
struct Scratch {
    attributes: String,
    events: String,
    links: String,
    /// An event's or link's attributes.
    inner: String,
}

/// Appends `"key":value` to a JSON object being written.
fn push_pair(out: &mut String, count: &mut usize, key: &str, v: WireAny<'_>) {
    if *count > 0 {
        out.push(',');
    }
    *count += 1;
    jsonw::push_str(out, key);
    out.push(':');
    jsonw::push_value(out, v);
}

fn resource_spans(
    r: Reader<'_>,
    out: &mut Converted<SpanRecord>,
    scratch: &mut Scratch,
) -> Result<(), WireError> {
    let mut scan = ResourceScan::default();
    let mut json = String::from("{");
    let mut count = 0;
    for f in r {
        let f = f?;
        match f.tag {
            1 => resource(
                f.message("ResourceSpans.resource")?,
                &mut scan,
                &mut json,
                &mut count,
            )?,
            2 => {
                f.message("ResourceSpans.scope_spans")?;
            }
            3 => {
                f.str("ResourceSpans.schema_url")?;
            }
            _ => f.unknown()?,
        }
    }
    json.push('}');
    let res = scan.finish(json);
    for f in r {
        let f = f?;
        if f.tag == 2 {
            scope_spans(f.message("ResourceSpans.scope_spans")?, &res, out, scratch)?;
        }
    }
    Ok(())
}

fn resource(
    r: Reader<'_>,
    scan: &mut ResourceScan,
    json: &mut String,
    count: &mut usize,
) -> Result<(), WireError> {
    for f in r {
        let f = f?;
        match f.tag {
            1 => {
                let (key, v) = pair(f.message("Resource.attributes")?)?;
                push_pair(json, count, key, v.clone());
                scan.attr(key, v);
            }
            2 => {
                f.varint("Resource.dropped_attributes_count")?;
            }
            3 => entity_ref(f.message("Resource.entity_refs")?)?,
            _ => f.unknown()?,
        }
    }
    Ok(())
}

fn entity_ref(r: Reader<'_>) -> Result<(), WireError> {
    for f in r {
        let f = f?;
        match f.tag {
            1 => f.str("EntityRef.schema_url").map(drop)?,
            2 => f.str("EntityRef.type").map(drop)?,
            3 => f.str("EntityRef.id_keys").map(drop)?,
            4 => f.str("EntityRef.description_keys").map(drop)?,
            _ => f.unknown()?,
        }
    }
    Ok(())
}

/// The scope's name and version, as the records carry them.
struct Scope {
    name: Option<Arc<str>>,
    version: Option<Arc<str>>,
}

fn scope_spans(
    r: Reader<'_>,
    res: &ResourceInfo,
    out: &mut Converted<SpanRecord>,
    scratch: &mut Scratch,
) -> Result<(), WireError> {
    let (mut name, mut version) = ("", "");
    let mut spans = 0;
    for f in r {
        let f = f?;
        match f.tag {
            1 => scope(f.message("ScopeSpans.scope")?, &mut name, &mut version)?,
            2 => {
                f.message("ScopeSpans.spans")?;
                spans += 1;
            }
            3 => {
                f.str("ScopeSpans.schema_url")?;
            }
            _ => f.unknown()?,
        }
    }
    let scope = Scope {
        name: non_empty(name).map(Arc::from),
        version: non_empty(version).map(Arc::from),
    };
    // Records are large: growing the vector by doubling would copy them.
    out.records.reserve(spans);
    for f in r {
        let f = f?;
        if f.tag == 2 {
            span(f.message("ScopeSpans.spans")?, res, &scope, out, scratch)?;
        }
    }
    Ok(())
}

fn scope<'a>(r: Reader<'a>, name: &mut &'a str, version: &mut &'a str) -> Result<(), WireError> {
    for f in r {
        let f = f?;
        match f.tag {
            1 => *name = f.str("InstrumentationScope.name")?,
            2 => *version = f.str("InstrumentationScope.version")?,
            3 => {
                pair(f.message("InstrumentationScope.attributes")?)?;
            }
            4 => {
                f.varint("InstrumentationScope.dropped_attributes_count")?;
            }
            _ => f.unknown()?,
        }
    }
    Ok(())
}

fn span(
    r: Reader<'_>,
    res: &ResourceInfo,
    scope: &Scope,
    out: &mut Converted<SpanRecord>,
    s: &mut Scratch,
) -> Result<(), WireError> {
    let (mut trace_id, mut span_id, mut parent_span_id): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let (mut trace_state, mut name) = ("", "");
    let mut kind = 0;
    let (mut start, mut end) = (0, 0);
    let (mut dropped_attributes, mut dropped_events, mut dropped_links) = (0, 0, 0);
    let (mut status_code, mut status_message) = (0, "");
    let mut scan = RecordScan::default();
    let (mut attributes, mut events, mut links) = (0, 0, 0);
    s.attributes.clear();
    s.attributes.push('{');
    s.events.clear();
    s.events.push('[');
    s.links.clear();
    s.links.push('[');
    for f in r {
        let f = f?;
        match f.tag {
            1 => trace_id = f.bytes("Span.trace_id")?,
            2 => span_id = f.bytes("Span.span_id")?,
            3 => trace_state = f.str("Span.trace_state")?,
            4 => parent_span_id = f.bytes("Span.parent_span_id")?,
            5 => name = f.str("Span.name")?,
            6 => kind = f.varint("Span.kind")? as i32,
            7 => start = f.fixed64("Span.start_time_unix_nano")?,
            8 => end = f.fixed64("Span.end_time_unix_nano")?,
            9 => {
                let (key, v) = pair(f.message("Span.attributes")?)?;
                push_pair(&mut s.attributes, &mut attributes, key, v.clone());
                scan.attr(key, v);
            }
            10 => dropped_attributes = f.varint("Span.dropped_attributes_count")? as u32,
            11 => event(
                f.message("Span.events")?,
                &mut s.events,
                &mut events,
                &mut s.inner,
            )?,
            12 => dropped_events = f.varint("Span.dropped_events_count")? as u32,
            13 => link(
                f.message("Span.links")?,
                &mut s.links,
                &mut links,
                &mut s.inner,
            )?,
            14 => dropped_links = f.varint("Span.dropped_links_count")? as u32,
            15 => status(
                f.message("Span.status")?,
                &mut status_code,
                &mut status_message,
            )?,
            16 => {
                f.fixed32("Span.flags")?;
            }
            _ => f.unknown()?,
        }
    }
    let ids = required_id::<32>(trace_id, "trace_id").and_then(|t| {
        let s = required_id::<16>(span_id, "span_id")?;
        let p = optional_id::<16>(parent_span_id, "parent_span_id")?;
        Ok((t, s, p))
    });
    let (trace_id, span_id, parent_span_id) = match ids {
        Ok(ids) => ids,
        Err(e) => {
            out.reject(1, || format!("span {name:?}: {e}"));
            return Ok(());
        }
    };
    s.attributes.push('}');
    s.events.push(']');
    s.links.push(']');
    let mut info = scan.finish();
    out.records.push(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: non_empty(trace_state),
        name: name.to_string(),
        kind: span_kind_name(kind),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        duration_ns: end.saturating_sub(start),
        status_code: status_code_name(status_code),
        status_message: non_empty(status_message),
        service_name: res.service_name.clone(),
        service_version: res.service_version.clone(),
        deployment_environment: res.deployment_environment.clone(),
        scope_name: scope.name.clone(),
        scope_version: scope.version.clone(),
        session_id: info.session(res),
        genai: std::mem::take(&mut info.genai).into(),
        user_id: info.user_id.take(),
        attributes: s.attributes.as_str().to_owned(),
        resource: res.json.clone(),
        events: s.events.as_str().to_owned(),
        links: s.links.as_str().to_owned(),
        dropped_attributes_count: dropped_attributes,
        dropped_events_count: dropped_events,
        dropped_links_count: dropped_links,
    });
    Ok(())
}

/// Appends one event as `convert_traces` writes it.
fn event(
    r: Reader<'_>,
    out: &mut String,
    count: &mut usize,
    attrs: &mut String,
) -> Result<(), WireError> {
    let (mut time, mut name, mut dropped) = (0, "", 0u32);
    let mut n = 0;
    attrs.clear();
    attrs.push('{');
    for f in r {
        let f = f?;
        match f.tag {
            1 => time = f.fixed64("Event.time_unix_nano")?,
            2 => name = f.str("Event.name")?,
            3 => {
                let (key, v) = pair(f.message("Event.attributes")?)?;
                push_pair(attrs, &mut n, key, v);
            }
            4 => dropped = f.varint("Event.dropped_attributes_count")? as u32,
            _ => f.unknown()?,
        }
    }
    attrs.push('}');
    if *count > 0 {
        out.push(',');
    }
    *count += 1;
    out.push_str("{\"time_unix_nano\":");
    jsonw::push_u64(out, time);
    out.push_str(",\"name\":");
    jsonw::push_str(out, name);
    out.push_str(",\"attributes\":");
    out.push_str(attrs);
    if dropped > 0 {
        out.push_str(",\"dropped_attributes_count\":");
        jsonw::push_u64(out, dropped.into());
    }
    out.push('}');
    Ok(())
}

/// Appends one link as `convert_traces` writes it.
fn link(
    r: Reader<'_>,
    out: &mut String,
    count: &mut usize,
    attrs: &mut String,
) -> Result<(), WireError> {
    let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
    let mut trace_state = "";
    let mut n = 0;
    attrs.clear();
    attrs.push('{');
    for f in r {
        let f = f?;
        match f.tag {
            1 => trace_id = f.bytes("Link.trace_id")?,
            2 => span_id = f.bytes("Link.span_id")?,
            3 => trace_state = f.str("Link.trace_state")?,
            4 => {
                let (key, v) = pair(f.message("Link.attributes")?)?;
                push_pair(attrs, &mut n, key, v);
            }
            5 => {
                f.varint("Link.dropped_attributes_count")?;
            }
            6 => {
                f.fixed32("Link.flags")?;
            }
            _ => f.unknown()?,
        }
    }
    attrs.push('}');
    if *count > 0 {
        out.push(',');
    }
    *count += 1;
    out.push_str("{\"trace_id\":");
    jsonw::push_hex(out, trace_id);
    out.push_str(",\"span_id\":");
    jsonw::push_hex(out, span_id);
    if !trace_state.is_empty() {
        out.push_str(",\"trace_state\":");
        jsonw::push_str(out, trace_state);
    }
    out.push_str(",\"attributes\":");
    out.push_str(attrs);
    out.push('}');
    Ok(())
}

fn status<'a>(r: Reader<'a>, code: &mut i32, message: &mut &'a str) -> Result<(), WireError> {
    for f in r {
        let f = f?;
        match f.tag {
            2 => *message = f.str("Status.message")?,
            3 => *code = f.varint("Status.code")? as i32,
            _ => f.unknown()?,
        }
    }
    Ok(())
}
