//! Attribute key/value pairs read straight from protobuf bytes, as views the
//! shared rules (`enrich`, `jsonw`) take.
//!
//! A value borrows its string or bytes from the request body. Arrays and
//! key/value lists stay bytes until someone walks them: they are checked
//! once, when the pair is first read, and read again (unchecked) only by the
//! JSON writer or a rule that looks inside them, which real traffic rarely
//! sends.

use std::iter;

use crate::ingest::view::{AnyView, ValueRef};
use crate::ingest::wire::{Reader, WireError};

/// A message's bytes in one or more pieces. A non-repeated message field
/// sent more than once is merged, which protobuf defines as reading the
/// pieces' concatenation, so the pieces are read in turn (`rest` stays
/// empty, and unallocated, in all but odd or hostile requests).
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    first: Reader<'a>,
    rest: Vec<Reader<'a>>,
}

impl<'a> Pieces<'a> {
    fn one(first: Reader<'a>) -> Pieces<'a> {
        Pieces {
            first,
            rest: Vec::new(),
        }
    }

    fn readers(&self) -> impl Iterator<Item = Reader<'a>> + '_ {
        iter::once(self.first).chain(self.rest.iter().copied())
    }
}

/// An `AnyValue` as sent, borrowed from the body.
#[derive(Debug, Clone)]
pub enum WireAny<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Pieces<'a>),
    Kvlist(Pieces<'a>),
}

/// Reads an `AnyValue` as prost would decode it: the last member of the
/// oneof wins, and an array or list sent again right after itself is merged
/// into it (any other member in between starts it afresh). `check` also
/// checks nested arrays and lists, which their first read must do.
fn any<'a>(pieces: &Pieces<'a>, check: bool) -> Result<WireAny<'a>, WireError> {
    let mut v = WireAny::Empty;
    for r in pieces.readers() {
        for f in r {
            let f = f?;
            match f.tag {
                1 => v = WireAny::Str(f.str("AnyValue.string_value")?),
                2 => v = WireAny::Bool(f.varint("AnyValue.bool_value")? != 0),
                3 => v = WireAny::Int(f.varint("AnyValue.int_value")? as i64),
                4 => v = WireAny::Double(f64::from_bits(f.fixed64("AnyValue.double_value")?)),
                5 => {
                    let m = f.message("AnyValue.array_value")?;
                    if check {
                        check_array(m)?;
                    }
                    match &mut v {
                        WireAny::Array(p) => p.rest.push(m),
                        _ => v = WireAny::Array(Pieces::one(m)),
                    }
                }
                6 => {
                    let m = f.message("AnyValue.kvlist_value")?;
                    if check {
                        check_kvlist(m)?;
                    }
                    match &mut v {
                        WireAny::Kvlist(p) => p.rest.push(m),
                        _ => v = WireAny::Kvlist(Pieces::one(m)),
                    }
                }
                7 => v = WireAny::Bytes(f.bytes("AnyValue.bytes_value")?),
                8 => {
                    f.varint("AnyValue.string_value_strindex")?;
                    v = WireAny::Empty;
                }
                _ => f.unknown()?,
            }
        }
    }
    Ok(v)
}

fn check_array(r: Reader<'_>) -> Result<(), WireError> {
    for f in r {
        let f = f?;
        match f.tag {
            1 => {
                any(&Pieces::one(f.message("ArrayValue.values")?), true)?;
            }
            _ => f.unknown()?,
        }
    }
    Ok(())
}

fn check_kvlist(r: Reader<'_>) -> Result<(), WireError> {
    for f in r {
        let f = f?;
        match f.tag {
            1 => {
                pair_of(f.message("KeyValueList.values")?, true)?;
            }
            _ => f.unknown()?,
        }
    }
    Ok(())
}

/// A `KeyValue`, checked through and through: the key (the last one sent)
/// and its value (every piece sent, merged).
pub fn pair(r: Reader<'_>) -> Result<(&str, WireAny<'_>), WireError> {
    pair_of(r, true)
}

fn pair_of(r: Reader<'_>, check: bool) -> Result<(&str, WireAny<'_>), WireError> {
    if let Some(pair) = plain_pair(r) {
        return Ok(pair);
    }
    let mut key = "";
    let mut value: Option<Pieces<'_>> = None;
    for f in r {
        let f = f?;
        match f.tag {
            1 => key = f.str("KeyValue.key")?,
            2 => {
                let m = f.message("KeyValue.value")?;
                match &mut value {
                    Some(p) => p.rest.push(m),
                    None => value = Some(Pieces::one(m)),
                }
            }
            3 => {
                f.varint("KeyValue.key_strindex")?;
            }
            _ => f.unknown()?,
        }
    }
    let value = match value {
        Some(p) => any(&p, check)?,
        None => WireAny::Empty,
    };
    Ok((key, value))
}

