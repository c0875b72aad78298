//! A reader over protobuf wire bytes, for decoding OTLP without building
//! prost's owned message types first (`spans`).
//!
//! It accepts exactly what prost 0.14 accepts, so the direct path and prost
//! agree on which bodies are malformed: varints of at most ten bytes (the
//! tenth 0 or 1), keys within `u32` with a non-zero tag and a wire type of
//! 0–5, lengths within the buffer, unknown fields skipped (groups included,
//! with matching end tags), a wrong wire type for a known field refused, and
//! prost's recursion limit of 100 nested messages (unknown fields and groups
//! count as prost counts them). Decoding a message nested in another is
//! bounded by its length, so a field can never run past its message.

use thiserror::Error;

/// prost's recursion limit: how many messages deep a decode may go.
pub const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not a valid message (boxed: errors are rare, and a small
/// `Result` keeps the hot loops' moves small).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(transparent)]
pub struct WireError(Box<WireErrorKind>);

impl WireError {
    pub fn kind(&self) -> &WireErrorKind {
        &self.0
    }
}

impl From<WireErrorKind> for WireError {
    #[cold]
    fn from(kind: WireErrorKind) -> WireError {
        WireError(Box::new(kind))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireErrorKind {
    #[error("invalid varint")]
    Varint,
    #[error("invalid key value: {0}")]
    Key(u64),
    #[error("invalid wire type value: {0}")]
    WireTypeValue(u64),
    #[error("invalid tag value: 0")]
    ZeroTag,
    #[error("{field}: invalid wire type: {actual:?} (expected {expected:?})")]
    WrongWireType {
        field: &'static str,
        actual: WireType,
        expected: WireType,
    },
    #[error("buffer underflow")]
    Underflow,
    #[error("{0}: invalid string value: data is not UTF-8 encoded")]
    Utf8(&'static str),
    #[error("recursion limit reached")]
    RecursionLimit,
    #[error("unexpected end group tag")]
    EndGroup,
}

/// How a field's value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    SixtyFourBit,
    LengthDelimited,
    StartGroup,
    EndGroup,
    ThirtyTwoBit,
}

/// A field's value, read according to its wire type (a group is skipped).
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
    Group,
}

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub tag: u32,
    pub value: Value<'a>,
    /// prost's recursion budget where this field sits.
    depth: u32,
}

/// The fields of one message, in the order sent.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    depth: u32,
}

impl<'a> Reader<'a> {
    /// A top-level message.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            depth: RECURSION_LIMIT,
        }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// The next field, or `None` at the end of the message.
    #[inline(always)]
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (tag, wire_type) = key(&mut self.buf)?;
        // Branches rather than a jump table: the wire type follows the tag,
        // which the branch predictor learns better than an indirect jump.
        let value = if wire_type == WireType::LengthDelimited {
            Value::Len(len_delimited(&mut self.buf)?)
        } else if wire_type == WireType::Varint {
            Value::Varint(varint(&mut self.buf)?)
        } else if wire_type == WireType::SixtyFourBit {
            Value::Fixed64(u64::from_le_bytes(take(&mut self.buf)?))
        } else if wire_type == WireType::ThirtyTwoBit {
            Value::Fixed32(u32::from_le_bytes(take(&mut self.buf)?))
        } else if wire_type == WireType::StartGroup {
            // No OTLP field is a group: this one is unknown (a known tag
            // with this wire type fails in the accessor), skipped as
            // prost's `skip_field` does, limit checks included.
            if self.depth == 0 {
                return Err(WireError::from(WireErrorKind::RecursionLimit));
            }
            skip_group(&mut self.buf, tag, self.depth - 1)?;
            Value::Group
        } else {
            return Err(WireError::from(WireErrorKind::EndGroup));
        };
        Ok(Some(Field {
            tag,
            value,
            depth: self.depth,
        }))
    }
}

impl<'a> Field<'a> {
    fn wire_type(&self) -> WireType {
        match self.value {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64(_) => WireType::SixtyFourBit,
            Value::Fixed32(_) => WireType::ThirtyTwoBit,
            Value::Len(_) => WireType::LengthDelimited,
            Value::Group => WireType::StartGroup,
        }
    }

    #[cold]
    fn wrong(&self, field: &'static str, expected: WireType) -> WireError {
        WireErrorKind::WrongWireType {
            field,
            actual: self.wire_type(),
            expected,
        }
        .into()
    }

    /// An int32, int64, uint32, uint64, bool or enum field, as sent (the
    /// caller narrows it as prost does, with `as`).
    #[inline]
    pub fn varint(&self, field: &'static str) -> Result<u64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong(field, WireType::Varint)),
        }
    }

    /// A fixed64 or double field.
    #[inline]
    pub fn fixed64(&self, field: &'static str) -> Result<u64, WireError> {
        match self.value {
            Value::Fixed64(v) => Ok(v),
            _ => Err(self.wrong(field, WireType::SixtyFourBit)),
        }
    }

    /// A fixed32 field.
    #[inline]
    pub fn fixed32(&self, field: &'static str) -> Result<u32, WireError> {
        match self.value {
            Value::Fixed32(v) => Ok(v),
            _ => Err(self.wrong(field, WireType::ThirtyTwoBit)),
        }
    }

    /// A bytes field.
    #[inline]
    pub fn bytes(&self, field: &'static str) -> Result<&'a [u8], WireError> {
        match self.value {
            Value::Len(b) => Ok(b),
            _ => Err(self.wrong(field, WireType::LengthDelimited)),
        }
    }

    /// A string field: bytes that must be UTF-8.
    #[inline]
    pub fn str(&self, field: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| WireErrorKind::Utf8(field).into())
    }

    /// A message field: its own fields, one level deeper.
    #[inline]
    pub fn message(&self, field: &'static str) -> Result<Reader<'a>, WireError> {
        let buf = self.bytes(field)?;
        if self.depth == 0 {
            return Err(WireError::from(WireErrorKind::RecursionLimit));
        }
        Ok(Reader {
            buf,
            depth: self.depth - 1,
        })
    }

    /// A field the message does not know: skipped, which prost refuses at
    /// the recursion limit.
    #[inline]
    pub fn unknown(&self) -> Result<(), WireError> {
        if self.depth == 0 {
            return Err(WireError::from(WireErrorKind::RecursionLimit));
        }
        Ok(())
    }
}

