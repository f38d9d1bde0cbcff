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
}

impl<'a> In<'a> {
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
        let text = std::str::from_utf8(bytes).map_err(|e| self.bad(format!("invalid UTF-8: {e}")))?;
        Uuid::parse_str(text).map_err(|e| self.bad(format!("eventId: {e}")))
    }

    fn int(&mut self) -> Result<i32, SchemaError> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.bad(format!("int out of range: {v}")))
    }

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
    fn len(&mut self, min_item: usize) -> Result<usize, SchemaError> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| self.bad(format!("negative length {n}")))?;
        self.fits(n, min_item)
    }

    /// `n`, when `n` items of at least `min_item` bytes each fit in the bytes left.
    fn fits(&self, n: usize, min_item: usize) -> Result<usize, SchemaError> {
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(self.bad(format!("{n} items cannot fit in the {} bytes left", self.buf.len())));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<&'a str, SchemaError> {
        let n = self.len(1)?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|e| self.bad(format!("invalid UTF-8: {e}")))
    }

    /// A string's bytes, checked as [`In::str`] checks them (the same errors), for the
    /// validating walk of a field map: all-ASCII bytes (most keys and values) are valid
    /// UTF-8 without the full check.
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

    fn double(&mut self) -> Result<f64, SchemaError> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn boolean(&mut self) -> Result<bool, SchemaError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.bad(format!("boolean byte {b}"))),
        }
    }

    /// The count of the next block of a map or array (0 ends it); a negative count is
    /// followed by the block's size in bytes, which is skipped.
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
        Ok(Some(LazyFields::from_checked_avro(raw)))
    }

    /// [`In::fields`] without the map: `Ok(false)` where it gives `None`.
    fn check_fields(&mut self) -> Result<bool, SchemaError> {
        // Keys whose last value has no JSON form (a repeated key keeps its last value).
        let mut without: Vec<&'a [u8]> = Vec::new();
        loop {
            let n = self.block(2)?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                let key = self.str_bytes()?;
                if self.check_field_value()? {
                    if !without.is_empty() {
                        without.retain(|k| *k != key);
                    }
                } else {
                    without.push(key);
                }
            }
        }
        Ok(without.is_empty())
    }

    /// [`In::field_value`] without the value: whether it has a JSON form.
    fn check_field_value(&mut self) -> Result<bool, SchemaError> {
        Ok(match self.branch(6)? {
            0 => true,
            1 => self.boolean().map(|_| true)?,
            2 => self.long().map(|_| true)?,
            3 => self.double()?.is_finite(),
            4 => self.str_bytes().map(|_| true)?,
            _ => json_check::parses(self.str()?),
        })
    }

    /// A map of field values (`fields.rs`' union), or `None` where a value has no JSON form
    /// (a NaN or infinite double, JsonText that does not parse): the caller names the field.
    fn fields(&mut self) -> Result<Option<Fields>, SchemaError> {
        let mut out = Map::new();
        // Keys whose last value has no JSON form (a repeated key keeps its last value).
        let mut without: Vec<String> = Vec::new();
        loop {
            // An entry is at least a key length and a branch: two bytes.
            let n = self.block(2)?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                let key = self.string()?;
                match self.field_value()? {
                    Some(v) => {
                        without.retain(|k| *k != key);
                        out.insert(key, v);
                    }
                    None => {
                        out.remove(&key);
                        without.push(key);
                    }
                }
            }
        }
        Ok(without.is_empty().then_some(out))
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
    let mut r = In { id: 0, buf: raw };
    let fields = r.fields().expect("a field map's bytes were validated when the event was decoded");
    debug_assert!(r.buf.is_empty(), "a field map's bytes are the map's and no more");
    fields.expect("a field map whose every value has a JSON form was validated when the event was decoded")
}