/// What SDKs send: the key, then a value of one scalar member, nothing else.
/// Read without the general machinery (most of a span's bytes are such
/// pairs); anything else, errors included, is left to the general reading,
/// which gives the same result for these.
#[inline]
fn plain_pair<'a>(mut r: Reader<'a>) -> Option<(&'a str, WireAny<'a>)> {
    let kv = r.remaining();
    let key = match r.next_field() {
        Ok(Some(f)) if f.tag == 1 => f.bytes("KeyValue.key").ok()?,
        _ => return None,
    };
    let mut any = match r.next_field() {
        Ok(Some(f)) if f.tag == 2 => f.message("KeyValue.value").ok()?,
        _ => return None,
    };
    if !matches!(r.next_field(), Ok(None)) {
        return None;
    }
    let value = any.next_field().ok()?;
    if !matches!(any.next_field(), Ok(None)) {
        return None;
    }
    // One UTF-8 check for the whole pair rather than one per string: when
    // the pair is valid UTF-8 and a string's ends are char boundaries of
    // it, the string is valid UTF-8 too. Otherwise each string is checked.
    let whole = std::str::from_utf8(kv).ok();
    let text = |b: &'a [u8]| -> Option<&'a str> {
        let at = (b.as_ptr() as usize).wrapping_sub(kv.as_ptr() as usize);
        let within = at.checked_add(b.len()).map(|end| at..end);
        match whole.zip(within).and_then(|(w, r)| w.get(r)) {
            Some(s) => Some(s),
            None => std::str::from_utf8(b).ok(),
        }
    };
    let key = text(key)?;
    let value = match value {
        None => WireAny::Empty,
        Some(f) => match f.tag {
            1 => WireAny::Str(text(f.bytes("AnyValue.string_value").ok()?)?),
            2 => WireAny::Bool(f.varint("AnyValue.bool_value").ok()? != 0),
            3 => WireAny::Int(f.varint("AnyValue.int_value").ok()? as i64),
            4 => WireAny::Double(f64::from_bits(f.fixed64("AnyValue.double_value").ok()?)),
            7 => WireAny::Bytes(f.bytes("AnyValue.bytes_value").ok()?),
            _ => return None,
        },
    };
    Some((key, value))
}

/// The repeated message field 1 of `pieces` (an array's values or a list's
/// pairs), read one at a time. The bytes were checked when the value was
/// first read; should they fail now all the same, the walk just ends.
struct Items<'a> {
    pieces: Pieces<'a>,
    current: Reader<'a>,
    next_piece: usize,
}

impl<'a> Items<'a> {
    fn new(pieces: Pieces<'a>) -> Items<'a> {
        Items {
            current: pieces.first,
            pieces,
            next_piece: 0,
        }
    }

    fn next_item(&mut self) -> Option<Reader<'a>> {
        loop {
            match self.current.next_field() {
                Ok(Some(f)) if f.tag == 1 => return f.message("values").ok(),
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.current = *self.pieces.rest.get(self.next_piece)?;
                    self.next_piece += 1;
                }
                Err(_) => return None,
            }
        }
    }
}

/// An array's values.
pub struct Elements<'a>(Items<'a>);

impl<'a> Iterator for Elements<'a> {
    type Item = WireAny<'a>;

    fn next(&mut self) -> Option<WireAny<'a>> {
        any(&Pieces::one(self.0.next_item()?), false).ok()
    }
}

/// A key/value list's pairs.
pub struct Pairs<'a>(Items<'a>);

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, WireAny<'a>);

    fn next(&mut self) -> Option<(&'a str, WireAny<'a>)> {
        pair_of(self.0.next_item()?, false).ok()
    }
}

impl<'a> AnyView<'a> for WireAny<'a> {
    type Array = Elements<'a>;
    type Kvlist = Pairs<'a>;

    fn view(self) -> ValueRef<'a, Elements<'a>, Pairs<'a>> {
        match self {
            WireAny::Empty => ValueRef::Empty,
            WireAny::Str(s) => ValueRef::Str(s),
            WireAny::Bool(b) => ValueRef::Bool(b),
            WireAny::Int(i) => ValueRef::Int(i),
            WireAny::Double(d) => ValueRef::Double(d),
            WireAny::Bytes(b) => ValueRef::Bytes(b),
            WireAny::Array(p) => ValueRef::Array(Elements(Items::new(p))),
            WireAny::Kvlist(p) => ValueRef::Kvlist(Pairs(Items::new(p))),
        }
    }
}
