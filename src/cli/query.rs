//! `qyl query`: ask a running qyl from a shell. Either one read-only SQL
//! statement (`POST /api/v1/sql`, the same checks and caps as the SQL
//! console) or a named shortcut for the lists people ask for most
//! (`traces`, `errors`, `sessions`), which read the REST list endpoints so
//! their filters mean what they mean in the dashboard.
//!
//! Output is a table by default (boxed in a terminal, plain columns when
//! piped), `--json` (the rows as JSON objects, one per line) or `--csv`.
//! A failed query exits 1 with the server's message on stderr.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::Args;
use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table, TableComponent};
use serde_json::{json, Map, Value};

use super::client::{Remote, RemoteArgs};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
        qyl query \"SELECT service_name, count(*) FROM spans GROUP BY ALL ORDER BY 2 DESC\"\n  \
        qyl query traces --service checkout --since 15m --errors\n  \
        qyl query errors --status unresolved --csv > errors.csv\n  \
        qyl query sessions --since 24h --json | jq .cost_usd")]
pub struct QueryArgs {
    /// One read-only SQL statement (SELECT, WITH, DESCRIBE…) over qyl's
    /// tables (spans, logs, metrics, error_groups, session_entities…), or a
    /// shortcut: `traces` (newest first), `errors` (error groups, most
    /// recently seen first) or `sessions` (conversations, most recent first).
    #[arg(value_name = "SQL|traces|errors|sessions")]
    pub what: String,
    #[command(flatten)]
    pub filters: ShortcutFilters,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Print the rows as JSON objects, one per line (shortcuts: every field
    /// the API sends).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the rows as CSV with a header line.
    #[arg(long)]
    pub csv: bool,
    /// Rows to return at most (capped by the server: query.sql_row_limit
    /// for SQL, query.max_page for shortcuts).
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
}

/// Filters of the shortcuts; each names the shortcuts it applies to.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Shortcut filters")]
pub struct ShortcutFilters {
    /// traces, errors, sessions: this service only.
    #[arg(long, short = 's')]
    pub service: Option<String>,
    /// traces (default 1h), errors, sessions: at most this long ago (15m,
    /// 2h, 7d) or since an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// traces: only traces with a failed span.
    #[arg(long)]
    pub errors: bool,
    /// traces: only traces at least this long: 250 (ms) or 2s.
    #[arg(long, value_name = "DURATION")]
    pub min_duration: Option<String>,
    /// traces: only traces whose root span has this name.
    #[arg(long)]
    pub name: Option<String>,
    /// errors: unresolved, resolved, archived, or new, ongoing, regressed,
    /// escalating.
    #[arg(long)]
    pub status: Option<String>,
    /// errors: groups seen in this release.
    #[arg(long)]
    pub release: Option<String>,
    /// errors: text in the type, message, culprit, services or releases.
    #[arg(long, short = 'q')]
    pub search: Option<String>,
    /// sessions: this user's (`user.id`).
    #[arg(long)]
    pub user: Option<String>,
}

/// The lists `qyl query` has names for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    Traces,
    Errors,
    Sessions,
}

impl Shortcut {
    fn parse(what: &str) -> Option<Shortcut> {
        match what.trim() {
            "traces" => Some(Shortcut::Traces),
            "errors" => Some(Shortcut::Errors),
            "sessions" => Some(Shortcut::Sessions),
            _ => None,
        }
    }
}