/// Iterates fields until the end of the message or the first error.
impl<'a> Iterator for Reader<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        match self.next_field() {
            Ok(f) => f.map(Ok),
            Err(e) => {
                self.buf = &[];
                Some(Err(e))
            }
        }
    }
}

#[inline(always)]
fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    // Keys, lengths and most values fit in one byte.
    if let Some((&b, rest)) = buf.split_first() {
        if b < 0x80 {
            *buf = rest;
            return Ok(u64::from(b));
        }
    }
    varint_slow(buf)
}

#[inline(never)]
fn varint_slow(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(10).enumerate() {
        if i == 9 {
            // The tenth byte holds bit 63 and nothing else.
            if b > 1 {
                return Err(WireError::from(WireErrorKind::Varint));
            }
            *buf = &buf[10..];
            return Ok(value | (u64::from(b) << 63));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(WireError::from(WireErrorKind::Varint))
}

#[inline(always)]
fn key(buf: &mut &[u8]) -> Result<(u32, WireType), WireError> {
    let key = varint(buf)?;
    if key > u64::from(u32::MAX) {
        return Err(WireErrorKind::Key(key).into());
    }
    let wire_type = match key & 7 {
        0 => WireType::Varint,
        1 => WireType::SixtyFourBit,
        2 => WireType::LengthDelimited,
        3 => WireType::StartGroup,
        4 => WireType::EndGroup,
        5 => WireType::ThirtyTwoBit,
        other => return Err(WireErrorKind::WireTypeValue(other).into()),
    };
    let tag = (key as u32) >> 3;
    if tag == 0 {
        return Err(WireError::from(WireErrorKind::ZeroTag));
    }
    Ok((tag, wire_type))
}

#[inline(always)]
fn take<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], WireError> {
    let (head, rest) = buf
        .split_first_chunk::<N>()
        .ok_or_else(|| WireError::from(WireErrorKind::Underflow))?;
    *buf = rest;
    Ok(*head)
}

#[inline(always)]
fn len_delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = varint(buf)?;
    if len > buf.len() as u64 {
        return Err(WireError::from(WireErrorKind::Underflow));
    }
    let (head, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(head)
}

/// Skips a group's fields up to its end tag. `depth` is the budget of the
/// fields inside, each of which prost checks before skipping it.
fn skip_group(buf: &mut &[u8], tag: u32, depth: u32) -> Result<(), WireError> {
    loop {
        let (inner, wire_type) = key(buf)?;
        match wire_type {
            WireType::EndGroup if inner == tag => return Ok(()),
            WireType::EndGroup => return Err(WireError::from(WireErrorKind::EndGroup)),
            _ if depth == 0 => return Err(WireError::from(WireErrorKind::RecursionLimit)),
            WireType::Varint => {
                varint(buf)?;
            }
            WireType::SixtyFourBit => {
                take::<8>(buf)?;
            }
            WireType::ThirtyTwoBit => {
                take::<4>(buf)?;
            }
            WireType::LengthDelimited => {
                len_delimited(buf)?;
            }
            WireType::StartGroup => skip_group(buf, inner, depth - 1)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_varint(bytes: &[u8]) -> Result<u64, WireError> {
        let mut b = bytes;
        varint(&mut b)
    }

    #[test]
    fn varints_as_prost_reads_them() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut enc = Vec::new();
            prost::encoding::encode_varint(v, &mut enc);
            assert_eq!(read_varint(&enc), Ok(v));
        }
        // Overlong but within ten bytes: accepted, as prost does.
        assert_eq!(read_varint(&[0x80, 0x80, 0x00]), Ok(0));
        // Ten bytes whose last is above 1, eleven bytes, a cut varint.
        assert!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err()
        );
        assert!(read_varint(&[0x80; 11]).is_err());
        assert!(read_varint(&[0x80, 0x80]).is_err());
        assert!(read_varint(&[]).is_err());
    }

    #[test]
    fn keys_and_groups() {
        // Tag 0, wire types 6 and 7, a key beyond u32.
        assert!(Reader::new(&[0x00]).next_field().is_err());
        assert!(Reader::new(&[0x0e]).next_field().is_err());
        assert!(Reader::new(&[0x0f]).next_field().is_err());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10])
            .next_field()
            .is_err());
        // A group of tag 1 holding a varint, then its end tag.
        let mut r = Reader::new(&[0x0b, 0x10, 0x05, 0x0c]);
        assert!(matches!(
            r.next_field(),
            Ok(Some(Field {
                tag: 1,
                value: Value::Group,
                ..
            }))
        ));
        assert!(matches!(r.next_field(), Ok(None)));
        // Mismatched or missing end tags.
        assert!(Reader::new(&[0x0b, 0x14]).next_field().is_err());
        assert!(Reader::new(&[0x0b, 0x10, 0x05]).next_field().is_err());
        assert!(Reader::new(&[0x0c]).next_field().is_err());
    }
}
