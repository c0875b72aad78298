//! One way to look at an attribute value, whichever decoder produced it.
//!
//! Spans reach conversion two ways: as prost's owned `AnyValue`s (JSON
//! bodies, gRPC, logs and metrics) and as borrowed views into the protobuf
//! bytes of an OTLP/HTTP trace export (`spans`). The enrichment rules
//! (`enrich`) and the JSON writer (`jsonw`) are written once against
//! [`AnyView`], so both paths apply the very same rules.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

/// What an attribute value is, borrowed. `Empty` covers an absent value and
/// the profiles-only `string_value_strindex`, which qyl treats alike.
pub enum ValueRef<'a, A, K> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// The elements, in order.
    Array(A),
    /// The key/value pairs, in order.
    Kvlist(K),
}

/// An attribute value that can be looked at once (take a copy to look
/// again: views are cheap to clone).
pub trait AnyView<'a>: Sized {
    type Array: Iterator<Item = Self>;
    type Kvlist: Iterator<Item = (&'a str, Self)>;
    fn view(self) -> ValueRef<'a, Self::Array, Self::Kvlist>;
}

/// prost's value of a key/value pair (`None` when the pair has no value).
pub type ProstValue<'a> = Option<&'a AnyValue>;

fn element(v: &AnyValue) -> ProstValue<'_> {
    Some(v)
}

/// A prost key/value pair as the views see it.
pub fn pair(kv: &KeyValue) -> (&str, ProstValue<'_>) {
    (&kv.key, kv.value.as_ref())
}

type ProstElements<'a> =
    std::iter::Map<std::slice::Iter<'a, AnyValue>, fn(&'a AnyValue) -> ProstValue<'a>>;
type ProstPairs<'a> =
    std::iter::Map<std::slice::Iter<'a, KeyValue>, fn(&'a KeyValue) -> (&'a str, ProstValue<'a>)>;

impl<'a> AnyView<'a> for ProstValue<'a> {
    type Array = ProstElements<'a>;
    type Kvlist = ProstPairs<'a>;

    fn view(self) -> ValueRef<'a, ProstElements<'a>, ProstPairs<'a>> {
        match self.and_then(|v| v.value.as_ref()) {
            None | Some(Value::StringValueStrindex(_)) => ValueRef::Empty,
            Some(Value::StringValue(s)) => ValueRef::Str(s),
            Some(Value::BoolValue(b)) => ValueRef::Bool(*b),
            Some(Value::IntValue(i)) => ValueRef::Int(*i),
            Some(Value::DoubleValue(d)) => ValueRef::Double(*d),
            Some(Value::BytesValue(b)) => ValueRef::Bytes(b),
            Some(Value::ArrayValue(a)) => {
                ValueRef::Array(a.values.iter().map(element as fn(_) -> _))
            }
            Some(Value::KvlistValue(kv)) => {
                ValueRef::Kvlist(kv.values.iter().map(pair as fn(_) -> _))
            }
        }
    }
}