/// Runs the query and prints it; the exit code is 0 (1 goes through `Err`).
pub fn run(args: QueryArgs) -> anyhow::Result<i32> {
    let remote = Remote::from_args(&args.remote)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(fetch(&remote, &args))?;
    let format = Format::from_args(&args.output);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => match &rows.whole {
            Some(items) => {
                for item in items {
                    serde_json::to_writer(&mut out, item)?;
                    writeln!(out)?;
                }
            }
            None => {
                for row in &rows.rows {
                    let object: Map<String, Value> = rows
                        .columns
                        .iter()
                        .cloned()
                        .zip(row.iter().cloned())
                        .collect();
                    serde_json::to_writer(&mut out, &object)?;
                    writeln!(out)?;
                }
            }
        },
        Format::Csv => write_csv(&mut out, &rows)?,
        Format::Table { boxed } => {
            writeln!(out, "{}", table(&rows, boxed))?;
        }
    }
    out.flush()?;
    // Notes go to stderr so that piped output stays only data.
    if matches!(format, Format::Table { .. }) || rows.more.is_some() {
        let mut note = format!("{} row{}", rows.rows.len(), plural(rows.rows.len()));
        if let Some(more) = &rows.more {
            note.push_str(&format!("; {more}"));
        }
        eprintln!("{note}");
    }
    Ok(0)
}

enum Format {
    Json,
    Csv,
    Table { boxed: bool },
}

impl Format {
    fn from_args(o: &OutputArgs) -> Format {
        if o.json {
            Format::Json
        } else if o.csv {
            Format::Csv
        } else {
            Format::Table {
                boxed: std::io::stdout().is_terminal(),
            }
        }
    }
}

/// What any query comes back as: named columns and rows of JSON values.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    /// Each row with every field the API sent, for `--json` (shortcuts
    /// choose a few columns for tables only).
    whole: Option<Vec<Value>>,
    /// Shorter headers for tables than the API's field names (CSV keeps
    /// the names, for scripts).
    headers: Option<Vec<String>>,
    /// Why there may be more than was printed, when there may.
    more: Option<String>,
}

async fn fetch(remote: &Remote, args: &QueryArgs) -> anyhow::Result<Rows> {
    match Shortcut::parse(&args.what) {
        Some(shortcut) => {
            let path = shortcut_request(shortcut, &args.filters, args.output.limit)?;
            shortcut_rows(remote, shortcut, &path).await
        }
        None => {
            let f = &args.filters;
            let given = [
                ("--service", f.service.is_some()),
                ("--since", f.since.is_some()),
                ("--errors", f.errors),
                ("--min-duration", f.min_duration.is_some()),
                ("--name", f.name.is_some()),
                ("--status", f.status.is_some()),
                ("--release", f.release.is_some()),
                ("--search", f.search.is_some()),
                ("--user", f.user.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                anyhow::bail!(
                    "{flag} filters the shortcuts (traces, errors, sessions); in SQL, say it in a WHERE clause"
                );
            }
            sql_rows(remote, &args.what, args.output.limit).await
        }
    }
}

async fn sql_rows(remote: &Remote, sql: &str, limit: Option<usize>) -> anyhow::Result<Rows> {
    let mut body = json!({ "sql": sql });
    if let Some(limit) = limit {
        body["limit"] = json!(limit);
    }
    let answer: Value = remote.post_json("/api/v1/sql", &body).await?;
    let columns = answer["columns"]
        .as_array()
        .context("qyl's SQL answer has no columns")?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("?").to_string())
        .collect();
    let rows = answer["rows"]
        .as_array()
        .context("qyl's SQL answer has no rows")?
        .iter()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect();
    let more = (answer["truncated"] == true)
        .then(|| "cut at the row limit (--limit, capped by query.sql_row_limit)".to_string());
    Ok(Rows {
        columns,
        rows,
        whole: None,
        headers: None,
        more,
    })
}

