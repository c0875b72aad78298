//! The `qyl` command line: `qyl serve` (the default) runs the server,
//! `qyl check` lints the Lua functions without one, and `qyl watch`,
//! `qyl query` and `qyl healthcheck` are clients of a running server
//! (`qyl::cli`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use qyl::config::Config;
use qyl::server::Server;

// glibc's allocator spent a fifth of ingest CPU in malloc/free here (records
// are built on tokio threads and freed on the writer's); mimalloc's
// thread-local free lists avoid most of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Memory settings for the server, made before its threads start.
///
/// Transparent huge pages off: mimalloc asks for them on its arena, and a
/// 2 MiB page is resident whole however little of it is in use, which
/// under load held ~80 MB of the arena's ~165 (peak RSS 372 MB against
/// 354 without them, at the same CPU per span). And two malloc arenas:
/// DuckDB allocates through the C library, which otherwise opens an arena
/// per thread that contends (up to eight per core), each keeping what it
/// freed below its top (prefill peak 337 MB against 320).
fn keep_memory_in_small_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only
    // and changes nothing but the process's huge-page policy.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes integers; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[derive(Parser)]
#[command(
    name = "qyl",
    version,
    about = "Self-hosted observability for LLM applications: OTLP in, DuckDB inside, live stream out.",
    long_about = "Self-hosted observability for LLM applications.\n\n\
        qyl receives OpenTelemetry traces, logs and metrics (OTLP over gRPC on :4317 and \
        HTTP on :4318 and :5100, protobuf or JSON, gzip) and stores them in an embedded \
        DuckDB file. Point any OpenTelemetry SDK at it; no configuration beyond the \
        endpoint is needed.\n\nWithout a command, `qyl` runs `qyl serve`."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Check the Lua functions in a directory without starting a server:
    /// load each script, report errors and QYL2xxx diagnostics compiler-style.
    /// Exits non-zero when there are errors.
    Check(CheckArgs),
    /// Follow what a running qyl receives, live: spans, logs, errors and
    /// function results, one line each (an interactive screen in a terminal).
    Watch(qyl::cli::watch::WatchArgs),
    /// Ask a running qyl: SQL, or a shortcut (traces, errors, sessions).
    Query(qyl::cli::query::QueryArgs),
    /// Exit 0 when a running qyl is ready (GET /health/ready), 1 otherwise;
    /// for container HEALTHCHECKs without curl.
    Healthcheck(qyl::cli::healthcheck::HealthcheckArgs),
    /// Print the version and the schema version this build writes.
    Version,
}

#[derive(Args)]
struct CheckArgs {
    /// Directory of scripts [default: functions.dir from the configuration, i.e. scripts].
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Configuration file, for functions.dir and functions.http_allow. Default: ./qyl.toml if it exists.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Leave out info diagnostics (QYL2004 and the like).
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Configuration file. Default: ./qyl.toml if it exists, else the built-in
    /// defaults (the repository's qyl.toml). Only the keys you change are needed.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to bind every listener to, e.g. 127.0.0.1 or 0.0.0.0 [config: server.bind].
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Port of the HTTP API and OTLP/HTTP; 0 picks a free port [config: server.http_port, default 5100].
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// Port of OTLP/HTTP (the SDKs' default); 0 picks a free port [config: server.otlp_http_port, default 4318].
    #[arg(long, value_name = "PORT")]
    otlp_http_port: Option<u16>,
    /// Port of OTLP/gRPC (the SDKs' default); 0 picks a free port [config: server.grpc_port, default 4317].
    #[arg(long, value_name = "PORT")]
    grpc_port: Option<u16>,
    /// DuckDB database file, or :memory: [config: storage.path, default data/qyl.duckdb].
    #[arg(long, value_name = "PATH")]
    data: Option<String>,
    /// Directory of Lua functions, for the functions engine [config: functions.dir, default scripts].
    #[arg(long, value_name = "DIR")]
    scripts: Option<PathBuf>,
    /// Serve without a token even when bound beyond loopback, where qyl would
    /// otherwise generate one: anyone who reaches the ports can read and write.
    #[arg(long)]
    insecure_no_auth: bool,
}

