//! Direct Avro binary decoding of events whose writer schema is one of the catalog's: the
//! hot path of every worker.
//!
//! apache-avro decodes into a `Value` tree (a `String` per record field name, a `HashMap`
//! per map, a `Box` per union), which the codec then converted to the Rust types: measured
//! with `cargo bench -p ltf-schemas --bench codec`, 7 µs for a realistic RecordUpdated and
//! 16 µs with the v1 → v2 resolution. This module reads the same bytes straight into the
//! Rust types, following the `.avsc` field order the way [`crate::binary`] writes them.
//!
//! It applies only when the writer schema's Parsing Canonical Form equals a catalog
//! schema's (the form fixes the binary layout: [`layout_of`]); any other writer schema
//! goes through apache-avro and its schema resolution. Resolving a catalog version to the
//! newest reader is exact here because the versions differ only by fields added with a
//! null default (RecordCreated v2's `createdBy`), which a v1 body lacks and the reader
//! fills with `None`; the tests check every result against apache-avro's, on the
//! catalog's samples, on generated events and on the fuzz corpora.
//!
//! Every count and length is checked against the bytes left before anything is
//! allocated, so hostile input is refused as `bad_avro` as on the apache-avro path.
//!
//! Field maps are validated, not built: [`In::check_fields`] walks a map with every check
//! of [`In::fields`] (the same errors, the same "no JSON form" cases, a repeated key
//! keeping its last value; nested JSON text is parsed by serde_json without building it,
//! [`crate::json_check`]) and the event keeps the map's bytes ([`LazyFields`]), which
//! [`build_checked_fields`] reads with [`In::fields`] the first time a handler reads the
//! map. The apache-avro path builds its maps at once.

use std::sync::Arc;

use apache_avro::Schema;
use serde_json::{Map, Number, Value as Json};
use uuid::Uuid;

use crate::catalog::{EventType, SchemaDef, SCHEMAS};
use crate::event::{
    millis_to_time, ActionExecuted, ActionResult, AutomationTriggered, ConnectionEstablished, DomainEvent, Envelope,
    EventPayload, FormSubmitted, RecordCreated, RecordDeleted, RecordUpdated,
};
use crate::fields::{Fields, LazyFields};
use crate::json_check;
use crate::SchemaError;

/// The catalog schema whose binary layout `writer` has, if any: the same Parsing
/// Canonical Form, and `eventId` a `uuid` string (apache-avro reads a uuid's bytes in a
/// way of its own, which [`In::uuid`] follows).
pub(crate) fn layout_of(writer: &Schema) -> Option<&'static SchemaDef> {
    // A catalog schema itself (what the codec's cache and the fuzz targets hand over).
    if let Some(def) = SCHEMAS.iter().find(|def| std::ptr::eq(def.schema(), writer)) {
        return Some(def);
    }
    let Schema::Record(record) = writer else { return None };
    let event_id = record.fields.iter().find(|f| f.name == "eventId")?;
    if !matches!(event_id.schema, Schema::Uuid) {
        return None;
    }
    let form = writer.canonical_form();
    SCHEMAS.iter().find(|def| def.canonical_form() == form)
}

/// Reads Avro primitives from a body; every error is `bad_avro` of schema id `id`.
struct In<'a> {
    id: u32,
    buf: &'a [u8],
    /// The whole message value `buf` is a part of, when it is shared: field maps keep a
    /// share of it rather than a copy of their bytes.
    shared: Option<&'a Arc<[u8]>>,
}

impl<'a> In<'a> {
    #[cold]
    fn bad(&self, reason: impl Into<String>) -> SchemaError {
        SchemaError::BadAvro { id: self.id, reason: reason.into() }
    }

