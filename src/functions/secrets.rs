//! `runtime.secret(name)`: webhook URLs and routing keys come from
//! `[functions.secrets]` in qyl.toml (a value, `env:VAR` or `file:PATH`),
//! never from a script's text, so a script can be shared or committed
//! without them. A value a VM has read is scrubbed from everything that
//! VM's invocations hand to the writer (results, errors, logs, published
//! values, state, qyl's own spans): a secret never lands in the database.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The longest secret file read (a key or a URL, not a document).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// `[functions.secrets]`: name → `value`, `env:VAR` or `file:PATH`. Its
/// `Debug` shows the names and where each comes from, never a value.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct SecretsConfig(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, Source::of(v).describe())))
            .finish()
    }
}

/// Where one secret's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source<'a> {
    Env(&'a str),
    File(&'a str),
    Value(&'a str),
}

impl<'a> Source<'a> {
    fn of(text: &'a str) -> Source<'a> {
        if let Some(var) = text.strip_prefix("env:") {
            Source::Env(var.trim())
        } else if let Some(path) = text.strip_prefix("file:") {
            Source::File(path.trim())
        } else {
            Source::Value(text)
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Env(v) => format!("env:{v}"),
            Source::File(p) => format!("file:{p}"),
            Source::Value(_) => "<value>".into(),
        }
    }
}

impl SecretsConfig {
    /// Names are what scripts pass to `runtime.secret`; `env:` and `file:`
    /// need something after the colon.
    pub fn validate(&self) -> Result<(), String> {
        for (name, text) in &self.0 {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err(format!(
                    "{name:?}: a secret's name uses letters, digits, '_', '-' and '.' only"
                ));
            }
            match Source::of(text) {
                Source::Env("") => {
                    return Err(format!("{name}: `env:` needs a variable name"));
                }
                Source::File("") => return Err(format!("{name}: `file:` needs a path")),
                _ => {}
            }
        }
        Ok(())
    }

    /// The value of `name` now: `None` when no such secret is configured or
    /// its variable or file is unset or empty (a script skips quietly);
    /// an error only when its file cannot be read.
    pub fn resolve(&self, name: &str) -> Result<Option<String>, String> {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        let value = match Source::of(text) {
            Source::Value(v) => v.to_string(),
            Source::Env(var) => std::env::var(var).unwrap_or_default(),
            Source::File(path) => read_file(Path::new(path))
                .map_err(|e| format!("secret {name:?}: reading {path}: {e}"))?,
        };
        Ok((!value.is_empty()).then_some(value))
    }
}

fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)?;
    // Files written by `echo` or an editor end with a newline the secret
    // does not have.
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// The secrets one VM has read (its app data, kept for the VM's life:
/// a script may keep a value in a global and leak it later).
#[derive(Debug, Default, Clone)]
pub struct SeenSecrets {
    /// (value as written, its JSON-escaped form when different, name).
    values: Vec<(String, Option<String>, String)>,
}

impl SeenSecrets {
    pub fn add(&mut self, name: &str, value: &str) {
        if self.values.iter().any(|(v, _, _)| v == value) {
            return;
        }
        // Inside JSON text (results, published values) the value appears
        // escaped when it has quotes, backslashes or control characters.
        let escaped = serde_json::to_string(value)
            .ok()
            .map(|q| q[1..q.len() - 1].to_string())
            .filter(|e| e != value);
        self.values
            .push((value.to_string(), escaped, name.to_string()));
        // Longest first, so a secret that contains another is replaced whole.
        self.values
            .sort_by_key(|(v, _, _)| std::cmp::Reverse(v.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret replaced by `[secret NAME]`.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (value, escaped, name) in &self.values {
            for form in std::iter::once(value).chain(escaped.as_ref()) {
                if out.contains(form.as_str()) {
                    out = Cow::Owned(out.replace(form.as_str(), &format!("[secret {name}]")));
                }
            }
        }
        out
    }

    pub fn scrub_in_place(&self, text: &mut String) {
        if let Cow::Owned(s) = self.scrub(text) {
            *text = s;
        }
    }

    pub fn scrub_option(&self, text: &mut Option<String>) {
        if let Some(t) = text {
            self.scrub_in_place(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> SecretsConfig {
        SecretsConfig(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn values_env_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-a-file\n").unwrap();
        // A variable name no other test or tool sets.
        let var = "QYL_TEST_SECRETS_RS_UNSET_VARIABLE";
        let c = config(&[
            ("plain", "abc123"),
            ("file", &format!("file:{}", file.display())),
            ("env", &format!("env:{var}")),
            ("missing_file", "file:/nonexistent/qyl/secret"),
        ]);
        c.validate().unwrap();
        assert_eq!(c.resolve("plain").unwrap().as_deref(), Some("abc123"));
        assert_eq!(c.resolve("file").unwrap().as_deref(), Some("from-a-file"));
        assert_eq!(c.resolve("env").unwrap(), None);
        assert_eq!(c.resolve("not_configured").unwrap(), None);
        let e = c.resolve("missing_file").unwrap_err();
        assert!(
            e.contains("missing_file") && e.contains("/nonexistent"),
            "{e}"
        );
        // Debug never shows a value.
        let shown = format!("{c:?}");
        assert!(!shown.contains("abc123"), "{shown}");
        assert!(shown.contains("env:QYL_TEST"), "{shown}");
    }

    #[test]
    fn bad_names_and_empty_sources_are_refused() {
        assert!(config(&[("has space", "x")]).validate().is_err());
        assert!(config(&[("a", "env:")]).validate().is_err());
        assert!(config(&[("a", "file: ")]).validate().is_err());
    }

    #[test]
    fn scrubbing_replaces_plain_and_json_escaped_forms() {
        let mut seen = SeenSecrets::default();
        seen.add("hook", "https://hooks.example.com/T0/B0/xyz");
        seen.add("quoted", "a\"b\\c-long");
        seen.add("hook", "https://hooks.example.com/T0/B0/xyz");
        assert_eq!(
            seen.scrub("posting to https://hooks.example.com/T0/B0/xyz failed"),
            "posting to [secret hook] failed"
        );
        let json = serde_json::json!({ "k": "a\"b\\c-long" }).to_string();
        assert_eq!(seen.scrub(&json), r#"{"k":"[secret quoted]"}"#);
        assert!(matches!(seen.scrub("nothing here"), Cow::Borrowed(_)));
    }
}
