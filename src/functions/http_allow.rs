//! `[functions] http_allow`: the hosts `runtime.http` may call. Nothing
//! by default. An entry is a host (`hooks.slack.com`: https on its default
//! port), a host and port (`127.0.0.1:8080`), the subdomains of a domain
//! (`*.example.com`), or any of those after `http://` for plain http, which
//! an entry without a scheme allows only on loopback. Hosts compare as the
//! URL parser writes them, so case, punycode and `user@host` tricks do not
//! get around a list.

use std::net::IpAddr;

use reqwest::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not the bare
    /// domain: list it too if it is meant).
    Subdomains(String),
}

/// One `http_allow` entry: `host`, `host:port`, `*.domain`, optionally
/// with `https://` or `http://` in front.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    /// `None`: https, or plain http too when the host is loopback.
    scheme: Option<Scheme>,
    host: HostPattern,
    /// `None`: the scheme's default port only.
    port: Option<u16>,
    text: String,
}

/// `[functions] http_allow`, parsed. Empty (the default) allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

/// A host as the URL parser writes it (lower case, punycode, IPv6 in
/// brackets), so entries and URLs compare alike.
fn normalise_host(host: &str) -> Option<String> {
    Url::parse(&format!("https://{host}/"))
        .ok()?
        .host_str()
        .map(str::to_string)
}

