//! qyl: a self-hosted observability server for teams that ship LLM
//! applications. OTLP in, DuckDB inside, a live stream out.
//!
//! # Layout
//!
//! Data flows one way: ingest → writer → hub → consumers. Nothing downstream
//! calls back upstream.
//!
//! - [`config`]: `qyl.toml` (embedded defaults) + the user's file +
//!   `QYL_<SECTION>_<KEY>` variables + flags, validated at start.
//! - [`model`]: plain records (`SpanRecord`, `LogRecord`, `MetricPoint`) and
//!   the `Batch` one export becomes; `model::query` holds what readers ask
//!   for (filters, pages, cursors) and get back (rows, trees, stats),
//!   `model::genai` the session and GenAI shapes, `HexId` the span and
//!   trace ids a span holds inline, and `Shared` a committed record as the
//!   hub hands it out (still in its export's vector). No I/O.
//! - [`ingest`]: the OTLP front doors. `http` (POST /v1/* on the HTTP and
//!   OTLP/HTTP ports) and `grpc` (the three OTLP services; traces through
//!   `grpc_traces`, which hands the message bytes through) decode protobuf or
//!   JSON (`otlp_json`, lenient); protobuf trace bodies from both doors are
//!   walked straight into records by `spans` (over `wire`, a borrowed protobuf reader, and
//!   `view`, the attribute view both paths enrich through), everything else
//!   is decoded by prost; `convert` + `enrich` turn them into model
//!   records (hex ids, service, session, GenAI columns), and both hand the
//!   request to the one `Exporter`, which prices GenAI calls (`pricing`:
//!   the built-in + `[genai]` price table; a sent cost wins, no price is
//!   flagged `missing`, never $0), finds errors (`errors::capture`), queues
//!   the batch on the writer and waits until it is durable (journaled).
//!   Records qyl makes
//!   itself (functions' spans, its own panics) enter through it too.
//! - [`storage`]: the only module with SQL. `schema` holds the numbered
//!   migrations; `duck` opens the database through DuckDB's C API and builds
//!   data chunks; `ids` turns hex span ids into the numbers `span_rows`
//!   stores and back; `gate` keeps reads out of DuckDB while the writer
//!   commits or checkpoints (they share its memory limit). `writer/` is the
//!   write path, one file per step a batch
//!   takes: `handle` (the bounded queue ingest submits to; full means 503),
//!   `journal` (for a file: the journal thread appends each batch to qyl's
//!   own write-ahead journal, fsyncs a group, answers the exports and
//!   passes them on; DuckDB runs without its WAL, and a start replays what
//!   the file lacks), `commit` (the one writer thread: group jobs (`fill`
//!   decides how long: under load, until a whole row group), drop retried
//!   spans (`dedup`), append as data chunks laid out by `chunks`, update
//!   the derived tables, commit, publish to
//!   the hub; `handle::Visibility` lets reads wait for the commits of
//!   answered exports),
//!   `checkpoint` (the writer checkpoints when a table has grown, or on a
//!   timer), `reaper` (frees what commits leave behind) and `stats`
//!   (counters and the heartbeat health reads). `writer/derived/` holds the summary
//!   tables the writer keeps in the same transaction as the rows they
//!   summarise (`derived::Derived`): `resources` (each distinct resource
//!   stored once, for spans and logs with their version, environment and
//!   scope;
//!   span, log and metric rows carry its id, and the `spans`, `logs` and
//!   `metrics` views join the values back), `trace_index` (where
//!   in time each trace is), `sessions` (`session_entities`, `session_traces`), `genai_rollup`
//!   (`genai_minutes` and `genai_minute_labels`), `error_groups` (groups,
//!   events, releases, as `errors::groups` decides them), `error_notes`,
//!   `triage`, `slo_minutes`, `slo_transitions` (SLO level changes),
//!   `service_minutes` (spans per service and minute with latency bins, for
//!   the service overview), `functions` (the function tables) and
//!   `deploys` (CI's deploy records and `error_group_changes`: when each
//!   group became new or regressed, and which deploy fixed or quieted it,
//!   as `errors::deploys` decides). Sessions
//!   and GenAI minutes are summed in memory and written at least once a
//!   second, with a watermark so a restart replays what a crash left
//!   unwritten; `writer::SummarySync` lets `store` wait for those sums.
//!   `retention` is a background thread that deletes old data by age and
//!   size (whole traces with their logs and session rows, in small
//!   transactions on its own connection) and checkpoints so freed space is
//!   reused; when `[archive]` is set, each of its passes first has
//!   `archive` move windows that ended long enough ago out of the file into
//!   Parquet files (one transaction per signal and window: the file is
//!   written and renamed, the rows deleted, the file recorded in
//!   `archive_parts`), and the limits drop archived windows whole.
//!   `archive::bucket` uploads each file to an S3-compatible bucket (and
//!   checks it there) before its rows leave the file, and mirrors other
//!   nodes' files from the bucket into the local directory reads use.
//!   `archive::views` defines what reads go through: `span_rows_all`,
//!   `log_rows_all` and `metric_rows_all` (each table and its archived
//!   files, with the table's columns) and over them the public `spans`,
//!   `logs` and `metrics` views, whose columns the files carry. The read side: `reader` is a bounded pool of read connections
//!   on blocking threads with per-query deadlines (ad-hoc SQL holds at most
//!   its own share, the `SqlLane`), `store` the one read interface (REST,
//!   MCP and Lua `runtime.store`) and `queries` the SQL behind it,
//!   including read-only user SQL.
//! - [`stream`]: the `Hub`, a ring of recent committed records with
//!   sequence numbers (kept as the published batches, so a reconnecting
//!   client's replay takes a reference per batch under the hub's lock), and
//!   an inbox per subscriber (`hub::Receiver`) that each published batch is
//!   shared into, one wake-up per batch; it never blocks the writer. SSE,
//!   functions and the error engine consume it.
//! - [`errors`]: the error engine. Its pure core — stack trace parsing,
//!   normalisation (`paths`: deploy roots, versions and hashes stripped so
//!   a group survives deploys), in-app rules, message templates,
//!   fingerprints, GenAI classification, release ordering, SLO burn math
//!   (`slo`), distinct-user sketches (`users`) — plus `regroup`, which
//!   re-keys groups of an older fingerprint version at start, and
//!   `capture`, which ingest runs on each export before queueing it (span
//!   `exception` events, exception logs, ERROR spans, GenAI failures and
//!   soft failures become `model::errors::ErrorOccurrence`s in the batch);
//!   `auto_resolve` is the periodic job that resolves quiet groups (no
//!   event for a while, or none since a deploy) through the writer;
//!   `slo_watch` the one that turns SLO burn into level changes (ok,
//!   warning, page), stored and published as `slo` records for the live
//!   stream and `on = "slo"` functions;
//!   `deploys` decides what a commit means for groups around deploys, and
//!   `baseline` keeps the week of daily counts escalation compares with. `analysis` reads the evidence about a group through the
//!   `Store` (exception chain with in-app frames first, similar groups,
//!   what changed against a baseline) for the MCP tools and for `triage`,
//!   automatic triage: a hub consumer (bounded,
//!   coalescing queue; never on the ingest path) that writes a report on
//!   each new, regressed or escalating group — suspected cause, GenAI
//!   class and provider status, deploy before the first event,
//!   `what_changed`, affected users/sessions/models, similar groups, next
//!   steps — plus an optional summary from an OpenAI-compatible model
//!   (redacted, bounded, rate- and time-limited); reports go through the
//!   writer as `Batch::triage` and out on the hub as `error` records with
//!   `change: triaged` (SSE event `triage`). `groups` is the grouping
//!   itself: every group in memory, matching, counting and the status
//!   workflow, staged until the commit lands; the writer's
//!   `derived::error_groups` stores what it decides.
//! - [`functions`]: user Lua functions (DESIGN §4). `sandbox` (the Luau
//!   VM: selected libraries, memory limit, interrupt deadline, the
//!   `lua-stdlib/` helpers preloaded as `qyl`), `spec` (a script →
//!   validated `FunctionSpec`s), `trigger` (`where` compiled to a native
//!   matcher, indexed by signal and service), `lint` (QYL2xxx, `qyl
//!   check`); `registry` (the live versions, swapped atomically with
//!   arc-swap; a broken save keeps the old one) and `watcher` (notify,
//!   debounced, editors' temp files ignored; a missing folder is waited
//!   for by watching its nearest existing ancestor); `dispatch` (a hub consumer on
//!   its own thread matching committed records natively, never qyl's own
//!   function telemetry, plus the schedule ticker); `executor` (dedicated
//!   worker threads, bounded queue, `max_concurrency`, governor rate
//!   limits, deadlines, circuit breaker; results leave through an outbox
//!   as `Batch::functions` rows plus qyl's own `execute_tool` spans, so the
//!   one writer stores them and publishes `Record::Function` on the hub);
//!   `running` (a `running` row for an invocation past one second, which
//!   its final row replaces);
//!   `record` (the userdata a handler gets) and `runtime_api` (`runtime`:
//!   the `Store` blocked on from the worker thread within the deadline,
//!   the hub's ring, state, logs); `runtime_http` and `http` (`runtime.http`
//!   to the hosts `http_allow` names, on a small runtime of its own),
//!   `secrets` (`runtime.secret`, scrubbed from all a VM hands back),
//!   `slo_filter` (`where` of `on = "slo"`); `engine` starts and stops the lot.
//!   `storage::writer::derived::functions` is its table writer.
//! - [`api`]: the HTTP API on the main port: thin handlers (one file per
//!   resource; `sessions` and `genai` for the LLM views) that parse query
//!   strings (`params`), call the `Store` and
//!   answer JSON or an `ApiError`; `openapi` describes them; `health`;
//!   `errors`, `releases` (with each deploy's correlation: groups, error
//!   rate, latency, GenAI errors and SLO burn around it) and `slo` serve
//!   the error engine (changes to groups and recorded deploys go through
//!   the writer as batch items);
//!   `api::auth` guards every HTTP route but health and the gRPC services
//!   (token, ingest token, read-only token, `?t=` cookie login), rate-limits per client
//!   address and adds CORS when configured. `api::live` is
//!   `GET /api/v1/live`: the hub as Server-Sent Events, filtered per client,
//!   resumable by `Last-Event-ID`, produced on an idle-priority thread of
//!   its own so streams lag rather than slow ingest; each record's frame is
//!   formatted once for all streams and a stream sends what is ready in one
//!   chunk (`types=function` adds the functions' invocations and published
//!   values). `api::functions` is
//!   `/api/v1/functions` (list, diagnostics, invocation history).
//!   `api::dashboard` serves the web UI built from `dashboard/` (embedded
//!   with rust-embed; the app at every page route, never at machine
//!   routes) — a client of the REST API and the live stream like any other.
//! - [`mcp`]: the MCP server at `/mcp` (rmcp, streamable HTTP, mounted in
//!   `api::router` behind the same guard). `server` is the handler (tools,
//!   prompts, the SQL schema as a resource); `tools/` one router per subject
//!   (`errors` with similar groups, `traces`, `genai` with the overview,
//!   `releases`, `changes` for `what_changed`, `data` for functions and
//!   SQL), each calling the `Store` as the REST handler for the same data
//!   does, changes through the writer, the read-only token refused by the
//!   tools that change state; `prompts` are `triage_error` and
//!   `investigate_cost_spike`; `answer` reads arguments (naming a wrong
//!   one) and builds results (`structuredContent` + a short text);
//!   `render` caps the text (lists, cut strings with a marker).
//! - [`telemetry`]: qyl's own figures as Prometheus text at `/metrics`.
//! - [`server`]: starts the storage, the writer and every listener, and
//!   shuts them down in order (listeners, in-flight exports, retention,
//!   queue, database).
//!
//! - [`cli`]: the client commands `qyl watch`, `qyl query` and
//!   `qyl healthcheck`: HTTP clients of a running qyl (REST, the live
//!   stream, `/health/ready`), never of the database.
//!
//! `main.rs` is the `qyl` command line around [`server::Server`] and [`cli`].

pub mod api;
pub mod cli;
pub mod config;
pub mod errors;
pub mod functions;
pub mod ingest;
pub mod mcp;
pub mod model;
pub mod server;
pub mod storage;
pub mod stream;
pub mod telemetry;