impl ServeArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from("qyl.toml")).filter(|p| p.is_file()),
        };
        let mut config = Config::from_layers(file.as_deref(), std::env::vars())?;
        if let Some(bind) = &self.bind {
            config.server.bind = bind.clone();
        }
        if let Some(p) = self.http_port {
            config.server.http_port = p;
        }
        if let Some(p) = self.otlp_http_port {
            config.server.otlp_http_port = p;
        }
        if let Some(p) = self.grpc_port {
            config.server.grpc_port = p;
        }
        if let Some(d) = &self.data {
            config.storage.path = d.clone();
        }
        if let Some(s) = &self.scripts {
            config.functions.dir = s.clone();
        }
        config.auth.insecure_no_auth = self.insecure_no_auth;
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Version) => {
            println!(
                "qyl {} (schema version {})",
                env!("CARGO_PKG_VERSION"),
                qyl::storage::schema::latest_version()
            );
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Check(args)) => {
            let code = check(args)?;
            std::process::exit(code);
        }
        Some(Command::Watch(args)) => client_exit(qyl::cli::watch::run(args).map(|()| 0)),
        Some(Command::Query(args)) => client_exit(qyl::cli::query::run(args)),
        Some(Command::Healthcheck(args)) => std::process::exit(qyl::cli::healthcheck::run(args)),
        None => serve(ServeArgs::default()),
    }
}

/// Ends a client command: its exit code, or its error in one line on
/// stderr and 1 (no backtrace: the message names what went wrong, often
/// the server's own words).
fn client_exit(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints every diagnostic on stdout and a summary on stderr; returns the
/// exit code (1 when any error was found).
fn check(args: CheckArgs) -> anyhow::Result<i32> {
    use qyl::functions::http::AllowList;
    use qyl::functions::lint::{check_dir_with, Severity};
    // The configuration names the folder and the hosts runtime.http may
    // call (QYL2005).
    let config = ServeArgs {
        config: args.config,
        ..Default::default()
    }
    .load()?;
    let dir = args.dir.unwrap_or(config.functions.dir);
    let allow = AllowList::parse(&config.functions.http_allow).map_err(anyhow::Error::msg)?;
    let report = check_dir_with(&dir, &allow)
        .with_context(|| format!("reading scripts from {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    for d in &report.diagnostics {
        if args.quiet && d.severity == Severity::Info {
            continue;
        }
        writeln!(out, "{d}")?;
    }
    out.flush()?;
    let errors = report.count(Severity::Error);
    eprintln!(
        "checked {} function(s) in {} file(s) in {}: {} error(s), {} warning(s)",
        report.functions,
        report.files,
        dir.display(),
        errors,
        report.count(Severity::Warning)
    );
    Ok(if errors > 0 { 1 } else { 0 })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    keep_memory_in_small_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = args.load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qyl")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = Server::start(&config).await?;
        // Before the line below: a supervisor (or test) may send SIGTERM as
        // soon as it reads it, and must get a clean shutdown, not the
        // default action's kill.
        let stop = shutdown_signal();
        let a = server.addrs;
        // One line on stdout that tools and tests can parse.
        println!(
            "qyl listening http={} otlp_http={} grpc={} data={}",
            a.http, a.otlp_http, a.grpc, config.storage.path
        );
        let _ = std::io::stdout().flush();
        tracing::info!(
            "send OTLP to grpc://{} or http://{} (POST /v1/traces, /v1/logs, /v1/metrics)",
            a.grpc,
            a.otlp_http
        );
        tracing::info!("dashboard at http://{}/", a.http);
        stop.await;
        tracing::info!("shutting down: finishing in-flight exports and committing the queue");
        server.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Registers for SIGTERM and Ctrl-C now; the future resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut t), Some(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                (Some(mut t), None) => {
                    t.recv().await;
                }
                (None, Some(mut i)) => {
                    i.recv().await;
                }
                (None, None) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