fn parse_entry(raw: &str) -> Result<AllowEntry, String> {
    let text = raw.trim().to_ascii_lowercase();
    let fail = |why: &str| Err(format!("{raw:?}: {why}"));
    let (scheme, rest) = if let Some(r) = text.strip_prefix("https://") {
        (Some(Scheme::Https), r)
    } else if let Some(r) = text.strip_prefix("http://") {
        (Some(Scheme::Http), r)
    } else if text.contains("://") {
        return fail("only http:// and https:// are allowed");
    } else {
        (None, text.as_str())
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return fail("names no host");
    }
    if rest.contains(['/', '?', '#', '@']) {
        return fail("write a host (and port), not a URL path: e.g. hooks.slack.com");
    }
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let Some((addr, tail)) = after.split_once(']') else {
            return fail("an IPv6 address needs its closing ]");
        };
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').unwrap_or("x")),
        };
        (format!("[{addr}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return fail("write an IPv6 address in brackets: [::1]:8080");
            }
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return fail("the port must be a number from 1 to 65535"),
        },
    };
    let host = if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') || !domain.contains('.') {
            return fail(
                "a wildcard covers the subdomains of a domain with a dot, e.g. *.example.com",
            );
        }
        let Some(normal) = normalise_host(domain) else {
            return fail("not a host name");
        };
        HostPattern::Subdomains(format!(".{normal}"))
    } else if host.contains('*') {
        return fail("a wildcard is only allowed as the first label: *.example.com (listing no host at all is not possible: name the hosts)");
    } else {
        match normalise_host(&host) {
            Some(h) => HostPattern::Exact(h),
            None => return fail("not a host name"),
        }
    };
    Ok(AllowEntry {
        scheme,
        host,
        port,
        text,
    })
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]` of a URL: what messages and records show (the
/// path and query may carry a token, as Slack webhook URLs do).
pub fn origin(url: &Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    s
}

impl AllowList {
    pub fn parse(entries: &[String]) -> Result<AllowList, String> {
        Ok(AllowList {
            entries: entries
                .iter()
                .map(|e| parse_entry(e))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn listed(&self) -> String {
        if self.entries.is_empty() {
            "nothing is allowed by default".into()
        } else {
            let names: Vec<&str> = self.entries.iter().map(|e| e.text.as_str()).collect();
            format!("allowed: {}", names.join(", "))
        }
    }

    /// Whether a function may call `url`; the refusal says why and what
    /// to add to qyl.toml.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => {
                return Err(format!(
                    "{other}: URLs are not allowed, only http:// and https://"
                ))
            }
        };
        let Some(host) = url.host_str() else {
            return Err("the URL has no host".into());
        };
        let port = url.port_or_known_default().unwrap_or(0);
        let host_matches = |e: &AllowEntry| match &e.host {
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        };
        let named: Vec<&AllowEntry> = self.entries.iter().filter(|e| host_matches(e)).collect();
        if named.is_empty() {
            return Err(format!(
                "host {host} is not in [functions] http_allow of qyl.toml ({})",
                self.listed()
            ));
        }
        let fits = named.iter().any(|e| {
            let scheme_ok = match e.scheme {
                Some(s) => s == scheme,
                None => scheme == Scheme::Https || is_loopback(url),
            };
            let port_ok = e.port.map_or(port == scheme.default_port(), |p| p == port);
            scheme_ok && port_ok
        });
        if fits {
            Ok(())
        } else {
            Err(format!(
                "{} is not allowed: [functions] http_allow names {host}, but an entry without a port allows only the default port and one without http:// allows https only (except on loopback) ({})",
                origin(url),
                self.listed()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    fn allowed(l: &AllowList, url: &str) -> bool {
        l.check(&Url::parse(url).unwrap()).is_ok()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let l = AllowList::default();
        let e = l
            .check(&Url::parse("https://hooks.slack.com/services/x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hooks.slack.com is not in [functions] http_allow"),
            "{e}"
        );
        assert!(e.contains("nothing is allowed by default"), "{e}");
        assert!(!e.contains("services"), "the path stays out: {e}");
    }

    #[test]
    fn hosts_ports_schemes_and_wildcards() {
        let l = list(&[
            "hooks.slack.com",
            "Events.PagerDuty.com",
            "127.0.0.1:8080",
            "*.example.com",
            "http://relay.internal:9000",
            "[::1]:7000",
        ]);
        assert!(allowed(&l, "https://hooks.slack.com/services/T/B/x"));
        assert!(allowed(&l, "https://events.pagerduty.com/v2/enqueue"));
        assert!(allowed(&l, "https://HOOKS.slack.com:443/x"));
        // Only the default port without one in the entry.
        assert!(!allowed(&l, "https://hooks.slack.com:8443/x"));
        // Plain http only to loopback or an http:// entry.
        assert!(!allowed(&l, "http://hooks.slack.com/x"));
        assert!(allowed(&l, "http://127.0.0.1:8080/hook"));
        assert!(allowed(&l, "https://127.0.0.1:8080/hook"));
        assert!(!allowed(&l, "http://127.0.0.1:8081/hook"));
        assert!(allowed(&l, "http://relay.internal:9000/x"));
        assert!(!allowed(&l, "https://relay.internal:9000/x"));
        assert!(allowed(&l, "http://[::1]:7000/x"));
        // Wildcards: subdomains at any depth, not the bare domain.
        assert!(allowed(&l, "https://a.example.com/"));
        assert!(allowed(&l, "https://a.b.example.com/"));
        assert!(!allowed(&l, "https://example.com/"));
        assert!(!allowed(&l, "https://badexample.com/"));
        // Look-alikes and userinfo tricks are other hosts.
        assert!(!allowed(&l, "https://hooks.slack.com.evil.net/"));
        assert!(!allowed(&l, "https://hooks.slack.com@evil.net/"));
        assert!(!allowed(&l, "ftp://hooks.slack.com/"));
        let e = l
            .check(&Url::parse("https://hooks.slack.com:8443/x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("https://hooks.slack.com:8443 is not allowed"),
            "{e}"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (entry, why) in [
            ("*", "wildcard"),
            ("*.com", "wildcard"),
            ("a.*.com", "first label"),
            ("hooks.slack.com/services", "not a URL path"),
            ("ftp://x.com", "only http"),
            ("x.com:0", "port"),
            ("x.com:http", "port"),
            ("::1", "brackets"),
            ("", "no host"),
        ] {
            let e = AllowList::parse(&[entry.to_string()]).unwrap_err();
            assert!(e.contains(why), "{entry}: {e}");
        }
    }
}
