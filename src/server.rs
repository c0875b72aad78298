//! Wires the pieces into a running server: storage and writer, hub, the HTTP
//! and OTLP/HTTP listeners, and the gRPC listener. Used by `qyl serve`, the
//! integration tests and the benchmark, so all three run the same thing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::functions::engine::{Engine, EngineConfig};
use crate::functions::executor::ExecutorConfig;
use crate::functions::runtime_api::RuntimeContext;
use crate::ingest;
use crate::storage::retention::{Location, Retention, RetentionPolicy, RetentionStats};
use crate::storage::writer::{Writer, WriterConfig, WriterHandle};
use crate::storage::{self, StorageOptions, Store};
use crate::stream::Hub;

/// The addresses actually bound (ports chosen when 0 was asked for).
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub http: SocketAddr,
    pub otlp_http: SocketAddr,
    pub grpc: SocketAddr,
}

pub struct Server {
    pub addrs: Addrs,
    writer: Option<Writer>,
    retention: Option<Retention>,
    hub: Arc<Hub>,
    live: Arc<api::live::LiveClients>,
    mcp_stop: tokio_util::sync::CancellationToken,
    functions: Arc<Engine>,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

/// Rows (spans' worth of traces, or log / metric rows) per retention
/// transaction: large enough that a pass needs few, small enough that one
/// transaction's undo data stays a few MB.
const RETENTION_BATCH_ROWS: usize = 50_000;

async fn bind(addr: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((addr, port)).await.with_context(|| {
        format!("binding the {what} port {port} on {addr} (is another qyl running? choose another port with the flags of `qyl serve`)")
    })
}

impl Server {
    /// Opens the database, starts the writer and binds every listener.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        let archive = if config.archive.path.is_empty() {
            None
        } else {
            let path = std::path::Path::new(&config.archive.path);
            let settings = storage::archive::ArchiveSettings::new(
                path,
                config.archive.window_minutes,
                config.archive.after_minutes,
                &config.archive.node,
            )
            .with_context(|| format!("preparing the archive directory {}", path.display()))?;
            Some(if config.archive.url.is_empty() {
                settings
            } else {
                let bucket = storage::archive::bucket::Bucket::from_url(&config.archive.url)
                    .with_context(|| {
                        format!("opening the archive bucket {}", config.archive.url)
                    })?;
                settings.with_bucket(bucket)
            })
        };
        let archiving = archive.is_some();
        let archived_windows = archive.as_ref().map(|a| a.named.clone());
        let opts = StorageOptions {
            path: config.storage.path.clone(),
            memory_limit_mb: config.storage.memory_limit_mb,
            threads: config.storage.threads,
            archive: archive.clone(),
        };
        let hub = Arc::new(Hub::new(config.stream.ring_size));
        let writer_config = WriterConfig {
            queue_rows: config.ingest.queue_rows,
            batch_rows: config.ingest.batch_rows,
            batch_wait: Duration::from_millis(config.ingest.batch_ms),
            fill_wait: Duration::from_millis(config.ingest.fill_ms),
            dedup_window: config.ingest.dedup_window,
            checkpoint_interval: Duration::from_secs(config.storage.checkpoint_interval_secs),
            derived: storage::writer::derived::DerivedSettings::from_config(&config.errors),
        };
        let pricing = Arc::new(
            config
                .genai
                .price_table()
                .context("building the GenAI price table")?,
        );
        let capture = Arc::new(crate::errors::capture::Capture::from_config(&config.errors));
        let policy = RetentionPolicy {
            max_age: (config.storage.retention_hours > 0)
                .then(|| Duration::from_secs(config.storage.retention_hours * 3600)),
            max_bytes: (config.storage.max_db_size_mb > 0)
                .then_some(config.storage.max_db_size_mb << 20),
            batch_rows: RETENTION_BATCH_ROWS,
            archive,
        };
        let retention_every = Duration::from_secs(config.storage.retention_interval_secs);
        let (writer, retention, db) = {
            let hub = hub.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let db = storage::open(&opts)
                    .with_context(|| format!("opening the database {}", opts.path))?;
                let is_file = opts.path != ":memory:";
                let writer = Writer::start(db.clone(), hub, writer_config, is_file)?;
                let retention = Retention::start(
                    &db,
                    Location::from_path(&opts.path),
                    policy,
                    retention_every,
                )?;
                Ok((writer, retention, db))
            })
            .await
            .context("the storage start-up task panicked")??
        };
        let handle = writer.handle();
        let exporter = ingest::Exporter::new(handle.clone(), pricing.clone(), capture);
        crate::errors::self_report::install(exporter.clone());
        let store = Arc::new(
            Store::new(
                db,
                &config.storage.path,
                config.query.pool_size,
                Duration::from_millis(config.query.timeout_ms),
            )
            .with_sql_slots(config.query.sql_slots)
            .with_deploy_window(config.errors.deploy_window_ns())
            .with_summary_sync(handle.summary_sync())
            .with_visibility(handle.visibility())
            .with_archive_refresh(archiving.then(|| retention.archive_refresh()))
            .with_archived_windows(archived_windows),
        );
        let functions = start_functions(config, &store, &hub, exporter.clone()).await?;
        let state = AppState {
            store,
            writer: handle.clone(),
            pricing,
            hub: hub.clone(),
            retention: retention.stats(),
            config: Arc::new(config.clone()),
            started: std::time::Instant::now(),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            live: Default::default(),
            functions: functions.clone(),
            mcp_stop: Default::default(),
        };
        let guard = api::auth::Guard::from_config(config)?;
        let max_body = config.max_body_bytes();
        let bind_addr = config.server.bind.as_str();

        let http = bind(bind_addr, config.server.http_port, "HTTP").await?;
        let shared_otlp =
            config.server.otlp_http_port == config.server.http_port && config.server.http_port != 0;
        let otlp_http = if shared_otlp {
            None
        } else {
            Some(bind(bind_addr, config.server.otlp_http_port, "OTLP/HTTP").await?)
        };
        let grpc = bind(bind_addr, config.server.grpc_port, "OTLP/gRPC").await?;

        let http_addr = http.local_addr()?;
        let addrs = Addrs {
            http: http_addr,
            otlp_http: match &otlp_http {
                Some(l) => l.local_addr()?,
                None => http_addr,
            },
            grpc: grpc.local_addr()?,
        };

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        guard.announce(addrs.http);
        let main_router =
            ingest::http::routes(exporter.clone(), max_body).merge(api::router(state.clone()));
        let main_router = guard.wrap(main_router);
        tasks.push(("http", serve_http(http, main_router, stopped.clone())));
        if let Some(listener) = otlp_http {
            let router = guard.wrap(ingest::http::routes(exporter.clone(), max_body));
            tasks.push(("otlp-http", serve_http(listener, router, stopped.clone())));
        }
        if config.triage.enabled {
            let job = crate::errors::triage::run(
                config.triage.clone(),
                hub.clone(),
                state.store.clone(),
                handle.clone(),
                stopped.clone(),
            );
            tasks.push(("error triage", tokio::spawn(job)));
        }
        if !config.errors.slo.is_empty() {
            let job = crate::errors::slo_watch::run(
                config.errors.slo.clone(),
                config.errors.slo_check_every(),
                state.store.clone(),
                handle.clone(),
                stopped.clone(),
            );
            tasks.push(("slo watch", tokio::spawn(job)));
        }
        let quiet = crate::errors::auto_resolve::QuietTimes::from_config(&config.errors);
        if quiet.any() {
            let job = crate::errors::auto_resolve::run(handle.clone(), quiet, stopped.clone());
            tasks.push(("error auto-resolve", tokio::spawn(job)));
        }
        tasks.push((
            "grpc",
            serve_grpc(grpc, exporter, max_body, guard.grpc(), stopped),
        ));
        state
            .ready
            .store(true, std::sync::atomic::Ordering::Release);

        Ok(Server {
            addrs,
            writer: Some(writer),
            retention: Some(retention),
            hub,
            live: state.live.clone(),
            mcp_stop: state.mcp_stop.clone(),
            functions,
            stop,
            tasks,
        })
    }

    pub fn writer(&self) -> WriterHandle {
        self.writer
            .as_ref()
            .map(Writer::handle)
            .expect("the writer runs until shutdown")
    }

    /// What retention has done so far (benchmarks and tests watch it).
    pub fn retention_stats(&self) -> Arc<RetentionStats> {
        self.retention
            .as_ref()
            .map(Retention::stats)
            .expect("retention runs until shutdown")
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// The Lua functions engine.
    pub fn functions(&self) -> Arc<Engine> {
        self.functions.clone()
    }

    /// Stops accepting connections, lets in-flight exports finish (their
    /// commits included), stops retention, then commits whatever is queued
    /// and closes the database.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        // Live streams and MCP sessions never finish by themselves; the
        // listeners wait for them.
        self.live.close();
        self.mcp_stop.cancel();
        let mut result = Ok(());
        let deadline = tokio::time::Instant::now() + LISTENER_GRACE;
        for (name, mut task) in std::mem::take(&mut self.tasks) {
            let outcome = match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // A client still sending (or reading) this late is cut
                    // off: its export was never acknowledged, and what is
                    // queued still gets committed below.
                    tracing::warn!(
                        listener = name,
                        grace = ?LISTENER_GRACE,
                        "requests still open at shutdown; closing them"
                    );
                    task.abort();
                    continue;
                }
            };
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e.context(format!("the {name} server failed"))),
                Err(e) => result = Err(anyhow::anyhow!("the {name} server panicked: {e}")),
            }
        }
        // Functions before the writer: their last rows go through it.
        let functions = self.functions.clone();
        tokio::task::spawn_blocking(move || functions.stop())
            .await
            .context("the functions engine panicked while stopping")?;
        // Retention first: the writer's final checkpoint should not race a
        // retention delete, and a pass in progress stops after its batch.
        if let Some(retention) = self.retention.take() {
            tokio::task::spawn_blocking(move || retention.shutdown())
                .await
                .context("the retention thread panicked while shutting down")?;
        }
        if let Some(writer) = self.writer.take() {
            tokio::task::spawn_blocking(move || writer.shutdown())
                .await
                .context("the writer panicked while shutting down")?;
        }
        result
    }
}

