//! `qyl watch` as a developer runs it beside their application: the real
//! binary against a real qyl, fed by the real OpenTelemetry Python SDK
//! (tests/py/watch_app.py), in line mode through a pipe, across a qyl
//! restart, with a token, and as the interactive screen inside tmux.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{run_python, Qyl};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A running `qyl watch` whose stdout and stderr are collected line by line.
struct Watch {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The threads reading the pipes; they end when the process has exited
    /// and they have read everything it wrote.
    readers: Vec<std::thread::JoinHandle<()>>,
    what: String,
}

impl Watch {
    fn start(http: &str, args: &[&str], env: &[(&str, &str)]) -> Watch {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qyl"));
        cmd.args(["watch", "--url", &format!("http://{http}")])
            .args(args)
            .env_remove("QYL_AUTH_TOKEN")
            .env_remove("QYL_URL")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting qyl watch");
        let mut readers = Vec::new();
        let mut collect = |pipe: Box<dyn Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push(line);
                }
            }));
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Watch {
            child,
            stdout,
            stderr,
            readers,
            what: format!("qyl watch {}", args.join(" ")),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn notices(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stdout holds a line containing each of `needles`.
    fn wait_for_lines(&self, needles: &[&str]) {
        wait_until(&format!("{}: lines with {needles:?}", self.what), || {
            let lines = self.lines();
            needles
                .iter()
                .all(|n| lines.iter().any(|l| l.contains(n)))
                .then_some(())
                .ok_or_else(|| format!("{lines:#?}\nstderr: {:#?}", self.notices()))
        });
    }

    fn wait_for_notice(&self, needle: &str) -> String {
        wait_until(&format!("{}: notice {needle:?}", self.what), || {
            let notices = self.notices();
            notices
                .iter()
                .find(|l| l.contains(needle))
                .cloned()
                .ok_or_else(|| format!("{notices:#?}"))
        })
    }

    fn assert_no_line_with(&self, needles: &[&str]) {
        for l in self.lines() {
            for n in needles {
                assert!(
                    !l.contains(n),
                    "{}: {l:?} should be filtered out",
                    self.what
                );
            }
        }
    }

    /// Ctrl-C, as in a terminal; the watch must exit 0.
    fn interrupt(mut self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("running kill")
            .success();
        assert!(ok);
        let status = wait_until(&format!("{} to exit", self.what), || {
            self.child
                .try_wait()
                .expect("waiting for qyl watch")
                .ok_or_else(String::new)
        });
        assert!(status.success(), "{} exited with {status}", self.what);
    }

    /// Waits for the watch to exit by itself; its status.
    /// Waits for the process to exit and for everything it wrote to be
    /// collected (the pipes can still hold its last lines when it exits).
    fn exit_status(&mut self) -> std::process::ExitStatus {
        let status = wait_until(&format!("{} to exit", self.what), || {
            self.child
                .try_wait()
                .expect("waiting for qyl watch")
                .ok_or_else(|| format!("{:#?}", self.notices()))
        });
        for reader in self.readers.drain(..) {
            reader.join().expect("reading qyl watch's output");
        }
        status
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it gives a value; fails with its last complaint.
fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("waited {WAIT:?} for {what}; have:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Runs the test application as service `service`, names tagged `tag`.
fn send(otlp_http: &str, service: &str, tag: &str) -> Value {
    send_with(otlp_http, service, tag, &[])
}

fn send_with(otlp_http: &str, service: &str, tag: &str, env: &[(&str, &str)]) -> Value {
    let endpoint = format!("http://{otlp_http}");
    let mut env = env.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()));
    run_python("watch_app.py", &[service, tag], &env)
}

/// Waits until qyl has committed (and so published to its live buffer)
/// every export it has answered: an export is answered once it is in the
/// journal, a few milliseconds before that. A query waits for it.
fn settled(http: &str) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(http).expect("connecting to qyl");
    write!(conn, "GET /api/v1/services HTTP/1.0\r\nHost: qyl\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

/// What watch_app.py sends, by the text each record shows.
fn all_of(tag: &str) -> Vec<String> {
    [
        "checkout",
        "SELECT orders",
        "pay",
        "chat",
        "cart ready",
        "payment failed",
    ]
    .iter()
    .map(|n| format!("{n} {tag}"))
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn line_mode_shows_records_and_filters_them() {
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let plain = Watch::start(&q.http, &["--no-tui"], &[]);
    let json = Watch::start(&q.http, &["--json"], &[]);
    let billing = Watch::start(&q.http, &["--no-tui", "--service", "billing"], &[]);
    let errors = Watch::start(&q.http, &["--lines", "--errors"], &[]);
    // `items` is in the "cart ready" log's attributes only; `declined` in
    // the failed payment span's status message.
    let grep = Watch::start(&q.http, &["--no-tui", "--grep", "items|declined"], &[]);
    let genai = Watch::start(&q.http, &["--no-tui", "--genai"], &[]);
    let coloured = Watch::start(&q.http, &["--no-tui", "--color", "always"], &[]);
    let slow = Watch::start(&q.http, &["--no-tui", "--min-duration", "250ms"], &[]);
    for w in [
        &plain, &json, &billing, &errors, &grep, &genai, &coloured, &slow,
    ] {
        w.wait_for_notice("connected to http://");
    }
    send(&q.otlp_http, "shop", "a");
    send(&q.otlp_http, "billing", "b");

    let everything: Vec<String> = all_of("a").into_iter().chain(all_of("b")).collect();
    plain.wait_for_lines(&strs(&everything));
    plain.wait_for_lines(&["error shop", "KeyError: 'card-a'"]);
    let lines = plain.lines();
    let line = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {lines:#?}"))
            .clone()
    };
    // Columns: time, kind, service (16 wide), duration (9, right-aligned),
    // status, text, trace.
    let checkout = line("checkout a");
    assert!(
        checkout[12..].starts_with(" span  shop                 300ms OK    checkout a  trace="),
        "{checkout:?}"
    );
    assert!(
        !checkout.contains('\x1b'),
        "a pipe gets no colours: {checkout:?}"
    );
    let hms = &checkout[..12];
    assert!(
        hms.as_bytes()[2] == b':' && hms.as_bytes()[8] == b'.',
        "{hms:?}"
    );
    assert!(line("cart ready b").contains("log   billing "));
    assert!(line("payment failed a").contains(" ERROR payment failed a"));
    assert!(line("pay a: card declined").contains(" ERROR pay a"));

    // NDJSON: every record once, with its type and id, in id order.
    let text_of = |r: &Value| {
        let row = &r["record"];
        row["name"]
            .as_str()
            .or(row["body"].as_str())
            .map(str::to_string)
    };
    let records: Vec<Value> = wait_until("every record in the NDJSON", || {
        let records: Vec<Value> = json
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let texts: Vec<String> = records.iter().filter_map(text_of).collect();
        let complete = everything.iter().all(|t| texts.contains(t))
            && records.iter().any(|r| r["type"] == "error");
        complete
            .then_some(records.clone())
            .ok_or_else(|| format!("{records:#?}"))
    });
    for t in &everything {
        let n = records
            .iter()
            .filter(|r| text_of(r).as_ref() == Some(t))
            .count();
        assert_eq!(n, 1, "{t:?} is in the NDJSON {n} times");
    }
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let find = |kind: &str, field: &str, value: &str| {
        records
            .iter()
            .find(|r| r["type"] == kind && r["record"][field] == value)
            .unwrap_or_else(|| panic!("no {kind} with {field}={value}: {records:#?}"))
    };
    let span = find("span", "name", "checkout b");
    assert_eq!(span["record"]["service_name"], "billing");
    assert_eq!(span["record"]["ingest_seq"], span["seq"]);
    // A user id alone is not GenAI: no `gen_ai` object, as the store
    // returns the span (and --genai leaves it out, below).
    assert!(span["record"]["gen_ai"].is_null(), "{span}");
    assert_eq!(
        find("log", "body", "payment failed a")["record"]["severity_text"],
        "ERROR"
    );
    assert_eq!(
        find("error", "service_name", "shop")["record"]["change"],
        "new"
    );

    billing.wait_for_lines(&strs(&all_of("b")));
    billing.assert_no_line_with(&["shop", " a  trace", "checkout a", "cart ready a"]);

    errors.wait_for_lines(&[
        "pay a: card declined",
        "payment failed a",
        "pay b",
        "payment failed b",
        "KeyError",
    ]);
    errors.assert_no_line_with(&["checkout", "SELECT orders", "cart ready", "chat"]);

    grep.wait_for_lines(&[
        "cart ready a",
        "pay a: card declined",
        "cart ready b",
        "pay b: card declined",
    ]);
    grep.assert_no_line_with(&["checkout", "SELECT orders", "chat", "payment failed"]);

    genai.wait_for_lines(&[
        "genai shop",
        "gpt-4o-mini  in 120 out 30",
        "chat a",
        "chat b",
    ]);
    genai.assert_no_line_with(&["checkout", "cart ready", "pay "]);

    coloured.wait_for_lines(&["payment failed a"]);
    let red = coloured
        .lines()
        .into_iter()
        .find(|l| l.contains("payment failed a"))
        .unwrap();
    assert!(red.contains("\x1b[1;31mERROR"), "{red:?}");

    // checkout is 300 ms, its SELECT 100 ms; logs have no duration.
    slow.wait_for_lines(&["checkout a", "checkout b"]);
    slow.assert_no_line_with(&["SELECT orders", "cart ready", "pay ", "chat "]);

    for w in [plain, json, billing, errors, grep, genai, coloured, slow] {
        w.interrupt();
    }
}

/// A port free now, for a qyl that must come back on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `qyl serve` on a fixed HTTP port (the harness always asks for port 0),
/// returning the child and its OTLP/HTTP address.
/// A `qyl serve` this test started; killed if the test fails before
/// stopping it, so a failed run leaves no server behind.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn serve_on(db: &Path, http_port: u16, env: &[(&str, &str)]) -> (Serving, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args(["serve", "--http-port", &http_port.to_string()])
        .args(["--otlp-http-port", "0", "--grpc-port", "0", "--data"])
        .arg(db)
        .arg("--scripts")
        .arg(db.with_extension("no-scripts"))
        // The gap test counts the hub's ring slot by slot; triage reports
        // are hub records too and would take slots at their own pace.
        .env("QYL_TRIAGE_ENABLED", "false")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting qyl");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading qyl's first line");
    assert!(
        line.starts_with("qyl listening"),
        "qyl did not start: {line:?}"
    );
    let otlp = line
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("otlp_http="))
        .expect("otlp_http in the first line")
        .to_string();
    (Serving(child), otlp)
}

/// Opens a live stream and holds it (qyl has `stream.max_clients` slots);
/// `None` if qyl refused it because the slot is taken.
fn hold_a_stream_slot(http: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(http).expect("connecting to qyl");
    write!(stream, "GET /api/v1/live HTTP/1.1\r\nHost: {http}\r\n\r\n").unwrap();
    let mut status = String::new();
    BufReader::new(&stream).read_line(&mut status).unwrap();
    status.contains(" 200 ").then_some(stream)
}

fn terminate(mut qyl: Serving) {
    let child = &mut qyl.0;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = wait_until("qyl to stop", || {
        child.try_wait().unwrap().ok_or_else(String::new)
    });
    assert!(status.success(), "qyl exited with {status}");
}

#[test]
fn the_watch_resumes_across_a_qyl_restart_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qyl.duckdb");
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let (first, otlp) = serve_on(&db, port, &[]);
    let watch = Watch::start(&http, &["--json"], &[]);
    watch.wait_for_notice("connected to http://");
    send(&otlp, "shop", "before");
    watch.wait_for_lines(&strs(&all_of("before")));

    terminate(first);
    watch.wait_for_notice("retrying in");
    // Read once qyl is gone: the new error group's record (which the lines
    // above do not include) may reach the watch just after them, and the
    // watch resumes after the last record it saw, whichever that was.
    let last_before = watch
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64())
        .max()
        .unwrap();
    let (second, otlp) = serve_on(&db, port, &[]);
    let notice = watch.wait_for_notice("reconnected");
    assert_eq!(
        notice,
        format!("qyl watch: reconnected to http://{http} (resumed after #{last_before})")
    );
    send(&otlp, "shop", "after");
    watch.wait_for_lines(&strs(&all_of("after")));

    // Records committed while the watch cannot connect, more than qyl's
    // live buffer holds: on resume the watch is told how many it missed
    // and gets the rest. A 4-record buffer, and the only stream slot held
    // by this test until the records are in.
    terminate(second);
    let small = [
        ("QYL_STREAM_RING_SIZE", "4"),
        ("QYL_STREAM_MAX_CLIENTS", "1"),
        // Frees the slot of a client that left within a second.
        ("QYL_STREAM_HEARTBEAT_SECS", "1"),
    ];
    let (third, otlp, slot) = (0..5)
        .find_map(|_| {
            let (qyl, otlp) = serve_on(&db, port, &small);
            match hold_a_stream_slot(&http) {
                Some(slot) => Some((qyl, otlp, slot)),
                // The watch's retry came first: try again.
                None => {
                    terminate(qyl);
                    None
                }
            }
        })
        .expect("the test never got the stream slot before the watch");
    watch.wait_for_notice("too many live streams");
    send(&otlp, "shop", "gapped");
    settled(&http);
    drop(slot);
    let gap = watch.wait_for_notice("missed up to");
    let missed: u64 = gap.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
    assert!(missed >= 2, "{gap}");
    // Then the buffer's 4 records, replayed.
    let gap_line = format!(r#"{{"type":"gap","missed":{missed}}}"#);
    wait_until("the gap and the replay in the NDJSON", || {
        let lines = watch.lines();
        let after_gap = lines.iter().skip_while(|l| **l != gap_line).count();
        (after_gap == 1 + 4)
            .then_some(())
            .ok_or_else(|| format!("{lines:#?}"))
    });
    terminate(third);

    let records: Vec<Value> = watch
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] != "gap")
        .collect();
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ids repeat: {seqs:?}");
    for text in all_of("before").iter().chain(&all_of("after")) {
        let shown = records
            .iter()
            .filter(|r| r["record"]["name"] == **text || r["record"]["body"] == **text)
            .count();
        assert_eq!(shown, 1, "{text:?} shown {shown} times: {records:#?}");
    }
    watch.interrupt();
}