/// Decodes a body written with the catalog schema `writer` (schema id `id`) into the
/// event, resolved to the newest version of its type. The caller has established that
/// the writer schema has this layout ([`layout_of`]).
pub(crate) fn read_event(id: u32, writer: &SchemaDef, body: &[u8]) -> Result<DomainEvent, SchemaError> {
    let ty = writer.event_type;
    let malformed = |field: &str| SchemaError::Malformed { event_type: ty.as_str(), field: field.to_owned() };
    let mut r = In { id, buf: body };
    let event_id = r.uuid()?;
    let _aggregate_type = r.str()?;
    let event_type = r.str()?;
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
    let supported = ty.versions();
    if !supported.contains(&version) {
        return Err(SchemaError::UnsupportedVersion { event_type: ty.as_str(), version, supported });
    }
    if event_type != ty.as_str() {
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
mod tests {
    use std::mem::discriminant;

    use serde_json::json;

    use super::*;
    use crate::binary::write_event;
    use crate::codec::decode_with_apache;
    use crate::examples::samples;
    use crate::fuzzing::writer_for;

    /// Both paths agree: the same event, or errors of the same kind (the same field for
    /// `malformed`, the same version for `unsupported_version`).
    fn agree(id: u32, writer: &SchemaDef, body: &[u8]) -> Result<(), String> {
        let ours = read_event(id, writer, body);
        let theirs = decode_with_apache(id, writer.schema(), body);
        let same = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => a == b,
            (Err(SchemaError::Malformed { field: a, .. }), Err(SchemaError::Malformed { field: b, .. })) => a == b,
            (Err(a @ SchemaError::UnsupportedVersion { .. }), Err(b @ SchemaError::UnsupportedVersion { .. })) => {
                a.to_string() == b.to_string()
            }
            (Err(a), Err(b)) => discriminant(a) == discriminant(b),
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(format!(
                "{} v{} {body:?}:\n  direct:      {ours:?}\n  apache-avro: {theirs:?}",
                writer.event_type, writer.version
            ))
        }
    }

    fn body(e: &DomainEvent) -> Vec<u8> {
        let mut b = Vec::new();
        write_event(e, &mut b);
        b
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn json(&mut self, depth: u32) -> Json {
            match self.below(if depth > 1 { 7 } else { 9 }) {
                0 => Json::Null,
                1 => Json::Bool(self.below(2) == 1),
                2 => json!(self.next() as i64),
                3 => json!((self.next() as i64 as f64) / 1e3),
                4 => json!(u64::MAX - self.below(1000)),
                5 => Json::String(["", "é", "a\"b", "[1,2]", "\u{1f600}"][self.below(5) as usize].repeat(self.below(4) as usize)),
                6 => json!(f64::from_bits(self.next() & 0x7fef_ffff_ffff_ffff)),
                7 => Json::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
                _ => Json::Object((0..self.below(4)).map(|i| (format!("k{i}"), self.json(depth + 1))).collect()),
            }
        }

        fn fields(&mut self) -> LazyFields {
            (0..self.below(12)).map(|i| (format!("f{}", i * 7 + self.below(7)), self.json(0))).collect()
        }

        fn text(&mut self) -> Option<String> {
            (self.below(2) == 1).then(|| "x".repeat(self.below(40) as usize))
        }
    }

    /// A copy of `e` with generated field values, optional strings and version.
    fn generated(g: &mut Gen, mut e: DomainEvent) -> DomainEvent {
        e.envelope.aggregate_sequence = g.next() as i64;
        e.envelope.causation_id = g.text();
        match &mut e.payload {
            EventPayload::RecordCreated(p) => {
                p.fields = g.fields();
                e.envelope.version = 1 + g.below(2) as i32;
                p.created_by = if e.envelope.version == 2 { g.text() } else { None };
            }
            EventPayload::RecordUpdated(p) => {
                p.previous_fields = g.fields();
                p.current_fields = g.fields();
                p.changed_fields = p.current_fields.keys().cloned().collect();
            }
            EventPayload::RecordDeleted(p) => p.deleted_fields = g.fields(),
            EventPayload::AutomationTriggered(p) => p.trigger_data = g.fields(),
            EventPayload::ActionExecuted(p) => {
                p.data = (g.below(2) == 1).then(|| g.fields());
                p.error = g.text();
                p.result = if g.below(2) == 1 { ActionResult::Success } else { ActionResult::Failure };
            }
            EventPayload::ConnectionEstablished(p) => p.user_id = g.text().unwrap_or_default(),
            EventPayload::FormSubmitted(p) => {
                p.data = g.fields();
                p.submitted_by = g.text();
            }
        }
        e
    }

    #[test]
    fn every_catalog_schema_has_its_own_layout_and_other_schemas_none() {
        for def in &SCHEMAS {
            let found = layout_of(def.schema()).expect("a catalog schema has a layout");
            assert_eq!((found.event_type, found.version), (def.event_type, def.version));
        }
        // Docs and defaults do not change the layout; a field more, or eventId without its
        // uuid logical type, does.
        let text = SCHEMAS[2].text.replace("An existing record was modified.", "Changed.");
        assert!(layout_of(&Schema::parse_str(&text).unwrap()).is_some());
        let mut v: Json = serde_json::from_str(SCHEMAS[2].text).unwrap();
        v["fields"].as_array_mut().unwrap().push(json!({"name": "extra", "type": "long"}));
        assert!(layout_of(&Schema::parse_str(&v.to_string()).unwrap()).is_none());
        let mut v: Json = serde_json::from_str(SCHEMAS[2].text).unwrap();
        v["fields"][0]["type"] = json!("string");
        assert!(layout_of(&Schema::parse_str(&v.to_string()).unwrap()).is_none());
    }

    #[test]
    fn generated_events_of_every_type_and_version_decode_as_apache_avro_decodes_them() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut n = 0;
        for _ in 0..200 {
            for e in samples() {
                let e = generated(&mut g, e);
                let writer = catalog_def(&e);
                let b = body(&e);
                agree(1, writer, &b).unwrap_or_else(|m| panic!("{m}"));
                let back = read_event(1, writer, &b).unwrap();
                let mut want = e.clone();
                // Read with the newest reader: v1 RecordCreated is resolved to v2 (no createdBy).
                if let EventPayload::RecordCreated(p) = &mut want.payload {
                    p.created_by = p.created_by.take().filter(|_| writer.version >= 2);
                }
                assert_eq!(back, want);
                n += 1;
            }
        }
        assert!(n >= 1800);
    }

    #[test]
    fn damaged_bodies_are_refused_or_read_as_apache_avro_does() {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        for round in 0..3000 {
            let pick = g.below(9) as usize;
            let e = generated(&mut g, samples().swap_remove(pick));
            let writer = catalog_def(&e);
            let mut b = body(&e);
            match round % 4 {
                0 => b.truncate(g.below(b.len() as u64) as usize),
                1 => {
                    let i = g.below(b.len() as u64) as usize;
                    b[i] ^= 1 << g.below(8);
                }
                2 => {
                    let i = g.below(b.len() as u64) as usize;
                    b[i] = g.next() as u8;
                }
                _ => b.push(0),
            }
            agree(1, writer, &b).unwrap_or_else(|m| panic!("round {round}: {m}"));
            // The same bytes read as every other layout (a wrong schema id).
            let other = writer_for(g.below(SCHEMAS.len() as u64) as u32);
            agree(1, other, &b).unwrap_or_else(|m| panic!("round {round}, as {}: {m}", other.event_type));
        }
    }

    #[test]
    fn the_fuzz_corpus_is_read_as_apache_avro_reads_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_event");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let Ok((id, body)) = crate::codec::split_frame(&bytes) else { continue };
            agree(id, writer_for(id), body).unwrap_or_else(|m| panic!("{m}"));
            files += 1;
        }
        assert!(files > 100, "{files} framed files in the corpus");
    }

    /// The field maps of a payload as they are, without reading (building) them.
    fn lazy_maps(p: &EventPayload) -> Vec<&LazyFields> {
        match p {
            EventPayload::RecordCreated(p) => vec![&p.fields],
            EventPayload::RecordUpdated(p) => vec![&p.previous_fields, &p.current_fields],
            EventPayload::RecordDeleted(p) => vec![&p.deleted_fields],
            EventPayload::AutomationTriggered(p) => vec![&p.trigger_data],
            EventPayload::ActionExecuted(p) => p.data.iter().collect(),
            EventPayload::FormSubmitted(p) => vec![&p.data],
            EventPayload::ConnectionEstablished(_) => Vec::new(),
        }
    }

    /// Generated events of every type, each with its body: (event, writer, body, the
    /// event decoded lazily, the event decoded by apache-avro with its maps built).
    fn decoded_both_ways(seed: u64, rounds: usize) -> Vec<(&'static SchemaDef, Vec<u8>, DomainEvent, DomainEvent)> {
        let mut g = Gen(seed);
        let mut out = Vec::new();
        for _ in 0..rounds {
            for e in samples() {
                let e = generated(&mut g, e);
                let writer = catalog_def(&e);
                let b = body(&e);
                let lazy = read_event(1, writer, &b).unwrap();
                let eager = decode_with_apache(1, writer.schema(), &b).unwrap();
                out.push((writer, b, lazy, eager));
            }
        }
        out
    }

    #[test]
    fn lazily_decoded_maps_are_built_on_first_read_and_equal_the_eager_ones_field_for_field() {
        let mut unbuilt = 0;
        for (writer, _, lazy, eager) in decoded_both_ways(0x5851_f42d_4c95_7f2d, 100) {
            let (maps, eager_maps) = (lazy_maps(&lazy.payload), lazy_maps(&eager.payload));
            assert_eq!(maps.len(), eager_maps.len());
            for (m, want) in maps.into_iter().zip(eager_maps) {
                // Nothing is built by decoding, except an empty map (there is nothing to build).
                assert_eq!(m.is_built(), want.is_empty(), "{} v{}", writer.event_type, writer.version);
                unbuilt += usize::from(!m.is_built());
                assert_eq!(m.len(), want.len());
                assert!(m.iter().eq(want.iter()), "{} v{}: {m:?} != {want:?}", writer.event_type, writer.version);
                for (k, v) in want.iter() {
                    assert_eq!(m.get(k), Some(v));
                }
                assert!(m.is_built());
            }
            assert_eq!(lazy, eager);
        }
        assert!(unbuilt > 500, "{unbuilt} maps were left to build");
    }

    #[test]
    fn a_clone_of_a_lazy_event_reads_the_same_fields_before_and_after_the_original_is_read() {
        for (_, _, lazy, eager) in decoded_both_ways(0x1405_7b7e_f767_814f, 20) {
            let clone = lazy.clone();
            assert_eq!(clone, eager);
            let after_clone = clone.clone();
            assert_eq!(lazy, eager);
            // Built in the original: a clone made now carries the built maps.
            let built_clone = lazy.clone();
            assert!(lazy_maps(&built_clone.payload).iter().all(|m| m.is_built()));
            assert_eq!(built_clone, eager);
            assert_eq!(after_clone, eager);
        }
    }

    #[test]
    fn a_lazy_event_encodes_to_its_own_body_and_serializes_as_the_eager_one() {
        for (writer, b, lazy, eager) in decoded_both_ways(0x2d35_8dcc_aa6c_78a5, 50) {
            let json = serde_json::to_string(&lazy).unwrap();
            assert_eq!(json, serde_json::to_string(&eager).unwrap());
            assert_eq!(format!("{lazy:?}"), format!("{eager:?}"));
            let from_json: DomainEvent = serde_json::from_str(&json).unwrap();
            assert_eq!(from_json, eager);
            let fresh = read_event(1, writer, &b).unwrap();
            if writer.version == writer.event_type.latest_version() {
                assert_eq!(body(&fresh), b, "{} v{}", writer.event_type, writer.version);
            }
            assert_eq!(body(&fresh), body(&eager));
        }
    }

    #[test]
    fn a_changed_lazy_map_is_the_changed_map() {
        let e = samples().swap_remove(2);
        let b = body(&e);
        let mut lazy = read_event(1, catalog_def(&e), &b).unwrap();
        let EventPayload::RecordUpdated(p) = &mut lazy.payload else { panic!("sample 2 is RecordUpdated") };
        assert!(!p.current_fields.is_built());
        p.current_fields.insert("added".into(), json!([1]));
        p.previous_fields.clear();
        let EventPayload::RecordUpdated(want) = &e.payload else { unreachable!() };
        let mut current = Fields::from(want.current_fields.clone());
        current.insert("added".into(), json!([1]));
        assert_eq!(p.current_fields, current);
        assert_eq!(p.previous_fields, LazyFields::default());
        let back = read_event(1, catalog_def(&e), &body(&lazy)).unwrap();
        assert_eq!(back, lazy);
    }

    fn catalog_def(e: &DomainEvent) -> &'static SchemaDef {
        crate::catalog::schema_def(e.event_type(), e.envelope.version).unwrap()
    }
}
