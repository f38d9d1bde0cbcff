//! Direct Avro binary encoding of events: the hot path of every producer.
//!
//! apache-avro's `to_avro_datum` builds a `Value` tree, validates it and resolves the
//! schema's names on every call; measured with `cargo bench -p ltf-schemas` that is
//! ~18 µs for a realistic RecordUpdated. This module writes the same bytes straight from
//! the Rust types following the `.avsc` field order (Avro binary encoding: zig-zag
//! varints, length-prefixed strings, blocked maps and arrays). apache-avro stays the
//! reference: the tests decode every output with apache-avro against the shipped
//! schema and compare with apache-avro's own encoding, and the decoder is apache-avro's.

use serde_json::Value as Json;

use crate::event::{ActionResult, DomainEvent, EventPayload};
use crate::fields::Fields;

/// Appends Avro-encoded primitives to a buffer.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }

    fn str(&mut self, s: &str) {
        self.long(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.long(0),
            Some(s) => {
                self.long(1);
                self.str(s);
            }
        }
    }

    fn double(&mut self, d: f64) {
        self.0.extend_from_slice(&d.to_le_bytes());
    }

    /// One value of the field union `[null, boolean, long, double, string, JsonText]`.
    fn field_value(&mut self, v: &Json) {
        match v {
            Json::Null => self.long(0),
            Json::Bool(b) => {
                self.long(1);
                self.0.push(u8::from(*b));
            }
            Json::Number(n) => match (n.as_i64(), n.is_f64()) {
                (Some(i), _) => {
                    self.long(2);
                    self.long(i);
                }
                (None, true) => {
                    self.long(3);
                    self.double(n.as_f64().unwrap_or_default());
                }
                (None, false) => self.json_text(v),
            },
            Json::String(s) => {
                self.long(4);
                self.str(s);
            }
            Json::Array(_) | Json::Object(_) => self.json_text(v),
        }
    }

    /// A `JsonText` value: the compact JSON text of `v` (what `v.to_string()` gives),
    /// serialized straight into the buffer behind a one-byte length, which is widened in
    /// place when the text is 64 bytes or longer.
    fn json_text(&mut self, v: &Json) {
        self.long(5);
        let at = self.0.len();
        self.0.push(0);
        serde_json::to_writer(&mut *self.0, v).expect("a JSON value serializes into a Vec");
        let n = self.0.len() - at - 1;
        if n < 64 {
            // The zig-zag varint of 0..=63 is one byte.
            self.0[at] = (n as u8) << 1;
        } else {
            let mut len = Vec::with_capacity(10);
            Out(&mut len).long(n as i64);
            self.0.splice(at..=at, len);
        }
    }

    fn fields(&mut self, f: &Fields) {
        if !f.is_empty() {
            self.long(f.len() as i64);
            for (k, v) in f {
                self.str(k);
                self.field_value(v);
            }
        }
        self.long(0);
    }

    fn strings(&mut self, items: &[String]) {
        if !items.is_empty() {
            self.long(items.len() as i64);
            for s in items {
                self.str(s);
            }
        }
        self.long(0);
    }
}

