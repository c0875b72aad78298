//! What a native `where` costs per record against entering Lua for a
//! trivial `when`: the reason triggers are data first (DESIGN §4, §7).
//!
//! `cargo bench --bench functions` prints ns per check and the ratio.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use qyl::functions::sandbox::{Limits, Sandbox};
use qyl::functions::spec::{load_script, Trigger};
use qyl::functions::trigger::RecordView;
use qyl::model::SpanRecord;

// As in the binary: the allocator matters for the per-record JSON parse.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SCRIPT: &str = r#"
return {
  qyl.fn {
    name = "fields",
    trigger = { on = "span", where = { service = "checkout", duration_ms = { gt = 5000 } },
                when = function(span) return true end },
    handler = function() end,
  },
  qyl.fn {
    name = "attributes",
    trigger = { on = "span", where = { ["gen_ai.provider.name"] = qyl.exists, duration_ms = { gt = 5000 } } },
    handler = function() end,
  },
}
"#;

fn span() -> SpanRecord {
    SpanRecord {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        name: "chat gpt-4o".into(),
        kind: "CLIENT",
        status_code: "OK",
        duration_ns: 6_200_000_000,
        service_name: "checkout".into(),
        attributes: r#"{"gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o","gen_ai.usage.input_tokens":812,"gen_ai.usage.output_tokens":64,"http.status_code":200,"server.address":"api.openai.com"}"#.into(),
        resource: r#"{"service.name":"checkout","host.name":"web-1"}"#.into(),
        ..Default::default()
    }
}

fn ns_per(iterations: u32, mut f: impl FnMut()) -> f64 {
    // Warm up caches and the allocator first.
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() -> anyhow::Result<()> {
    let mut sandbox = Sandbox::new(Limits::default())?;
    let loaded = load_script(&mut sandbox, Path::new("bench.lua"), SCRIPT)?;
    let matcher = |i: usize| match loaded.get(i).map(|f| &f.spec.trigger) {
        Some(Trigger::Record { matcher, .. }) => Ok(matcher.clone()),
        _ => Err(anyhow::anyhow!(
            "bench function {i} should trigger on spans"
        )),
    };
    let (fields, attributes) = (matcher(0)?, matcher(1)?);
    let when = loaded[0]
        .when
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the first bench function has a when"))?;
    let record = span();

    let native_fields = ns_per(2_000_000, || {
        let view = RecordView::span(black_box(&record));
        assert!(fields.matches(&view));
    });
    // A fresh view per record, so the attribute JSON is scanned every time,
    // as it would be for every committed span.
    let native_attrs = ns_per(500_000, || {
        let view = RecordView::span(black_box(&record));
        assert!(attributes.matches(&view));
    });
    let lua_err = |e: mlua::Error| anyhow::anyhow!("{e}");
    let arg = sandbox.lua().create_table().map_err(lua_err)?;
    arg.set("name", record.name.as_str()).map_err(lua_err)?;
    let lua_when = ns_per(500_000, || {
        let hit = sandbox
            .run(Duration::from_millis(50), |_| when.call::<bool>(&arg))
            .map_err(|e| e.to_string());
        assert_eq!(hit, Ok(true));
    });
    // Closer to what the executor will pay: a record built per call.
    let lua = sandbox.lua().clone();
    let lua_fresh = ns_per(200_000, || {
        let hit = sandbox
            .run(Duration::from_millis(50), |_| {
                let rec = lua.create_table_with_capacity(0, 4)?;
                rec.set("name", record.name.as_str())?;
                rec.set("service", record.service_name.as_str())?;
                rec.set("trace_id", record.trace_id.as_str())?;
                rec.set("duration_ms", record.duration_ns as f64 / 1e6)?;
                when.call::<bool>(rec)
            })
            .map_err(|e| e.to_string());
        assert_eq!(hit, Ok(true));
    });

    println!("functions trigger benchmark (one span, all checks match)");
    println!("  native where, fields only:        {native_fields:>8.1} ns/record");
    println!("  native where, attribute + field:  {native_attrs:>8.1} ns/record (scans the attribute JSON)");
    println!(
        "  entering Lua, trivial when:       {lua_when:>8.1} ns/call (deadline armed per call)"
    );
    println!("  entering Lua, 4-field record built: {lua_fresh:>8.1} ns/call");
    println!(
        "  ratio Lua (record built) / native: {:.0}x (fields), {:.1}x (attributes)",
        lua_fresh / native_fields,
        lua_fresh / native_attrs
    );
    Ok(())
}