/// The path and query string a shortcut asks for. A filter given to a
/// shortcut it does not apply to is an error rather than ignored.
fn shortcut_request(
    shortcut: Shortcut,
    f: &ShortcutFilters,
    limit: Option<usize>,
) -> anyhow::Result<String> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut misplaced = Vec::new();
    let mut put = |key: &str, flag: &'static str, value: Option<&str>, applies: &[Shortcut]| {
        if let Some(v) = value {
            if applies.contains(&shortcut) {
                q.append_pair(key, v);
            } else {
                misplaced.push(flag);
            }
        }
    };
    use Shortcut::*;
    put(
        "service",
        "--service",
        f.service.as_deref(),
        &[Traces, Errors, Sessions],
    );
    let since = match shortcut {
        Traces => Some(f.since.as_deref().unwrap_or("1h")),
        _ => f.since.as_deref(),
    };
    put("since", "--since", since, &[Traces, Errors, Sessions]);
    put("status", "--errors", f.errors.then_some("error"), &[Traces]);
    put(
        "min_duration_ms",
        "--min-duration",
        f.min_duration.as_deref(),
        &[Traces],
    );
    put("name", "--name", f.name.as_deref(), &[Traces]);
    put("status", "--status", f.status.as_deref(), &[Errors]);
    put("release", "--release", f.release.as_deref(), &[Errors]);
    put("q", "--search", f.search.as_deref(), &[Errors]);
    put("user", "--user", f.user.as_deref(), &[Sessions]);
    let limit = limit.map(|n| n.to_string());
    put(
        "limit",
        "--limit",
        limit.as_deref(),
        &[Traces, Errors, Sessions],
    );
    if let Some(flag) = misplaced.first() {
        anyhow::bail!("{flag} does not apply to `qyl query {}`", shortcut.name());
    }
    let query = q.finish();
    let path = shortcut.path();
    Ok(if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    })
}

impl Shortcut {
    fn name(self) -> &'static str {
        match self {
            Shortcut::Traces => "traces",
            Shortcut::Errors => "errors",
            Shortcut::Sessions => "sessions",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Shortcut::Traces => "/api/v1/traces",
            Shortcut::Errors => "/api/v1/errors",
            Shortcut::Sessions => "/api/v1/sessions",
        }
    }

    /// The fields that make a table's columns, with their headers (JSON
    /// keeps every field under its API name).
    fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Shortcut::Traces => &[
                ("start_time", "start"),
                ("trace_id", "trace"),
                ("root_service", "service"),
                ("root_name", "root span"),
                ("duration_ms", "ms"),
                ("span_count", "spans"),
                ("error_count", "errors"),
                ("gen_ai_cost_usd", "cost $"),
            ],
            Shortcut::Errors => &[
                ("id", "id"),
                ("substatus", "status"),
                ("error_type", "type"),
                ("message_template", "message"),
                ("culprit", "culprit"),
                ("count", "events"),
                ("user_count", "users"),
                ("last_seen", "last seen"),
                ("last_release", "release"),
            ],
            Shortcut::Sessions => &[
                ("session_id", "session"),
                ("last_seen", "last seen"),
                ("duration_ms", "ms"),
                ("trace_count", "traces"),
                ("gen_ai_requests", "llm calls"),
                ("input_tokens", "in tokens"),
                ("output_tokens", "out tokens"),
                ("cost_usd", "cost $"),
                ("error_count", "errors"),
            ],
        }
    }
}