    #[inline]
    fn long(&mut self) -> Result<i64, SchemaError> {
        // One byte (-64..=63: lengths, branches, counts): most varints of a body.
        if let [b @ 0..0x80, rest @ ..] = self.buf {
            self.buf = rest;
            return Ok(i64::from(b >> 1) ^ -i64::from(b & 1));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<i64, SchemaError> {
        let mut z: u64 = 0;
        for (i, b) in self.buf.iter().take(10).enumerate() {
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // As apache-avro: bits past the 64th of a tenth byte are dropped.
                self.buf = &self.buf[i + 1..];
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(self.bad(if self.buf.len() < 10 { "truncated varint" } else { "varint longer than 64 bits" }))
    }

    /// A `uuid` string as apache-avro reads it: 16 bytes are the UUID's own bytes, other
    /// lengths its text.
    fn uuid(&mut self) -> Result<Uuid, SchemaError> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        if n == 16 {
            return Uuid::from_slice(bytes).map_err(|e| self.bad(format!("eventId: {e}")));
        }
        // What `parse_str` does, without `from_utf8` first: a UUID's text is ASCII. The
        // errors (invalid UTF-8 first) come from the path below.
        if let Ok(uuid) = Uuid::try_parse_ascii(bytes) {
            return Ok(uuid);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| self.bad(format!("invalid UTF-8: {e}")))?;
        Uuid::parse_str(text).map_err(|e| self.bad(format!("eventId: {e}")))
    }

    fn int(&mut self) -> Result<i32, SchemaError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.bad(format!("int out of range: {v}")))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], SchemaError> {
        if n > self.buf.len() {
            return Err(self.bad(format!("length {n} beyond the {} bytes left", self.buf.len())));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A length or count: not negative and at most the bytes left divided by `min_item`
    /// (the fewest bytes one item takes).
    #[inline]
    fn len(&mut self, min_item: usize) -> Result<usize, SchemaError> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| self.bad(format!("negative length {n}")))?;
        self.fits(n, min_item)
    }

    /// `n`, when `n` items of at least `min_item` bytes each fit in the bytes left.
    #[inline]
    fn fits(&self, n: usize, min_item: usize) -> Result<usize, SchemaError> {
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(self.bad(format!("{n} items cannot fit in the {} bytes left", self.buf.len())));
        }
        Ok(n)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, SchemaError> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|e| self.bad(format!("invalid UTF-8: {e}")))
    }

    /// A string's bytes, checked as [`In::str`] checks them, for a string whose text is
    /// not needed: ASCII (most strings) is checked inline, without `from_utf8`'s call.
    #[inline]
    fn str_bytes(&mut self) -> Result<&'a [u8], SchemaError> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        if !bytes.is_ascii() {
            std::str::from_utf8(bytes).map_err(|e| self.bad(format!("invalid UTF-8: {e}")))?;
        }
        Ok(bytes)
    }

    fn string(&mut self) -> Result<String, SchemaError> {
        self.str().map(str::to_owned)
    }

    /// The branch of a union with `branches` branches.
    #[inline]
    fn branch(&mut self, branches: i64) -> Result<i64, SchemaError> {
        let b = self.long()?;
        if !(0..branches).contains(&b) {
            return Err(self.bad(format!("union branch {b} of {branches}")));
        }
        Ok(b)
    }

    fn opt_string(&mut self) -> Result<Option<String>, SchemaError> {
        Ok(match self.branch(2)? {
            0 => None,
            _ => Some(self.string()?),
        })
    }

    #[inline]
    fn double(&mut self) -> Result<f64, SchemaError> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    #[inline]
    fn boolean(&mut self) -> Result<bool, SchemaError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.bad(format!("boolean byte {b}"))),
        }
    }

    /// The count of the next block of a map or array (0 ends it); a negative count is
    /// followed by the block's size in bytes, which is skipped.
    #[inline]
    fn block(&mut self, min_item: usize) -> Result<usize, SchemaError> {
        let n = self.long()?;
        if n < 0 {
            let _size = self.long()?;
            let n = n.checked_neg().ok_or_else(|| self.bad("block count out of range"))?;
            let n = usize::try_from(n).map_err(|_| self.bad("block count out of range"))?;
            return self.fits(n, min_item);
        }
        self.fits(n as usize, min_item)
    }

    /// A map of field values, validated as [`In::fields`] builds it (the same checks, the
    /// same errors, `None` in the same cases) without building it: its bytes, to build on
    /// first read ([`LazyFields`]).
    fn lazy_fields(&mut self) -> Result<Option<LazyFields>, SchemaError> {
        let start = self.buf;
        if !self.check_fields()? {
            return Ok(None);
        }
        let raw = &start[..start.len() - self.buf.len()];
        Ok(Some(match self.shared {
            Some(whole) => LazyFields::from_checked_shared(whole, raw),
            None => LazyFields::from_checked_avro(raw),
        }))
    }

    /// Walks a map of field values (`fields.rs`' union): `value` reads each value (`None`:
    /// it has no JSON form, a NaN or infinite double or JsonText that does not parse) and
    /// `entry` takes each key with it. `Ok(false)` when some key's last value has no JSON
    /// form (a repeated key keeps its last value): the caller names the field.
    /// `key` reads each key (its text, or only its checked bytes).
    fn walk_fields<K: Copy + PartialEq, V>(
        &mut self,
        mut key: impl FnMut(&mut Self) -> Result<K, SchemaError>,
        mut value: impl FnMut(&mut Self) -> Result<Option<V>, SchemaError>,
        mut entry: impl FnMut(K, Option<V>),
    ) -> Result<bool, SchemaError> {
        let mut without: Vec<K> = Vec::new();
        loop {
            // An entry is at least a key length and a branch: two bytes.
            let n = self.block(2)?;
            if n == 0 {
                return Ok(without.is_empty());
            }
            for _ in 0..n {
                let key = key(self)?;
                let v = value(self)?;
                if v.is_some() {
                    without.retain(|k| *k != key);
                } else {
                    without.push(key);
                }
                entry(key, v);
            }
        }
    }

    /// [`In::fields`] without the map: `Ok(false)` where it gives `None`.
    fn check_fields(&mut self) -> Result<bool, SchemaError> {
        self.walk_fields(In::str_bytes, |r| r.check_field_value().map(|ok| ok.then_some(())), |_, _| {})
    }

    /// [`In::field_value`] without the value: whether it has a JSON form.
    #[inline]
    fn check_field_value(&mut self) -> Result<bool, SchemaError> {
        Ok(match self.branch(6)? {
            0 => true,
            1 => self.boolean().map(|_| true)?,
            2 => self.long().map(|_| true)?,
            3 => self.double()?.is_finite(),
            4 => self.str_bytes().map(|_| true)?,
            _ => json_check::parses(self.str_bytes()?),
        })
    }

    /// A map of field values, or `None` where a key's last value has no JSON form (see
    /// [`In::walk_fields`]).
    fn fields(&mut self) -> Result<Option<Fields>, SchemaError> {
        let mut out = Map::new();
        let complete = self.walk_fields(In::str, In::field_value, |key, v| match v {
            Some(v) => {
                out.insert(key.to_owned(), v);
            }
            None => {
                out.remove(key);
            }
        })?;
        Ok(complete.then_some(out))
    }

    fn field_value(&mut self) -> Result<Option<Json>, SchemaError> {
        Ok(match self.branch(6)? {
            0 => Some(Json::Null),
            1 => Some(Json::Bool(self.boolean()?)),
            2 => Some(Json::Number(self.long()?.into())),
            3 => Number::from_f64(self.double()?).map(Json::Number),
            4 => Some(Json::String(self.string()?)),
            _ => serde_json::from_str(self.str()?).ok(),
        })
    }

    fn strings(&mut self) -> Result<Vec<String>, SchemaError> {
        let mut out = Vec::new();
        loop {
            let n = self.block(1)?;
            if n == 0 {
                return Ok(out);
            }
            out.reserve(n);
            for _ in 0..n {
                out.push(self.string()?);
            }
        }
    }
}

