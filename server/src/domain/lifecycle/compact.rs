//! How a unit is kept in memory: every queued unit of every batch lives in the world, so its
//! parts take as few bytes as they can (docs/benchmarks.md, "Memory per unit"). The input is its
//! compact JSON text (or raw bytes), inline when short; the replication settings fit in 8
//! bytes; the replicas of a unit nobody has leased yet are a count, not a vector.

use musketeer_protocol::{Base64Bytes, UnitInput};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{MAX_DELAY_BOUND_MS, MAX_REPLICAS, Params, Replica};

/// Longest input kept inside the unit itself (the size of a heap pointer and length, and a
/// length byte, less the tag).
const INLINE_MAX: usize = 22;

/// A unit's input as the server keeps it: a JSON input as its compact JSON text (what the row
/// stores and clients receive, byte for byte), or raw bytes. Short ones need no allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Input(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    JsonInline(Inline),
    RawInline(Inline),
    Json(Box<str>),
    Raw(Box<[u8]>),
}

#[derive(Clone, PartialEq, Eq)]
struct Inline {
    len: u8,
    bytes: [u8; INLINE_MAX],
}

impl Inline {
    fn new(bytes: &[u8]) -> Option<Self> {
        let mut inline = Self {
            len: u8::try_from(bytes.len()).ok()?,
            bytes: [0; INLINE_MAX],
        };
        inline.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(inline)
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Input {
    /// A JSON input from its text, checked to be one JSON value. The text is kept as given, so
    /// it goes out exactly as it came in.
    pub fn json_text(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<&RawValue>(text)?;
        Ok(Self(match Inline::new(text.as_bytes()) {
            Some(inline) => Repr::JsonInline(inline),
            None => Repr::Json(text.into()),
        }))
    }

    /// Raw input bytes, handed to the task unchanged.
    pub fn raw(bytes: &[u8]) -> Self {
        Self(match Inline::new(bytes) {
            Some(inline) => Repr::RawInline(inline),
            None => Repr::Raw(bytes.into()),
        })
    }

    /// The compact JSON text of a JSON input.
    pub fn json_str(&self) -> Option<&str> {
        match &self.0 {
            // Inline JSON was copied from a `str` whole, so it is UTF-8.
            Repr::JsonInline(inline) => std::str::from_utf8(inline.as_slice()).ok(),
            Repr::Json(text) => Some(text),
            Repr::RawInline(_) | Repr::Raw(_) => None,
        }
    }

    /// A JSON input as a value that serializes as its stored text, unchanged.
    pub fn json_raw(&self) -> Option<&RawValue> {
        // Checked to be JSON when it was made, so this only re-reads it.
        serde_json::from_str(self.json_str()?).ok()
    }

    /// A JSON input parsed (object keys in their submitted order).
    pub fn json_value(&self) -> Option<Value> {
        serde_json::from_str(self.json_str()?).ok()
    }

    /// The bytes of a raw input.
    pub fn raw_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::RawInline(inline) => Some(inline.as_slice()),
            Repr::Raw(bytes) => Some(bytes),
            Repr::JsonInline(_) | Repr::Json(_) => None,
        }
    }

    /// Whether only clients that declare the raw-input capability may run it.
    pub fn is_raw(&self) -> bool {
        matches!(self.0, Repr::RawInline(_) | Repr::Raw(_))
    }

    /// The bytes a unit row stores: the JSON text or the raw bytes.
    pub fn stored_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::JsonInline(inline) | Repr::RawInline(inline) => inline.as_slice(),
            Repr::Json(text) => text.as_bytes(),
            Repr::Raw(bytes) => bytes,
        }
    }

    /// The input in its wire form.
    pub fn to_unit_input(&self) -> UnitInput {
        match self.raw_bytes() {
            Some(bytes) => UnitInput::Raw(bytes.to_vec()),
            None => UnitInput::Json(self.json_value().unwrap_or_default()),
        }
    }

    /// How results and unit views show the input, as [`UnitInput::shown`] does.
    pub fn shown(&self) -> (Value, Option<Base64Bytes>) {
        match self.json_value() {
            Some(value) => (value, None),
            None => self.to_unit_input().shown(),
        }
    }
}

