//! Span and trace ids as their hex text, held inline.
//!
//! Every span carries three ids. As `String`s they were three heap
//! allocations per span, made on the ingest threads and freed on another
//! thread after the commit; inline, a span's ids cost nothing to allocate
//! or free. They still read as `&str` (lowercase hex, as stored and shown
//! everywhere), so code that only reads them does not change.

use std::fmt;
use std::ops::Deref;

/// Hex text of at most `N` bytes. Ingest only makes canonical ids (32 hex
/// digits for a trace, 16 for a span); longer text keeps its first `N`
/// bytes, cut at a character boundary.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexId<const N: usize> {
    len: u8,
    text: [u8; N],
}

/// A trace id: 16 bytes, 32 hex digits.
pub type TraceId = HexId<32>;
/// A span id: 8 bytes, 16 hex digits.
pub type SpanId = HexId<16>;

impl<const N: usize> HexId<N> {
    /// The id of raw id bytes, as lowercase hex (`bytes` of at most `N / 2`
    /// bytes; the rest is left out).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut id = Self::default();
        for (i, b) in bytes.iter().take(N / 2).enumerate() {
            id.text[2 * i] = DIGITS[usize::from(b >> 4)];
            id.text[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
            id.len += 2;
        }
        id
    }

    /// `text`, or `None` when it is longer than `N` bytes.
    pub fn new(text: &str) -> Option<Self> {
        (text.len() <= N).then(|| Self::truncated(text))
    }

    fn truncated(text: &str) -> Self {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut id = HexId {
            len: end as u8,
            ..Self::default()
        };
        id.text[..end].copy_from_slice(&text.as_bytes()[..end]);
        id
    }

    pub fn as_str(&self) -> &str {
        let text = &self.text[..usize::from(self.len)];
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: the fields are private and only `truncated` (whole
        // characters of a `&str`) and `from_bytes` (ASCII hex digits) write
        // them, so `text` is UTF-8. Checking it on every read was ~1.5 % of
        // qyl's CPU under load: every commit reads each span's ids a few
        // times.
        unsafe { std::str::from_utf8_unchecked(text) }
    }
}

impl<const N: usize> Default for HexId<N> {
    fn default() -> Self {
        HexId {
            len: 0,
            text: [0; N],
        }
    }
}

impl<const N: usize> Deref for HexId<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> AsRef<str> for HexId<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> From<&str> for HexId<N> {
    fn from(text: &str) -> Self {
        Self::truncated(text)
    }
}

impl<const N: usize> From<String> for HexId<N> {
    fn from(text: String) -> Self {
        Self::truncated(&text)
    }
}

impl<const N: usize> From<&String> for HexId<N> {
    fn from(text: &String) -> Self {
        Self::truncated(text)
    }
}

impl<const N: usize> From<HexId<N>> for String {
    fn from(id: HexId<N>) -> String {
        id.as_str().to_owned()
    }
}

impl<const N: usize> PartialEq<str> for HexId<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for HexId<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> PartialEq<String> for HexId<N> {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<HexId<N>> for str {
    fn eq(&self, other: &HexId<N>) -> bool {
        self == other.as_str()
    }
}

impl<const N: usize> PartialEq<HexId<N>> for &str {
    fn eq(&self, other: &HexId<N>) -> bool {
        *self == other.as_str()
    }
}

impl<const N: usize> PartialEq<HexId<N>> for String {
    fn eq(&self, other: &HexId<N>) -> bool {
        self == other.as_str()
    }
}

impl<const N: usize> PartialOrd for HexId<N> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<const N: usize> Ord for HexId<N> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl<const N: usize> fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for HexId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> serde::Serialize for HexId<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_become_lowercase_hex() {
        let id = TraceId::from_bytes(&[0x0a, 0xbc, 0xff, 0x00]);
        assert_eq!(id, "0abcff00");
        let id = SpanId::from_bytes(&[0xAB; 8]);
        assert_eq!(id.as_str(), "abababababababab");
        assert_eq!(id.len(), 16);
    }

    #[test]
    fn reads_as_the_text_it_was_made_from() {
        let id = TraceId::from("4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(&*id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(format!("{id:?}"), "\"4bf92f3577b34da6a3ce929d0e0e4736\"");
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"4bf92f3577b34da6a3ce929d0e0e4736\"")
        );
        assert!(SpanId::default().is_empty());
    }

    #[test]
    fn text_longer_than_an_id_is_refused_or_cut_at_a_character() {
        assert!(SpanId::new("0123456789abcdef").is_some());
        assert!(SpanId::new("0123456789abcdef0").is_none());
        // 15 ASCII bytes, then a two-byte character across the limit.
        let cut = SpanId::from("0123456789abcdeé");
        assert_eq!(cut.as_str(), "0123456789abcde");
    }
}
