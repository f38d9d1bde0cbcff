//! [`LazyFields`]: a field map built on first access.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use super::Fields;

/// A field map of an event, built when first read.
///
/// The direct decoder validates a map completely (every check and error of building it)
/// but keeps only the Avro bytes of it (a share of the message's value when the codec
/// decoded a shared value, [`crate::EventCodec::decode_shared`], else one allocation);
/// the [`Fields`] are built from them
/// the first time the map is read through [`Deref`] (or changed through [`DerefMut`],
/// which drops the bytes). A worker whose handlers never read an event's fields never pays
/// for them. Everywhere else it is the map: built from one with [`From`], compared,
/// printed and (de)serialized by content, exactly as [`Fields`] is.
#[derive(Clone, Default)]
pub struct LazyFields {
    /// The Avro encoding of the map (its blocks up to the 0 that ends them), already
    /// validated by the decoder; `None` once changed, or when built from a map.
    raw: Option<RawMap>,
    built: OnceLock<Fields>,
}

/// A map's Avro bytes: `bytes[start..end]` (the whole message value, shared, or a copy of
/// the map's bytes alone).
#[derive(Clone)]
struct RawMap {
    bytes: Arc<[u8]>,
    start: usize,
    end: usize,
}

impl RawMap {
    fn get(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }
}

impl LazyFields {
    /// A map to build from `raw`, the Avro encoding of a field map that the direct decoder
    /// has validated (`binary_decode`'s `check_fields` said it has a JSON form).
    pub(crate) fn from_checked_avro(raw: &[u8]) -> LazyFields {
        if *raw == [0] {
            // The empty map: nothing to build later.
            return LazyFields::default();
        }
        LazyFields { raw: Some(RawMap { bytes: raw.into(), start: 0, end: raw.len() }), built: OnceLock::new() }
    }

    /// [`LazyFields::from_checked_avro`] of `raw`, a part of `whole`, which it shares
    /// instead of copying `raw`.
    pub(crate) fn from_checked_shared(whole: &Arc<[u8]>, raw: &[u8]) -> LazyFields {
        let start = (raw.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        let end = start.wrapping_add(raw.len());
        if *raw == [0] || whole.get(start..end).is_none() {
            // The empty map, or (never from the decoder) bytes not of `whole`: a copy.
            return LazyFields::from_checked_avro(raw);
        }
        LazyFields { raw: Some(RawMap { bytes: whole.clone(), start, end }), built: OnceLock::new() }
    }

    /// Whether the map has been built (from the start, or by a read since decoding).
    pub fn is_built(&self) -> bool {
        self.raw.is_none() || self.built.get().is_some()
    }

    /// The map, built now if it was not yet (what [`Deref`] gives; not named `get`, which
    /// is the map's own).
    fn map(&self) -> &Fields {
        self.built.get_or_init(|| match &self.raw {
            Some(raw) => crate::binary_decode::build_checked_fields(raw.get()),
            None => Fields::new(),
        })
    }

    /// The map itself, built now if it was not yet.
    pub fn into_fields(self) -> Fields {
        match (self.built.into_inner(), self.raw) {
            (Some(built), _) => built,
            (None, Some(raw)) => crate::binary_decode::build_checked_fields(raw.get()),
            (None, None) => Fields::new(),
        }
    }
}

impl Deref for LazyFields {
    type Target = Fields;

    fn deref(&self) -> &Fields {
        self.map()
    }
}

impl DerefMut for LazyFields {
    fn deref_mut(&mut self) -> &mut Fields {
        self.map();
        // The bytes no longer describe the map once it may change.
        self.raw = None;
        self.built.get_mut().expect("built just above")
    }
}

impl From<Fields> for LazyFields {
    fn from(fields: Fields) -> LazyFields {
        LazyFields { raw: None, built: OnceLock::from(fields) }
    }
}

impl From<LazyFields> for Fields {
    fn from(fields: LazyFields) -> Fields {
        fields.into_fields()
    }
}

impl FromIterator<(String, Json)> for LazyFields {
    fn from_iter<I: IntoIterator<Item = (String, Json)>>(iter: I) -> LazyFields {
        Fields::from_iter(iter).into()
    }
}

impl<'a> IntoIterator for &'a LazyFields {
    type Item = (&'a String, &'a Json);
    type IntoIter = serde_json::map::Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.map().iter()
    }
}

impl<'a> IntoIterator for &'a mut LazyFields {
    type Item = (&'a String, &'a mut Json);
    type IntoIter = serde_json::map::IterMut<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.deref_mut().iter_mut()
    }
}

impl IntoIterator for LazyFields {
    type Item = (String, Json);
    type IntoIter = serde_json::map::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        self.into_fields().into_iter()
    }
}

impl fmt::Debug for LazyFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.map(), f)
    }
}

impl PartialEq for LazyFields {
    fn eq(&self, other: &LazyFields) -> bool {
        // The same bytes are the same map (different bytes may still be: compare maps).
        if let (Some(a), Some(b)) = (&self.raw, &other.raw) {
            if a.get() == b.get() {
                return true;
            }
        }
        self.map() == other.map()
    }
}

impl Eq for LazyFields {}

impl PartialEq<Fields> for LazyFields {
    fn eq(&self, other: &Fields) -> bool {
        self.map() == other
    }
}

impl PartialEq<LazyFields> for Fields {
    fn eq(&self, other: &LazyFields) -> bool {
        self == other.map()
    }
}

impl Serialize for LazyFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LazyFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LazyFields, D::Error> {
        Fields::deserialize(deserializer).map(LazyFields::from)
    }
}