impl From<UnitInput> for Input {
    fn from(input: UnitInput) -> Self {
        match input {
            // `Value`'s `Display` is its compact JSON, as `serde_json::to_writer` writes it.
            UnitInput::Json(value) => {
                let text = value.to_string();
                Self(match Inline::new(text.as_bytes()) {
                    Some(inline) => Repr::JsonInline(inline),
                    None => Repr::Json(text.into_boxed_str()),
                })
            }
            UnitInput::Raw(bytes) => Self::raw(&bytes),
        }
    }
}

impl From<Value> for Input {
    fn from(value: Value) -> Self {
        UnitInput::Json(value).into()
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.json_str(), self.raw_bytes()) {
            (Some(text), _) => f.debug_tuple("Json").field(&text).finish(),
            (_, bytes) => f.debug_tuple("Raw").field(&bytes).finish(),
        }
    }
}

/// [`Params`] in 8 bytes: the counts are at most [`MAX_REPLICAS`] and the deadline at most 30
/// days of milliseconds, as [`Params::resolve`] ensures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PackedParams {
    delay_bound_ms: u32,
    min_quorum: u8,
    target_nresults: u8,
    max_error_results: u8,
    max_total_results: u8,
}

impl PackedParams {
    /// `p` with each field limited to what [`Params::resolve`] allows.
    pub(super) fn clamped(p: Params) -> Self {
        // Both limits fit their types: MAX_REPLICAS is 64, 30 days are 2.6e9 ms.
        let count = |n: u32| n.min(MAX_REPLICAS) as u8;
        Self {
            delay_bound_ms: p.delay_bound_ms.min(MAX_DELAY_BOUND_MS) as u32,
            min_quorum: count(p.min_quorum),
            target_nresults: count(p.target_nresults),
            max_error_results: count(p.max_error_results),
            max_total_results: count(p.max_total_results),
        }
    }

    /// `None` when a field is beyond what [`Params::resolve`] allows.
    pub(super) fn pack(p: Params) -> Option<Self> {
        let packed = Self::clamped(p);
        (packed.unpack() == p).then_some(packed)
    }

    pub(super) fn target_nresults(self) -> u8 {
        self.target_nresults
    }

    pub(super) fn unpack(self) -> Params {
        Params {
            min_quorum: self.min_quorum.into(),
            target_nresults: self.target_nresults.into(),
            max_error_results: self.max_error_results.into(),
            max_total_results: self.max_total_results.into(),
            delay_bound_ms: self.delay_bound_ms.into(),
        }
    }
}

/// Unsent replicas as they are before anything happens to them: what a fresh unit's replica
/// list shows without allocating one.
static UNSENT: [Replica; MAX_REPLICAS as usize] =
    [const { Replica::UNSENT }; MAX_REPLICAS as usize];

/// A unit's replicas: a count of pristine unsent ones until one is leased or changed, then a
/// vector.
#[derive(Debug, Clone)]
pub(super) enum Replicas {
    /// That many [`Replica::UNSENT`].
    Unsent(u8),
    /// Each replica.
    Listed(Vec<Replica>),
}

impl Replicas {
    /// `replicas`, as a count when they are all pristine and unsent.
    pub(super) fn new(replicas: Vec<Replica>) -> Self {
        match u8::try_from(replicas.len()) {
            Ok(n)
                if replicas.len() <= UNSENT.len()
                    && replicas.iter().all(|r| *r == Replica::UNSENT) =>
            {
                Self::Unsent(n)
            }
            _ => Self::Listed(replicas),
        }
    }

    pub(super) fn as_slice(&self) -> &[Replica] {
        match self {
            Self::Unsent(n) => &UNSENT[..usize::from(*n).min(UNSENT.len())],
            Self::Listed(replicas) => replicas,
        }
    }

    /// The replicas as a vector, made from the count on first change.
    pub(super) fn to_mut(&mut self) -> &mut Vec<Replica> {
        if let Self::Unsent(_) = self {
            *self = Self::Listed(self.as_slice().to_vec());
        }
        match self {
            Self::Listed(replicas) => replicas,
            // A count was replaced by its list just above.
            Self::Unsent(_) => unreachable!("unsent replicas were listed"),
        }
    }
}

impl PartialEq for Replicas {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use musketeer_protocol::{BatchId, HostId, UnitId};
    use serde_json::json;

    use super::*;
    use crate::domain::lifecycle::Unit;