#[test]
fn a_token_is_required_where_qyl_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let token = "watch-test-token-1234";
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), &[("QYL_AUTH_TOKEN", token)]);

    let mut refused = Watch::start(&q.http, &["--no-tui"], &[]);
    let status = refused.exit_status();
    assert_eq!(status.code(), Some(1), "{:#?}", refused.notices());
    let message = refused.notices().join("\n");
    assert!(
        message.contains("401") && message.contains("--token"),
        "{message}"
    );

    let mut wrong = Watch::start(&q.http, &["--no-tui"], &[("QYL_AUTH_TOKEN", "not-it")]);
    assert_eq!(wrong.exit_status().code(), Some(1));

    let allowed = Watch::start(&q.http, &["--no-tui", "--token", token], &[]);
    allowed.wait_for_notice("connected to http://");
    let headers = format!("authorization=Bearer%20{token}");
    send_with(
        &q.otlp_http,
        "shop",
        "tok",
        &[("OTEL_EXPORTER_OTLP_HEADERS", headers.as_str())],
    );
    allowed.wait_for_lines(&["checkout tok"]);
    allowed.interrupt();
}

/// A tmux server of this test's own, so it neither sees nor disturbs
/// anyone's sessions.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    fn text(&self, text: &str) {
        assert!(self
            .run(&["send-keys", "-t", &self.session, "-l", text])
            .status
            .success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(
            &self
                .run(&["capture-pane", "-p", "-t", &self.session])
                .stdout,
        )
        .into_owned()
    }

    /// Waits until the screen satisfies `check`.
    fn wait(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        wait_until(what, || {
            let screen = self.screen();
            if check(&screen) {
                Ok(screen)
            } else {
                Err(screen)
            }
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn the_screen_filters_pauses_and_opens_a_trace() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed (add it to .ci/run's packages)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let exit_file = dir.path().join("exit");
    let tmux = Tmux {
        socket: format!("qyl-watch-test-{}", std::process::id()),
        session: "watch".into(),
    };
    let command = format!(
        "{} watch --url http://{}; echo $? > {}",
        env!("CARGO_BIN_EXE_qyl"),
        q.http,
        exit_file.display()
    );
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        &tmux.session,
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    tmux.wait("the screen to connect", |s| s.contains("● connected"));

    send(&q.otlp_http, "shop", "x1");
    tmux.wait("rows", |s| {
        s.contains("checkout x1") && s.contains("payment failed x1")
    });

    // Filter as you type; Esc clears.
    tmux.keys(&["/"]);
    tmux.text("select ORD");
    tmux.wait("the filter to apply", |s| {
        s.contains("SELECT orders x1")
            && !s.contains("checkout x1")
            && s.contains("filter: /select ORD")
    });
    tmux.keys(&["Enter"]);
    tmux.keys(&["Escape"]);
    tmux.wait("the filter to clear", |s| {
        s.contains("checkout x1") && !s.contains("filter:")
    });

    // Paused: new rows are counted, not shown, until resumed.
    tmux.keys(&["Space"]);
    tmux.wait("the pause", |s| s.contains("PAUSED (0 new)"));
    send(&q.otlp_http, "shop", "x2");
    let paused = tmux.wait("rows held while paused", |s| {
        s.contains("PAUSED (") && !s.contains("PAUSED (0 new)")
    });
    // What arrived held still: the view is the one before.
    assert!(!paused.contains("x2"), "{paused}");
    // Its 4 spans and 2 logs (and an error group event if the grouping
    // found it new).
    tmux.wait("all of x2 held", |s| held(s).is_some_and(|n| n >= 6));
    assert!(!tmux.screen().contains("x2"));
    tmux.keys(&["p"]);
    tmux.wait("the held rows", |s| {
        s.contains("checkout x2") && !s.contains("PAUSED")
    });

    // Enter on a span opens its trace as a waterfall.
    tmux.keys(&["/"]);
    tmux.text("checkout x2");
    tmux.keys(&["Enter"]);
    tmux.wait("the filtered row", |s| !s.contains("cart ready x2"));
    tmux.keys(&["Enter"]);
    let waterfall = tmux.wait("the waterfall", |s| {
        s.contains("2 spans") && s.contains("  SELECT orders x2")
    });
    let lines: Vec<&str> = waterfall.lines().collect();
    let root = lines
        .iter()
        .position(|l| l.starts_with("checkout x2"))
        .unwrap_or_else(|| panic!("{waterfall}"));
    let child = lines[root + 1];
    assert!(child.starts_with("  SELECT orders x2"), "{waterfall}");
    // The root spans the whole bar; the child (20-120 ms of 300 ms) starts
    // later and is shorter.
    let bar = |l: &str| (l.find('█').unwrap(), l.matches('█').count());
    let (root_at, root_len) = bar(lines[root]);
    let (child_at, child_len) = bar(child);
    assert!(
        child_at > root_at && child_len * 2 < root_len,
        "{waterfall}"
    );
    assert!(
        lines[root].contains("300ms") && child.contains("100ms"),
        "{waterfall}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait("the list again", |s| s.contains("filter: /checkout x2"));

    tmux.keys(&["q"]);
    let code = wait_until("the watch to quit", || {
        std::fs::read_to_string(&exit_file)
            .map_err(|e| e.to_string())
            .and_then(|c| if c.ends_with('\n') { Ok(c) } else { Err(c) })
    });
    assert_eq!(code.trim(), "0");
}

/// The `N` of the header's `PAUSED (N new)`.
fn held(screen: &str) -> Option<u64> {
    let rest = &screen[screen.find("PAUSED (")? + "PAUSED (".len()..];
    rest[..rest.find(' ')?].parse().ok()
}
