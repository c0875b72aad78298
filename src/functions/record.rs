//! The record a handler (and `when`) receives: userdata over the committed
//! span, log, error group change or SLO level change, so nothing is copied
//! into Lua until the script reads a field. `start_time` is a string of nanoseconds (Luau numbers are doubles
//! and would round them); `start_ms` is the same instant as a number.

use mlua::{Lua, LuaSerdeExt, UserData, UserDataFields, UserDataMethods, Value};

use super::trigger::find_attr;
use crate::model::errors::ErrorGroupEvent;
use crate::model::slo::SloTransition;
use crate::model::{LogRecord, Record, SpanRecord};
use crate::stream::Event;

/// A span or log as Lua sees it, valid during its invocation: the executor
/// empties it afterwards, so a script that keeps one for later gets an
/// error telling it to keep `record:table()` instead (rather than holding
/// the committed record alive).
#[derive(Clone, Default)]
pub struct LuaRecord(pub Option<Event>);

enum Kind<'a> {
    Span(&'a SpanRecord),
    Log(&'a LogRecord),
    Error(&'a ErrorGroupEvent),
    Slo(&'a SloTransition),
    Other,
}

impl LuaRecord {
    fn event(&self) -> mlua::Result<&Event> {
        self.0.as_ref().ok_or_else(|| {
            mlua::Error::runtime(
                "this record belonged to an invocation that has ended; keep record:table() instead",
            )
        })
    }

    fn kind(&self) -> mlua::Result<Kind<'_>> {
        Ok(match &self.event()?.record {
            Record::Span(s) => Kind::Span(s),
            Record::Log(l) => Kind::Log(l),
            Record::Error(e) => Kind::Error(e),
            Record::Slo(t) => Kind::Slo(t),
            _ => Kind::Other,
        })
    }

    fn json_texts(&self) -> mlua::Result<(&str, &str)> {
        Ok(match self.kind()? {
            Kind::Span(s) => (&s.attributes, &s.resource),
            Kind::Log(l) => (&l.attributes, &l.resource),
            Kind::Error(_) | Kind::Slo(_) | Kind::Other => ("{}", "{}"),
        })
    }

    fn start_ns(&self) -> mlua::Result<u64> {
        Ok(match self.kind()? {
            Kind::Span(s) => s.start_time_unix_nano,
            Kind::Log(l) => l.time_unix_nano,
            Kind::Error(e) => e.last_seen_unix_nano,
            Kind::Slo(t) => t.at_unix_nano,
            Kind::Other => 0,
        })
    }

    /// The whole record as JSON (the API's row shape).
    pub fn to_json(&self) -> mlua::Result<serde_json::Value> {
        let seq = self.event()?.seq;
        let value = match self.kind()? {
            Kind::Span(s) => {
                serde_json::to_value(crate::model::query::SpanRow::from_record(s, seq))
            }
            Kind::Log(l) => serde_json::to_value(crate::model::query::LogRow::from_record(l, seq)),
            Kind::Error(e) => serde_json::to_value(e),
            Kind::Slo(t) => serde_json::to_value(t),
            Kind::Other => Ok(serde_json::Value::Null),
        };
        Ok(value.unwrap_or(serde_json::Value::Null))
    }
}

fn opt_str(lua: &Lua, s: Option<&str>) -> mlua::Result<Value> {
    match s {
        Some(s) => Ok(Value::String(lua.create_string(s)?)),
        None => Ok(Value::Nil),
    }
}

fn json_value(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(mlua::Error::external)?;
    lua.to_value(&v)
}

impl UserData for LuaRecord {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("signal", |_, this| {
            Ok(match this.kind()? {
                Kind::Span(_) => "span",
                Kind::Log(_) => "log",
                Kind::Error(_) => "error",
                Kind::Slo(_) => "slo",
                Kind::Other => "other",
            })
        });
        fields.add_field_method_get("trace_id", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, Some(&s.trace_id)),
            Kind::Log(l) => opt_str(lua, l.trace_id.as_deref()),
            Kind::Error(e) => opt_str(lua, e.trace_id.as_deref()),
            Kind::Slo(_) | Kind::Other => Ok(Value::Nil),
        });
        fields.add_field_method_get("span_id", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, Some(&s.span_id)),
            Kind::Log(l) => opt_str(lua, l.span_id.as_deref()),
            Kind::Error(_) | Kind::Slo(_) | Kind::Other => Ok(Value::Nil),
        });
        fields.add_field_method_get("parent_span_id", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, s.parent_span_id.as_deref()),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("name", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, Some(&s.name)),
            Kind::Log(l) => opt_str(lua, l.event_name.as_deref()),
            Kind::Slo(t) => opt_str(lua, Some(&t.slo)),
            Kind::Error(_) | Kind::Other => Ok(Value::Nil),
        });
        fields.add_field_method_get("service", |lua, this| {
            opt_str(lua, Some(this.event()?.record.service_name()))
        });
        fields.add_field_method_get("kind", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, Some(s.kind)),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("status", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, Some(s.status_code)),
            Kind::Error(e) => opt_str(lua, Some(e.status)),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("status_message", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, s.status_message.as_deref()),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("duration_ms", |_, this| {
            Ok(match this.kind()? {
                Kind::Span(s) => Some(s.duration_ns as f64 / 1e6),
                _ => None,
            })
        });
        fields.add_field_method_get("start_time", |_, this| Ok(this.start_ns()?.to_string()));
        fields.add_field_method_get("start_ms", |_, this| Ok(this.start_ns()? as f64 / 1e6));
        fields.add_field_method_get("session_id", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, s.session_id.as_deref()),
            Kind::Log(l) => opt_str(lua, l.session_id.as_deref()),
            Kind::Error(_) | Kind::Slo(_) | Kind::Other => Ok(Value::Nil),
        });
        fields.add_field_method_get("scope", |lua, this| match this.kind()? {
            Kind::Span(s) => opt_str(lua, s.scope_name.as_deref()),
            Kind::Log(l) => opt_str(lua, l.scope_name.as_deref()),
            Kind::Error(_) | Kind::Slo(_) | Kind::Other => Ok(Value::Nil),
        });
        fields.add_field_method_get("severity", |lua, this| match this.kind()? {
            Kind::Log(l) => opt_str(lua, l.severity_text.as_deref()),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("severity_number", |_, this| {
            Ok(match this.kind()? {
                Kind::Log(l) => Some(l.severity_number),
                _ => None,
            })
        });
        fields.add_field_method_get("body", |lua, this| match this.kind()? {
            Kind::Log(l) => opt_str(lua, l.body.as_deref()),
            _ => Ok(Value::Nil),
        });
        // An error group change (`on = "error"`): the group as the SSE
        // `error` event shows it; `record:table()` has every field.
        fields.add_field_method_get("change", |lua, this| match this.kind()? {
            Kind::Error(e) => opt_str(lua, Some(e.change.as_str())),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("group_id", |_, this| {
            Ok(match this.kind()? {
                Kind::Error(e) => Some(e.group_id as f64),
                _ => None,
            })
        });
        fields.add_field_method_get("error_type", |lua, this| match this.kind()? {
            Kind::Error(e) => opt_str(lua, e.error_type.as_deref()),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("message", |lua, this| match this.kind()? {
            Kind::Error(e) => opt_str(lua, e.message_template.as_deref()),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("category", |lua, this| match this.kind()? {
            Kind::Error(e) => opt_str(lua, Some(e.category)),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("count", |_, this| {
            Ok(match this.kind()? {
                Kind::Error(e) => Some(e.count as f64),
                _ => None,
            })
        });
        fields.add_field_method_get("release", |lua, this| match this.kind()? {
            Kind::Error(e) => opt_str(lua, e.release.as_deref()),
            _ => Ok(Value::Nil),
        });
        // An SLO level change (`on = "slo"`): `level` is the level reached
        // (`to`); `record:table()` has every field.
        fields.add_field_method_get("slo", |lua, this| match this.kind()? {
            Kind::Slo(t) => opt_str(lua, Some(&t.slo)),
            _ => Ok(Value::Nil),
        });
        fields.add_field_method_get("objective", |_, this| {
            Ok(match this.kind()? {
                Kind::Slo(t) => Some(t.objective),
                _ => None,
            })
        });
        for (name, pick) in [
            (
                "level",
                (|t: &SloTransition| t.to) as fn(&SloTransition) -> _,
            ),
            ("to", |t| t.to),
            ("from", |t| t.from),
        ] {
            fields.add_field_method_get(name, move |lua, this| match this.kind()? {
                Kind::Slo(t) => opt_str(lua, Some(pick(t).as_str())),
                _ => Ok(Value::Nil),
            });
        }
        fields.add_field_method_get("tier", |lua, this| match this.kind()? {
            Kind::Slo(t) => opt_str(lua, t.tier.as_deref()),
            _ => Ok(Value::Nil),
        });
        for (name, pick) in [
            (
                "burn_rate_long",
                (|t: &SloTransition| t.burn_rate_long) as fn(&SloTransition) -> f64,
            ),
            ("burn_rate_short", |t| t.burn_rate_short),
            ("budget_remaining", |t| t.budget_remaining),
        ] {
            fields.add_field_method_get(name, move |_, this| {
                Ok(match this.kind()? {
                    Kind::Slo(t) => Some(pick(t)),
                    _ => None,
                })
            });
        }
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // The record's own attribute first, then the resource's, as in `where`.
        methods.add_method("attr", |lua, this, key: String| {
            let (attrs, resource) = this.json_texts()?;
            match find_attr(attrs, &key).or_else(|| find_attr(resource, &key)) {
                Some(raw) => json_value(lua, raw),
                None => Ok(Value::Nil),
            }
        });
        methods.add_method("attrs", |lua, this, ()| {
            json_value(lua, this.json_texts()?.0)
        });
        methods.add_method("resource", |lua, this, ()| {
            json_value(lua, this.json_texts()?.1)
        });
        methods.add_method("table", |lua, this, ()| lua.to_value(&this.to_json()?));
    }
}
