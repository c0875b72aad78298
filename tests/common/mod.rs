//! Test harness: runs the real `qyl` binary on free ports with a temporary
//! DuckDB file, and reads that file back once qyl has stopped.
#![allow(dead_code)]

pub mod api;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Qyl {
    child: Option<Child>,
    pub http: String,
    pub otlp_http: String,
    pub grpc: String,
    pub db: PathBuf,
    stderr_log: PathBuf,
}

impl Qyl {
    /// Starts `qyl serve` on free ports with the database at `db`.
    pub fn start(db: &Path, env: &[(&str, &str)]) -> Qyl {
        Qyl::start_with(db, &[], env)
    }

    /// Like [`Qyl::start`], with more `qyl serve` arguments (`--bind`, ...).
    pub fn start_with(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Qyl {
        let stderr_log = db.with_extension(format!("stderr.{}", std::process::id()));
        let log = std::fs::File::create(&stderr_log).expect("creating the stderr log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qyl"));
        cmd.args([
            "serve",
            "--http-port",
            "0",
            "--otlp-http-port",
            "0",
            "--grpc-port",
            "0",
            "--data",
        ])
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log);
        // Tests run in the repository, whose scripts/ would otherwise be
        // loaded (and its example functions add spans of their own): no
        // functions unless a test asks for a folder.
        if !args.contains(&"--scripts") {
            cmd.arg("--scripts").arg(db.with_extension("no-scripts"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting qyl");
        let stdout = child.stdout.take().expect("qyl's stdout");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("reading qyl's first line");
        if !line.starts_with("qyl listening") {
            let _ = child.wait();
            panic!(
                "qyl did not start: {line:?}\n{}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        Qyl {
            http: field("http"),
            otlp_http: field("otlp_http"),
            grpc: field("grpc"),
            db: db.to_path_buf(),
            child: Some(child),
            stderr_log,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for qyl") {
                assert!(
                    status.success(),
                    "qyl exited with {status}\n{}",
                    self.logs()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("qyl did not stop within 30 s\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills qyl at once (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("killing qyl");
            child.wait().expect("waiting for qyl");
        }
    }

    /// Stops qyl and opens its database file.
    pub fn stop_and_open(&mut self) -> duckdb::Connection {
        self.stop();
        duckdb::Connection::open(&self.db).expect("opening qyl's database")
    }
}

impl Drop for Qyl {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_log);
    }
}

/// The Python interpreter of the test virtualenv (`make venv`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("QYL_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make venv` (or `make test`) to install the OpenTelemetry Python SDK",
        venv.display()
    );
    venv
}

/// Runs tests/py/<script> with the given environment; returns its stdout
/// parsed as JSON. Fails the test if the script fails.
pub fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let mut cmd = Command::new(python());
    cmd.arg(&path).args(args);
    // Only what the test sets: an application's own OTEL_* variables must
    // not leak in from the environment running the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running python");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn count(conn: &duckdb::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn string(conn: &duckdb::Connection, sql: &str) -> Option<String> {
    conn.query_row(sql, [], |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs tests/py/mcp_client.py (the official Python MCP SDK) against
/// `q`'s `/mcp` with `token` in `mode`, feeding it `plan` (`{"calls",
/// "resource", "prompts"}`); returns its JSON answer. Fails the test if the
/// script fails.
pub fn run_mcp_client(
    q: &Qyl,
    token: &str,
    mode: &str,
    plan: &serde_json::Value,
) -> serde_json::Value {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/mcp_client.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([&format!("http://{}/mcp", q.http), token, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running mcp_client.py");
    child
        .stdin
        .take()
        .expect("mcp_client.py's stdin")
        .write_all(plan.to_string().as_bytes())
        .expect("writing the plan");
    let out = child.wait_with_output().expect("waiting for mcp_client.py");
    assert!(
        out.status.success(),
        "mcp_client.py failed ({}):\n{}\n{}\nqyl:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        q.logs()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}
