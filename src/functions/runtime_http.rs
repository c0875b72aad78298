//! `runtime.http` and `runtime.secret` as a script sees them: Lua values
//! in and out of [`super::http`], the calls recorded in the VM's app data
//! for the invocation's span, and the secrets read remembered so the
//! executor can scrub them from what leaves the VM.
//!
//! ```lua
//! local r = runtime.http.post(url, { text = "hi" }, { timeout = "5s", headers = {…} })
//! r.status, r.ok, r.headers["content-type"], r.body, r:json()
//! ```

use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua, LuaSerdeExt, Table, Value};

use super::http::{perform, HttpCall, Method, Request, Response, MAX_RETRIES};
use super::runtime_api::{bad, current, Opts, RuntimeContext};
use super::secrets::SeenSecrets;
use super::spec::parse_duration;

/// The calls of the running invocation (VM app data, taken by the
/// executor when the invocation ends).
#[derive(Debug, Default)]
pub struct HttpCalls(pub Vec<HttpCall>);

const OPTIONS: &[&str] = &["headers", "timeout", "any_status", "retries"];

/// `runtime.http`: `get(url, opts)` and `post(url, body, opts)`.
pub fn http_table(lua: &Lua, ctx: &Arc<RuntimeContext>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // `r:json()`, shared by every answer of this VM.
    let json = lua.create_function(|lua, this: Table| {
        let body: mlua::String = this.get("body")?;
        let v: serde_json::Value = serde_json::from_slice(&body.as_bytes())
            .map_err(|e| bad(format!("the answer's body is not JSON: {e}")))?;
        lua.to_value(&v)
    })?;
    {
        let (ctx, json) = (ctx.clone(), json.clone());
        t.set(
            "get",
            lua.create_function(move |lua, (url, opts): (Value, Option<Table>)| {
                call(
                    lua,
                    &ctx,
                    &json,
                    "runtime.http.get",
                    Method::Get,
                    url,
                    None,
                    opts,
                )
            })?,
        )?;
    }
    {
        let ctx = ctx.clone();
        t.set(
            "post",
            lua.create_function(
                move |lua, (url, body, opts): (Value, Value, Option<Table>)| {
                    call(
                        lua,
                        &ctx,
                        &json,
                        "runtime.http.post",
                        Method::Post,
                        url,
                        Some(body),
                        opts,
                    )
                },
            )?,
        )?;
    }
    Ok(t)
}

/// `runtime.secret(name)`: the value from `[functions.secrets]`, or nil.
pub fn secret_function(lua: &Lua, ctx: &Arc<RuntimeContext>) -> mlua::Result<Function> {
    let ctx = ctx.clone();
    lua.create_function(move |lua, name: String| {
        current(lua)?;
        let value = ctx
            .http
            .secrets
            .resolve(&name)
            .map_err(|e| bad(format!("runtime.secret: {e}")))?;
        let Some(value) = value else {
            return Ok(Value::Nil);
        };
        if lua.app_data_ref::<SeenSecrets>().is_none() {
            lua.set_app_data(SeenSecrets::default());
        }
        if let Some(mut seen) = lua.app_data_mut::<SeenSecrets>() {
            seen.add(&name, &value);
        }
        Ok(Value::String(lua.create_string(&value)?))
    })
}

/// A body: a string as is (text/plain unless a header says otherwise), a
/// table as JSON (application/json).
fn body_bytes(lua: &Lua, what: &str, body: Value) -> mlua::Result<(Option<Vec<u8>>, &'static str)> {
    match body {
        Value::Nil => Ok((None, "")),
        Value::String(s) => Ok((Some(s.as_bytes().to_vec()), "text/plain; charset=utf-8")),
        Value::Table(_) => {
            let json: serde_json::Value = lua
                .from_value(body)
                .map_err(|e| bad(format!("{what}: the body cannot be sent as JSON: {e}")))?;
            Ok((
                Some(serde_json::to_vec(&json).map_err(mlua::Error::external)?),
                "application/json",
            ))
        }
        other => Err(bad(format!(
            "{what}: the body must be a string or a table (sent as JSON), not a {}",
            other.type_name()
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn call(
    lua: &Lua,
    ctx: &RuntimeContext,
    json: &Function,
    what: &'static str,
    method: Method,
    url: Value,
    body: Option<Value>,
    opts: Option<Table>,
) -> mlua::Result<Table> {
    let cur = current(lua)?;
    let url = match url {
        Value::String(s) => s.to_str()?.to_string(),
        other => {
            return Err(bad(format!(
                "{what}: the URL must be a string, not {} (a secret that is not set reads as nil)",
                other.type_name()
            )))
        }
    };
    let o = Opts::new(what, opts, OPTIONS)?;
    let (body, content_type) = body_bytes(lua, what, body.unwrap_or(Value::Nil))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    match o.values.get("headers") {
        None | Some(Value::Nil) => {}
        Some(Value::Table(t)) => {
            for pair in t.pairs::<String, String>() {
                let (k, v) = pair.map_err(|e| bad(format!("{what}: headers: {e}")))?;
                if k.eq_ignore_ascii_case("host") {
                    return Err(bad(format!("{what}: the Host header comes from the URL")));
                }
                headers.push((k, v));
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "{what}: `headers` must be a table of name = value, not a {}",
                other.type_name()
            )))
        }
    }
    if !content_type.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), content_type.into()));
    }
    let timeout = match o.values.get("timeout") {
        None | Some(Value::Nil) => None,
        Some(Value::String(s)) => {
            Some(parse_duration(&s.to_str()?).map_err(|m| bad(format!("{what}: timeout: {m}")))?)
        }
        Some(_) => o
            .number("timeout")?
            .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1e3)),
    };
    let any_status = match o.values.get("any_status") {
        None | Some(Value::Nil) => false,
        Some(Value::Boolean(b)) => *b,
        Some(other) => {
            return Err(bad(format!(
                "{what}: `any_status` must be true or false, not a {}",
                other.type_name()
            )))
        }
    };
    let retries = match o.number("retries")? {
        None => 0,
        Some(n) if n >= 0.0 && n <= f64::from(MAX_RETRIES) && n.fract() == 0.0 => n as u32,
        Some(n) => {
            return Err(bad(format!(
                "{what}: `retries` must be a whole number from 0 to {MAX_RETRIES}, not {n}"
            )))
        }
    };
    let req = Request {
        method,
        url,
        headers,
        body,
        timeout,
        any_status,
        retries,
    };
    let mut calls = Vec::new();
    let result = perform(&ctx.http, &req, cur.deadline, &cur.cancel, &mut calls);
    if lua.app_data_ref::<HttpCalls>().is_none() {
        lua.set_app_data(HttpCalls::default());
    }
    if let Some(mut log) = lua.app_data_mut::<HttpCalls>() {
        log.0.extend(calls);
    }
    let resp = result.map_err(|e| bad(format!("{what}: {e}")))?;
    response_table(lua, resp, json)
}

fn response_table(lua: &Lua, resp: Response, json: &Function) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("status", resp.status)?;
    t.set("ok", (200..300).contains(&resp.status))?;
    let headers = lua.create_table()?;
    for (k, v) in resp.headers {
        headers.set(k, v)?;
    }
    t.set("headers", headers)?;
    t.set("body", lua.create_string(&resp.body)?)?;
    t.set("json", json.clone())?;
    Ok(t)
}