    /// The sizes docs/benchmarks.md ("Memory per unit") accounts for: a queued unit is one
    /// 96-byte block (112 with the allocator's header), its short input and replicas inside.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_unit_fits_in_96_bytes() {
        assert_eq!(size_of::<Input>(), 24);
        assert_eq!(size_of::<PackedParams>(), 8);
        assert_eq!(size_of::<Replicas>(), 24);
        assert_eq!(size_of::<Unit>(), 96);
    }

    #[test]
    fn a_fresh_units_replicas_are_a_count_until_one_is_leased() {
        let params = Params::resolve(&musketeer_protocol::Replication {
            min_quorum: Some(2),
            ..Default::default()
        })
        .unwrap();
        let mut unit = Unit::new(UnitId(1), BatchId(1), params, json!(1));
        assert!(matches!(unit.replicas, Replicas::Unsent(2)));
        assert_eq!(unit.replicas(), [Replica::UNSENT, Replica::UNSENT]);
        assert_eq!(unit.assign(HostId(5), 10), Some(0));
        assert!(matches!(&unit.replicas, Replicas::Listed(list) if list.len() == 2));
        assert_eq!(unit.replicas()[0].host, Some(HostId(5)));
        assert_eq!(unit.replicas()[1], Replica::UNSENT);
        // Listed pristine replicas compare equal to the count, and are stored as one.
        let listed = Replicas::Listed(vec![Replica::UNSENT; 2]);
        assert_eq!(listed, Replicas::Unsent(2));
        assert!(matches!(
            Replicas::new(vec![Replica::UNSENT; 2]),
            Replicas::Unsent(2)
        ));
    }

    #[test]
    fn inputs_keep_their_text_inline_or_boxed() {
        let short = r#"{"n":[1,2]}"#;
        let long = r#"{"stock_id":"2356","year":2020,"zeta":[1.5,null]}"#;
        for text in [short, long, "\"\"", "12345678901234567890.5"] {
            let input = Input::json_text(text).unwrap();
            assert_eq!(input.json_str(), Some(text));
            assert_eq!(input.stored_bytes(), text.as_bytes());
            assert_eq!(
                serde_json::to_string(&input.json_raw().unwrap()).unwrap(),
                text
            );
            assert!(!input.is_raw() && input.raw_bytes().is_none());
        }
        assert!(matches!(
            Input::json_text(short).unwrap().0,
            Repr::JsonInline(_)
        ));
        assert!(matches!(Input::json_text(long).unwrap().0, Repr::Json(_)));
        // The text of a value is what `serde_json` writes for it, key order kept.
        let value = json!({"z": 1, "a": "é"});
        let input = Input::from(value.clone());
        assert_eq!(input.json_str(), Some(r#"{"z":1,"a":"é"}"#));
        assert_eq!(input.json_value(), Some(value));
        for bad in ["", "{", "1 2", "nul"] {
            assert!(Input::json_text(bad).is_err(), "{bad:?}");
        }
        for bytes in [&b""[..], b"\xff\x00", &[7u8; 40]] {
            let raw = Input::raw(bytes);
            assert_eq!(raw.raw_bytes(), Some(bytes));
            assert!(raw.is_raw() && raw.json_str().is_none());
            assert_eq!(raw.to_unit_input(), UnitInput::Raw(bytes.to_vec()));
        }
    }

    #[test]
    fn settings_pack_only_within_the_limits_resolve_allows() {
        let p = Params::resolve(&Default::default()).unwrap();
        assert_eq!(PackedParams::pack(p).map(PackedParams::unpack), Some(p));
        let widest = Params {
            min_quorum: MAX_REPLICAS,
            target_nresults: MAX_REPLICAS,
            max_error_results: MAX_REPLICAS,
            max_total_results: MAX_REPLICAS,
            delay_bound_ms: MAX_DELAY_BOUND_MS,
        };
        assert_eq!(
            PackedParams::pack(widest).map(PackedParams::unpack),
            Some(widest)
        );
        for beyond in [
            Params {
                min_quorum: 65,
                ..p
            },
            Params {
                max_total_results: 256,
                ..p
            },
            Params {
                delay_bound_ms: MAX_DELAY_BOUND_MS + 1,
                ..p
            },
        ] {
            assert_eq!(PackedParams::pack(beyond), None, "{beyond:?}");
            let clamped = PackedParams::clamped(beyond).unpack();
            assert!(
                clamped.min_quorum <= MAX_REPLICAS && clamped.max_total_results <= MAX_REPLICAS
            );
            assert!(clamped.delay_bound_ms <= MAX_DELAY_BOUND_MS);
        }
    }
}