/// The field map of `raw`, bytes [`In::check_fields`] has accepted: building cannot fail,
/// since it reads the same bytes with the same checks.
pub(crate) fn build_checked_fields(raw: &[u8]) -> Fields {
    let mut r = In { id: 0, buf: raw, shared: None };
    let fields = r.fields().expect("a field map's bytes were validated when the event was decoded");
    debug_assert!(r.buf.is_empty(), "a field map's bytes are the map's and no more");
    fields.expect("a field map whose every value has a JSON form was validated when the event was decoded")
}

/// Decodes a body written with the catalog schema `writer` (schema id `id`) into the
/// event, resolved to the newest version of its type. The caller has established that
/// the writer schema has this layout ([`layout_of`]).
pub(crate) fn read_event(id: u32, writer: &SchemaDef, body: &[u8]) -> Result<DomainEvent, SchemaError> {
    read_event_in(id, writer, body, None)
}

/// [`read_event`] of `body`, a part of the message value `whole`: the event's field maps
/// share `whole` instead of copying their bytes.
pub(crate) fn read_shared_event(id: u32, writer: &SchemaDef, body: &[u8], whole: &Arc<[u8]>) -> Result<DomainEvent, SchemaError> {
    read_event_in(id, writer, body, Some(whole))
}

fn read_event_in(id: u32, writer: &SchemaDef, body: &[u8], shared: Option<&Arc<[u8]>>) -> Result<DomainEvent, SchemaError> {
    let ty = writer.event_type;
    let malformed = |field: &str| SchemaError::Malformed { event_type: ty.as_str(), field: field.to_owned() };
    let mut r = In { id, buf: body, shared };
    let event_id = r.uuid()?;
    let _aggregate_type = r.str_bytes()?;
    let event_type = r.str_bytes()?;
    let aggregate_id = r.string()?;
    let aggregate_sequence = r.long()?;
    let occurred_on = r.long()?;
    let version = r.int()?;
    let correlation_id = r.string()?;
    let causation_id = r.opt_string()?;
    let record_version = if ty.is_record_event() { r.long()? } else { 0 };
    // Reading stops at the first bad byte (`bad_avro`); a value without a JSON form is
    // reported after the whole body read, as apache-avro's path does (`malformed`).
    let payload: Result<EventPayload, SchemaError> = match ty {
        EventType::RecordCreated => {
            let (table_id, record_id) = (r.string()?, r.string()?);
            let fields = r.lazy_fields()?;
            let created_by = if writer.version >= 2 { r.opt_string()? } else { None };
            fields.ok_or_else(|| malformed("fields")).map(|fields| {
                EventPayload::RecordCreated(RecordCreated { table_id, record_id, record_version, fields, created_by })
            })
        }
        EventType::RecordUpdated => {
            let (table_id, record_id) = (r.string()?, r.string()?);
            let previous = r.lazy_fields()?;
            let current = r.lazy_fields()?;
            let changed_fields = r.strings()?;
            match (previous, current) {
                (None, _) => Err(malformed("previousFields")),
                (_, None) => Err(malformed("currentFields")),
                (Some(previous_fields), Some(current_fields)) => Ok(EventPayload::RecordUpdated(RecordUpdated {
                    table_id,
                    record_id,
                    record_version,
                    previous_fields,
                    current_fields,
                    changed_fields,
                })),
            }
        }
        EventType::RecordDeleted => {
            let (table_id, record_id) = (r.string()?, r.string()?);
            let deleted = r.lazy_fields()?;
            deleted.ok_or_else(|| malformed("deletedFields")).map(|deleted_fields| {
                EventPayload::RecordDeleted(RecordDeleted { table_id, record_id, record_version, deleted_fields })
            })
        }
        EventType::AutomationTriggered => {
            let (automation_id, trigger_id) = (r.string()?, r.string()?);
            let data = r.lazy_fields()?;
            let run_id = r.string()?;
            data.ok_or_else(|| malformed("triggerData")).map(|trigger_data| {
                EventPayload::AutomationTriggered(AutomationTriggered { automation_id, trigger_id, trigger_data, run_id })
            })
        }
        EventType::ActionExecuted => {
            let (automation_id, action_id, run_id) = (r.string()?, r.string()?, r.string()?);
            let result = match r.long()? {
                0 => ActionResult::Success,
                1 => ActionResult::Failure,
                n => return Err(r.bad(format!("enum index {n} of 2"))),
            };
            let data = match r.branch(2)? {
                0 => Ok(None),
                _ => r.lazy_fields()?.map(Some).ok_or_else(|| malformed("data")),
            };
            let error = r.opt_string()?;
            data.map(|data| {
                EventPayload::ActionExecuted(ActionExecuted { automation_id, action_id, run_id, result, data, error })
            })
        }
        EventType::ConnectionEstablished => Ok(EventPayload::ConnectionEstablished(ConnectionEstablished {
            connection_id: r.string()?,
            service: r.string()?,
            user_id: r.string()?,
        })),
        EventType::FormSubmitted => {
            let (form_id, submission_id) = (r.string()?, r.string()?);
            let data = r.lazy_fields()?;
            let submitted_by = r.opt_string()?;
            data.ok_or_else(|| malformed("data"))
                .map(|data| EventPayload::FormSubmitted(FormSubmitted { form_id, submission_id, data, submitted_by }))
        }
    };
    if !r.buf.is_empty() {
        return Err(r.bad(format!("{} bytes left after the record", r.buf.len())));
    }
    if !SCHEMAS.iter().any(|def| def.event_type == ty && def.version == version) {
        return Err(SchemaError::UnsupportedVersion { event_type: ty.as_str(), version, supported: ty.versions() });
    }
    if event_type != ty.as_str().as_bytes() {
        return Err(malformed("eventType"));
    }
    let payload = payload?;
    let envelope = Envelope {
        event_id,
        aggregate_id,
        aggregate_sequence,
        occurred_on: millis_to_time(occurred_on),
        version,
        correlation_id,
        causation_id,
    };
    Ok(DomainEvent { envelope, payload })
}

#[cfg(test)]
mod tests;
