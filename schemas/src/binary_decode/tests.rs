//! The direct decoder against apache-avro: layouts, generated events, damaged bodies, the fuzz corpus.

use std::mem::discriminant;
use std::sync::Arc;

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
        Err(format!("{} v{} {body:?}:\n  direct:      {ours:?}\n  apache-avro: {theirs:?}", writer.event_type, writer.version))
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

/// A RecordUpdated body whose `currentFields` holds the key `kkey` with the JsonText `[1,2]`
/// and the string `"zq"`, with `from` replaced by `to` (of the same length).
fn damaged_record_updated(from: &[u8], to: &[u8]) -> (&'static SchemaDef, Vec<u8>) {
    let mut e = samples().swap_remove(2);
    let EventPayload::RecordUpdated(p) = &mut e.payload else { panic!("sample 2 is RecordUpdated") };
    p.current_fields = [("kkey".to_owned(), json!([1, 2])), ("s".to_owned(), json!("zq"))].into_iter().collect();
    let mut b = body(&e);
    let at = b.windows(from.len()).position(|w| w == from).expect("the bytes to damage");
    assert_eq!(b.windows(from.len()).filter(|w| *w == from).count(), 1, "{from:?} is in the body once");
    b[at..at + from.len()].copy_from_slice(to);
    (catalog_def(&e), b)
}

#[test]
fn invalid_json_or_utf8_in_a_field_map_is_a_decode_error_as_on_apache_avros_path() {
    let cases: [(&[u8], &[u8], Option<&str>); 6] = [
        // JSON text that does not parse: the map has no JSON form.
        (b"[1,2]", b"[1,2,", Some("currentFields")),
        (b"[1,2]", b"[1 2]", Some("currentFields")),
        // Bytes that are not UTF-8, in a JsonText (in a JSON string or not), a key or a
        // string value: bad Avro.
        (b"[1,2]", b"[1,\xff]", None),
        (b"[1,2]", b"[\"\xff\"]", None),
        (b"kkey", b"k\xffey", None),
        (b"zq", b"z\xc3", None),
    ];
    for (from, to, field) in cases {
        let (writer, b) = damaged_record_updated(from, to);
        agree(1, writer, &b).unwrap_or_else(|m| panic!("{m}"));
        match (read_event(1, writer, &b), field) {
            (Err(SchemaError::Malformed { field: f, .. }), Some(want)) => assert_eq!(f, want),
            (Err(SchemaError::BadAvro { reason, .. }), None) => assert!(reason.contains("UTF-8"), "{reason}"),
            (other, _) => panic!("{to:?}: {other:?}"),
        }
    }
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
fn maps_decoded_from_a_shared_value_share_it_and_equal_the_copied_ones() {
    let mut shared_maps = 0;
    for (writer, b, copied, eager) in decoded_both_ways(0x7a3c_19e5_0b4d_62f1, 20) {
        // The body after a Confluent frame, as a message value holds it.
        let whole: Arc<[u8]> = crate::codec::frame(1, &b).into();
        let shared = read_shared_event(1, writer, &whole[5..], &whole).unwrap();
        // Every map that is not empty holds a share of the value, none a copy.
        let holding = lazy_maps(&shared.payload).iter().filter(|m| !m.is_empty()).count();
        assert_eq!(Arc::strong_count(&whole), 1 + holding, "{} v{}", writer.event_type, writer.version);
        shared_maps += holding;
        assert_eq!(shared, copied);
        assert_eq!(shared, eager);
        drop(shared);
        assert_eq!(Arc::strong_count(&whole), 1, "the maps' shares go with the event");
    }
    assert!(shared_maps > 100, "{shared_maps} maps shared the value");
}

#[test]
fn a_lazy_map_of_bytes_outside_the_shared_value_is_a_copy_of_them() {
    let updated = samples().into_iter().find(|e| e.event_type() == EventType::RecordUpdated).unwrap();
    let body = body(&updated);
    let other: Arc<[u8]> = vec![0u8; 16].into();
    let copied = read_shared_event(1, catalog_def(&updated), &body, &other).unwrap();
    assert!(lazy_maps(&copied.payload).iter().any(|m| !m.is_built()), "a map left to build");
    assert_eq!(Arc::strong_count(&other), 1, "no map holds a value its bytes are not from");
    assert_eq!(copied, updated);
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