/// Appends the Avro body of `event` in its schema at `envelope.version`. The caller has
/// checked that the version exists and that v1 RecordCreated carries no createdBy.
pub(crate) fn write_event(event: &DomainEvent, buf: &mut Vec<u8>) {
    let env = &event.envelope;
    let ty = event.event_type();
    let mut o = Out(buf);
    o.str(env.event_id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
    o.str(ty.aggregate().as_str());
    o.str(ty.as_str());
    o.str(&env.aggregate_id);
    o.long(env.aggregate_sequence);
    o.long(env.occurred_on.timestamp_millis());
    o.long(i64::from(env.version));
    o.str(&env.correlation_id);
    o.opt_str(env.causation_id.as_deref());
    if let Some(v) = event.payload.record_version() {
        o.long(v);
    }
    match &event.payload {
        EventPayload::RecordCreated(p) => {
            o.str(&p.table_id);
            o.str(&p.record_id);
            o.fields(&p.fields);
            if env.version >= 2 {
                o.opt_str(p.created_by.as_deref());
            }
        }
        EventPayload::RecordUpdated(p) => {
            o.str(&p.table_id);
            o.str(&p.record_id);
            o.fields(&p.previous_fields);
            o.fields(&p.current_fields);
            o.strings(&p.changed_fields);
        }
        EventPayload::RecordDeleted(p) => {
            o.str(&p.table_id);
            o.str(&p.record_id);
            o.fields(&p.deleted_fields);
        }
        EventPayload::AutomationTriggered(p) => {
            o.str(&p.automation_id);
            o.str(&p.trigger_id);
            o.fields(&p.trigger_data);
            o.str(&p.run_id);
        }
        EventPayload::ActionExecuted(p) => {
            o.str(&p.automation_id);
            o.str(&p.action_id);
            o.str(&p.run_id);
            o.long(match p.result {
                ActionResult::Success => 0,
                ActionResult::Failure => 1,
            });
            match &p.data {
                None => o.long(0),
                Some(d) => {
                    o.long(1);
                    o.fields(d);
                }
            }
            o.opt_str(p.error.as_deref());
        }
        EventPayload::ConnectionEstablished(p) => {
            o.str(&p.connection_id);
            o.str(&p.service);
            o.str(&p.user_id);
        }
        EventPayload::FormSubmitted(p) => {
            o.str(&p.form_id);
            o.str(&p.submission_id);
            o.fields(&p.data);
            o.opt_str(p.submitted_by.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema_def;
    use crate::examples::samples;
    use crate::value;
    use apache_avro::{from_avro_datum, to_avro_datum};

    #[test]
    fn direct_encoding_equals_apache_avro_for_every_sample() {
        for e in samples() {
            let schema = schema_def(e.event_type(), e.envelope.version).unwrap().schema();
            let mut ours = Vec::new();
            write_event(&e, &mut ours);
            let theirs = to_avro_datum(schema, value::to_avro(&e).unwrap()).unwrap();
            // Map entry order is arbitrary in apache-avro's output: compare decoded values.
            let a = from_avro_datum(schema, &mut ours.as_slice(), None).unwrap();
            let b = from_avro_datum(schema, &mut theirs.as_slice(), None).unwrap();
            assert_eq!(a, b, "{} v{}", e.event_type(), e.envelope.version);
            assert_eq!(ours.len(), theirs.len());
        }
    }

    #[test]
    fn every_json_kind_encodes_like_apache_avro() {
        let mut e = samples().remove(8);
        let EventPayload::FormSubmitted(p) = &mut e.payload else { panic!("sample 8 is FormSubmitted") };
        let all = serde_json::json!({"n": null, "t": true, "i": i64::MIN, "u": u64::MAX, "f": -0.5,
            "s": "\u{e9}t\u{e9}", "a": [1, [2, {"x": null}]], "o": {"k": {}}, "e": [], "big": 1e300});
        p.data = all.as_object().cloned().unwrap().into();
        let schema = schema_def(e.event_type(), 1).unwrap().schema();
        let mut ours = Vec::new();
        write_event(&e, &mut ours);
        let theirs = to_avro_datum(schema, value::to_avro(&e).unwrap()).unwrap();
        let a = from_avro_datum(schema, &mut ours.as_slice(), None).unwrap();
        let b = from_avro_datum(schema, &mut theirs.as_slice(), None).unwrap();
        assert_eq!(a, b);
        assert_eq!(crate::codec::decode_with(1, schema, &ours).unwrap(), e);
    }

    #[test]
    fn json_text_is_written_as_its_to_string_of_every_length() {
        let value = |n: usize| serde_json::json!(["x".repeat(n), {"k": [1.5, null, u64::MAX]}]);
        let shortest = value(0).to_string().len();
        // Around the lengths where the length's varint grows (64, 8192 bytes).
        for len in [shortest, 63, 64, 65, 8191, 8192, 8193, 20_000] {
            let v = value(len - shortest);
            let text = v.to_string();
            assert_eq!(text.len(), len);
            let mut want = Vec::new();
            let mut o = Out(&mut want);
            o.long(5);
            o.str(&text);
            let mut got = vec![7];
            Out(&mut got).json_text(&v);
            assert_eq!(got[1..], want[..], "a text of {} bytes", text.len());
        }
    }

    #[test]
    fn zigzag_varints_match_the_spec() {
        let enc = |v: i64| {
            let mut b = Vec::new();
            Out(&mut b).long(v);
            b
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(i64::MIN).len(), 10);
    }
}