async fn shortcut_rows(remote: &Remote, shortcut: Shortcut, path: &str) -> anyhow::Result<Rows> {
    let page: Value = remote.get_json(path).await?;
    let items = page["items"]
        .as_array()
        .with_context(|| format!("qyl's answer to {path} has no items"))?;
    let more = page["next_cursor"]
        .as_str()
        .map(|_| "more on the server (raise --limit)".to_string());
    let fields = shortcut.columns();
    let columns = fields.iter().map(|(f, _)| f.to_string()).collect();
    let headers = Some(fields.iter().map(|(_, h)| h.to_string()).collect());
    let rows = items
        .iter()
        .map(|item| fields.iter().map(|(f, _)| item[*f].clone()).collect())
        .collect();
    Ok(Rows {
        columns,
        rows,
        whole: Some(items.clone()),
        headers,
        more,
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A value as one table or CSV cell: strings bare, null empty, lists
/// joined, numbers as JSON writes them (floats to 3 places at most).
fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => {
                let s = format!("{f:.3}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
            _ => n.to_string(),
        },
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            items.iter().map(cell_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Cells this long are cut in tables (CSV and JSON keep everything).
const TABLE_CELL_MAX: usize = 80;

fn table(rows: &Rows, boxed: bool) -> Table {
    let mut t = Table::new();
    if boxed {
        // psql's look: columns apart by spaces, a rule under the header.
        t.load_preset(presets::NOTHING)
            .set_style(TableComponent::HeaderLines, '─')
            .set_style(TableComponent::MiddleHeaderIntersections, '─');
        // Wrap to the terminal's width only when it is known and usable;
        // otherwise rows run long rather than a letter per line.
        if let Some(width) = crossterm::terminal::size()
            .ok()
            .map(|s| s.0)
            .filter(|w| *w >= 60)
        {
            t.set_width(width)
                .set_content_arrangement(ContentArrangement::Dynamic);
        }
    } else {
        t.load_preset(presets::NOTHING);
    }
    t.set_header(
        rows.headers
            .as_ref()
            .unwrap_or(&rows.columns)
            .iter()
            .map(Cell::new),
    );
    for row in &rows.rows {
        t.add_row(row.iter().map(|v| {
            let mut text = cell_text(v);
            if let Some(short) = short_time(&text) {
                text = short;
            }
            if text.chars().count() > TABLE_CELL_MAX {
                text = text.chars().take(TABLE_CELL_MAX - 1).collect::<String>() + "…";
            }
            let cell = Cell::new(text);
            if v.is_number() {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    t
}

/// RFC 3339 times as qyl writes them (UTC, nanoseconds) to the second in
/// tables, where the digits past it only push columns apart.
fn short_time(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let shaped = b.len() >= 20
        && s.ends_with('Z')
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s[..19].bytes().filter(u8::is_ascii_digit).count() == 14;
    shaped.then(|| format!("{} {}Z", &s[..10], &s[11..19]))
}

fn write_csv(out: &mut impl Write, rows: &Rows) -> std::io::Result<()> {
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",")
    };
    writeln!(out, "{}", line(rows.columns.clone()))?;
    for row in &rows.rows {
        writeln!(out, "{}", line(row.iter().map(cell_text).collect()))?;
    }
    Ok(())
}

/// RFC 4180: quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn tables_show_times_to_the_second() {
        assert_eq!(
            short_time("2026-12-02T20:55:00.290053849Z").as_deref(),
            Some("2026-12-02 20:55:00Z")
        );
        assert_eq!(
            short_time("2026-12-02T20:55:00Z").as_deref(),
            Some("2026-12-02 20:55:00Z")
        );
        assert_eq!(short_time("chat-7f3a"), None);
        assert_eq!(short_time("2026-12-02 is a date, not a time Z"), None);
    }

    #[test]
    fn cells_are_readable() {
        assert_eq!(cell_text(&json!(null)), "");
        assert_eq!(cell_text(&json!(12)), "12");
        assert_eq!(cell_text(&json!(1.5)), "1.5");
        assert_eq!(cell_text(&json!(2.0)), "2");
        assert_eq!(cell_text(&json!(0.123456)), "0.123");
        assert_eq!(cell_text(&json!(["a", "b"])), "a, b");
        assert_eq!(cell_text(&json!({"k": 1})), "{\"k\":1}");
    }

    #[test]
    fn shortcuts_ask_with_the_api_names_and_refuse_misplaced_filters() {
        let f = ShortcutFilters {
            service: Some("check out".into()),
            since: Some("15m".into()),
            errors: true,
            min_duration: Some("2s".into()),
            ..Default::default()
        };
        assert_eq!(
            shortcut_request(Shortcut::Traces, &f, Some(5)).unwrap(),
            "/api/v1/traces?service=check+out&since=15m&status=error&min_duration_ms=2s&limit=5"
        );
        let none = ShortcutFilters::default();
        assert_eq!(
            shortcut_request(Shortcut::Traces, &none, None).unwrap(),
            "/api/v1/traces?since=1h"
        );
        assert_eq!(
            shortcut_request(Shortcut::Errors, &none, None).unwrap(),
            "/api/v1/errors"
        );
        let user = ShortcutFilters {
            user: Some("u1".into()),
            ..Default::default()
        };
        let err = shortcut_request(Shortcut::Errors, &user, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--user does not apply to `qyl query errors`"
        );
    }
}