/// How long shutdown waits for open requests before closing them: well
/// inside the 10 s a container runtime gives between SIGTERM and SIGKILL,
/// leaving time to commit the queue and checkpoint.
const LISTENER_GRACE: Duration = Duration::from_secs(4);

/// Starts the functions engine: persisted `runtime.state` first, then the
/// scripts (compiled on a blocking thread), the workers, the dispatcher on
/// the hub and the directory watcher.
async fn start_functions(
    config: &Config,
    store: &Arc<Store>,
    hub: &Arc<Hub>,
    exporter: ingest::Exporter,
) -> anyhow::Result<Arc<Engine>> {
    let f = &config.functions;
    let engine_config = EngineConfig {
        dir: f.dir.clone(),
        executor: ExecutorConfig {
            workers: f.workers,
            queue_size: f.queue_size,
            max_timeout: Duration::from_millis(f.max_timeout_ms),
            when_timeout: Duration::from_millis(f.when_timeout_ms),
            breaker_failures: f.breaker_failures,
            breaker_window: Duration::from_secs(f.breaker_window_secs),
            breaker_cooldown: Duration::from_secs(f.breaker_cooldown_secs),
        },
        debounce: Duration::from_millis(f.debounce_ms),
    };
    let state = store
        .function_state()
        .await
        .context("loading the functions' runtime.state")?;
    let runtime = Arc::new(RuntimeContext {
        store: Some(store.clone()),
        handle: Some(tokio::runtime::Handle::current()),
        hub: Some(hub.clone()),
        sql_row_limit: config.query.sql_row_limit,
        catalog: Default::default(),
        http: crate::functions::http::HttpSettings::from_config(f)
            .map_err(|e| anyhow::anyhow!("functions.http_allow: {e}"))?,
    });
    let hub = hub.clone();
    tokio::task::spawn_blocking(move || {
        Engine::start(engine_config, Box::new(exporter), runtime, Some(hub), state)
    })
    .await
    .context("the functions start-up task panicked")?
    .context("starting the functions engine")
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        // Client addresses key the rate limits.
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        // Streamed answers (MCP, SSE) go out in several small writes; with
        // Nagle on, each later write waited ~40 ms for the client's ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, service)
            .with_graceful_shutdown(stopped(stop))
            .await
            .context("serving HTTP")
    })
}

fn serve_grpc(
    listener: TcpListener,
    exporter: ingest::Exporter,
    max_body: usize,
    guard: api::auth::GrpcGuard,
    stop: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let (traces, logs, metrics) = ingest::grpc::services(exporter, max_body);
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(guard))
            .add_service(traces)
            .add_service(logs)
            .add_service(metrics)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(stop))
            .await
            .context("serving gRPC")
    })
}
