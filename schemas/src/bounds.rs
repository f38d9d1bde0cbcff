//! A bounds check of an Avro body against its writer schema, run before apache-avro decodes
//! it.
//!
//! apache-avro 0.21 trusts the lengths it reads: for an array or map block it reserves room
//! for the claimed item count before reading an item (a map claiming 2^29 entries reserves
//! ~87 GB and aborts the process), and for a string or bytes it allocates the claimed length
//! (up to its 512 MiB `max_allocation_bytes`) before reading it. `check`, which
//! [`decode_with`](crate::codec::decode_with) calls first, walks the writer schema over the
//! bytes without building any value and refuses such claims first.
//!
//! When `check` returns `Ok`, the body is, as far as its lengths go, a well-formed datum of
//! the schema that ends exactly at the end of the body:
//! * every string, bytes and fixed length is at most the bytes left;
//! * every array or map block count, positive or negative (a negative count's block size is
//!   read and must be at most the bytes left), fits the bytes left: count × the fewest bytes
//!   an item of the schema takes ≤ bytes left; a map entry takes at least 1 byte (its key);
//! * items that take no bytes at all (null, records of nulls, zero-size fixed) number at most
//!   [`MAX_ZERO_SIZE_ITEMS`] in the whole body, so no count multiplies into memory unbounded;
//! * values nest at most [`MAX_DEPTH`] deep (a recursive writer schema cannot overflow the
//!   stack), union and enum indexes are in range, varints are at most 10 bytes, and every
//!   named reference resolves.
//!
//! It allocates nothing in proportion to a count or length read from the body: its memory is
//! the schema's name table and one namespace per record walked. What it does not check is
//! left to apache-avro, which then allocates at most in proportion to the body's length:
//! UTF-8 validity, int ranges, booleans other than 0 and 1, logical type contents.

use std::collections::HashMap;

use apache_avro::schema::{Name, Namespace, RecordSchema, ResolvedSchema};
use apache_avro::Schema;

use crate::SchemaError;

/// At most this many array items that take no bytes (e.g. an array of null) in one body. None
/// of the contract's schemas has such an item; the limit bounds what a hostile count can make
/// apache-avro build from nothing (~ this many `Value`s, times the item schema's size).
pub const MAX_ZERO_SIZE_ITEMS: u64 = 4096;

/// The deepest nesting of records, arrays, maps and unions walked (the contract's schemas
/// nest 5 deep).
pub const MAX_DEPTH: usize = 64;

/// Checks that `body` is a datum of `schema` whose lengths and counts fit in its bytes (see
/// the module doc); `id` is the schema id carried by the value, for the error.
pub(crate) fn check(id: u32, schema: &Schema, body: &[u8]) -> Result<(), SchemaError> {
    let bad = |reason: String| SchemaError::BadAvro { id, reason };
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| bad(format!("writer schema does not resolve: {e}")))?;
    let mut walk = Walk { names: resolved.get_names(), body, pos: 0, zero_size_items: 0 };
    walk.value(schema, &None, 0).map_err(bad)?;
    match body.len() - walk.pos {
        0 => Ok(()),
        rest => Err(bad(format!("{rest} bytes left after the record"))),
    }
}

struct Walk<'a, 's> {
    names: &'a HashMap<Name, &'s Schema>,
    body: &'a [u8],
    pos: usize,
    zero_size_items: u64,
}

impl<'s> Walk<'_, 's> {
    fn left(&self) -> u64 {
        (self.body.len() - self.pos) as u64
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.left() {
            return Err(format!("{what} of {n} bytes at byte {} but {} bytes are left", self.pos, self.left()));
        }
        self.pos += n as usize;
        Ok(())
    }

    /// A zig-zag varint long.
    fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.body.get(self.pos) else {
                return Err(format!("the body ends inside a varint at byte {}", self.pos));
            };
            self.pos += 1;
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(format!("varint longer than 10 bytes ending at byte {}", self.pos))
    }

    /// A string or bytes: a length, then that many bytes.
    fn sized(&mut self, what: &str) -> Result<(), String> {
        let len = self.long()?;
        let len = u64::try_from(len).map_err(|_| format!("{what} length {len} is negative"))?;
        self.skip(len, what)
    }

    fn resolve(&self, name: &Name, ns: &Namespace) -> Result<(&'s Schema, Namespace), String> {
        let full = name.fully_qualified_name(ns);
        let schema = self.names.get(&full).ok_or_else(|| format!("unresolved schema reference {}", full.fullname(None)))?;
        Ok((*schema, full.namespace))
    }

    fn value(&mut self, schema: &Schema, ns: &Namespace, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1, "boolean"),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long().map(drop),
            Schema::Float => self.skip(4, "float"),
            Schema::Double => self.skip(8, "double"),
            Schema::Duration => self.skip(12, "duration"),
            Schema::Bytes | Schema::BigDecimal | Schema::Uuid => self.sized("bytes"),
            Schema::String => self.sized("string"),
            Schema::Fixed(f) => self.skip(f.size as u64, "fixed"),
            Schema::Decimal(d) => self.value(&d.inner, ns, depth + 1),
            Schema::Enum(e) => {
                let i = self.long()?;
                match usize::try_from(i) {
                    Ok(i) if i < e.symbols.len() => Ok(()),
                    _ => Err(format!("enum index {i} of {} symbols", e.symbols.len())),
                }
            }
            Schema::Union(u) => {
                let i = self.long()?;
                let variant = usize::try_from(i)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| format!("union index {i} of {} variants", u.variants().len()))?;
                self.value(variant, ns, depth + 1)
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let ns = name.fully_qualified_name(ns).namespace;
                fields.iter().try_for_each(|f| self.value(&f.schema, &ns, depth + 1))
            }
            Schema::Ref { name } => {
                let (schema, ns) = self.resolve(name, ns)?;
                self.value(schema, &ns, depth + 1)
            }
            Schema::Array(a) => self.blocks(&a.items, false, ns, depth),
            Schema::Map(m) => self.blocks(&m.types, true, ns, depth),
        }
    }

    /// The blocks of an array (`keyed` false) or a map, up to the 0 count that ends them.
    fn blocks(&mut self, item: &Schema, keyed: bool, ns: &Namespace, depth: usize) -> Result<(), String> {
        let item_min = self.min_size(item, ns, depth + 1)?.saturating_add(u64::from(keyed));
        loop {
            let at = self.pos;
            let raw = self.long()?;
            let count = match raw {
                0 => return Ok(()),
                n if n > 0 => n.unsigned_abs(),
                n => {
                    let size = self.long()?;
                    if !(0..=self.left() as i64).contains(&size) {
                        return Err(format!("block at byte {at} has size {size} but {} bytes are left", self.left()));
                    }
                    n.checked_neg().ok_or_else(|| format!("block count {n} at byte {at}"))?.unsigned_abs()
                }
            };
            if item_min == 0 {
                self.zero_size_items = self.zero_size_items.saturating_add(count);
                if self.zero_size_items > MAX_ZERO_SIZE_ITEMS {
                    return Err(format!("more than {MAX_ZERO_SIZE_ITEMS} items of no bytes (block of {count} at byte {at})"));
                }
            } else if count > self.left() / item_min {
                return Err(format!(
                    "block at byte {at} claims {count} items of at least {item_min} bytes but {} bytes are left",
                    self.left()
                ));
            }
            for _ in 0..count {
                if keyed {
                    self.sized("map key")?;
                }
                self.value(item, ns, depth + 1)?;
            }
        }
    }

    /// The fewest bytes a value of `schema` takes.
    fn min_size(&self, schema: &Schema, ns: &Namespace, depth: usize) -> Result<u64, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nest deeper than {MAX_DEPTH}"));
        }
        Ok(match schema {
            Schema::Null => 0,
            Schema::Float => 4,
            Schema::Double => 8,
            Schema::Duration => 12,
            Schema::Fixed(f) => f.size as u64,
            Schema::Decimal(d) => self.min_size(&d.inner, ns, depth + 1)?,
            Schema::Union(u) => {
                let mut least = u64::MAX;
                for v in u.variants() {
                    least = least.min(self.min_size(v, ns, depth + 1)?);
                }
                least.saturating_add(1)
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let ns = name.fully_qualified_name(ns).namespace;
                let mut sum = 0u64;
                for f in fields {
                    sum = sum.saturating_add(self.min_size(&f.schema, &ns, depth + 1)?);
                }
                sum
            }
            Schema::Ref { name } => {
                let (schema, ns) = self.resolve(name, ns)?;
                self.min_size(schema, &ns, depth + 1)?
            }
            // A varint, a length, an enum index, the 0 that ends an array or a map.
            _ => 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(n: i64) -> Vec<u8> {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn run(schema: &str, body: &[u8]) -> Result<(), String> {
        let schema = Schema::parse_str(schema).unwrap();
        check(1, &schema, body).map_err(|e| e.to_string())
    }

    fn ok(schema: &str, body: &[u8]) {
        run(schema, body).unwrap_or_else(|e| panic!("{schema} {body:?}: {e}"));
        let schema = Schema::parse_str(schema).unwrap();
        apache_avro::from_avro_datum(&schema, &mut &body[..], None).unwrap();
    }

    fn refused(schema: &str, body: &[u8], why: &str) {
        let err = run(schema, body).unwrap_err();
        assert!(err.contains(why), "{err}");
    }

    #[test]
    fn varints_zigzag_as_in_avro() {
        for n in [0, 1, -1, 63, -64, 64, i64::from(i32::MAX), i64::MIN, i64::MAX] {
            let bytes = zigzag(n);
            let mut w = Walk { names: &HashMap::new(), body: &bytes, pos: 0, zero_size_items: 0 };
            assert_eq!(w.long(), Ok(n));
            assert_eq!(w.pos, bytes.len());
        }
        refused(r#""long""#, &[0xff; 11], "longer than 10 bytes");
        refused(r#""long""#, &[0x80], "ends inside a varint");
    }

    #[test]
    fn lengths_past_the_end_are_refused() {
        ok(r#""string""#, &[4, b'a', b'b']);
        refused(r#""string""#, &[6, b'a', b'b'], "string of 3 bytes at byte 1 but 2 bytes are left");
        refused(r#""bytes""#, &zigzag(1 << 40), "bytes of 1099511627776 bytes");
        refused(r#""bytes""#, &zigzag(-2), "negative");
        refused(r#"{"type": "fixed", "name": "F", "size": 1000000}"#, &[1, 2], "fixed of 1000000 bytes");
        refused(r#""double""#, &[0; 7], "double");
        refused(r#""string""#, &[0, 0], "1 bytes left after the record");
    }

    #[test]
    fn block_counts_must_fit_the_bytes_left() {
        let map = r#"{"type": "map", "values": "long"}"#;
        ok(map, &[4, 2, b'a', 2, 2, b'b', 4, 0]);
        // Two entries of at least 2 bytes (key length + long) cannot fit in 3 bytes.
        refused(map, &[4, 2, b'a', 2], "claims 2 items of at least 2 bytes but 3 bytes are left");
        // A negative count: its block size follows.
        ok(map, &[3, 12, 2, b'a', 2, 2, b'b', 4, 0]);
        refused(map, &[3, 100, 2, b'a', 2, 0], "has size 50");
        refused(map, &[zigzag(i64::MIN), vec![0]].concat(), "block count");
        let array = r#"{"type": "array", "items": "string"}"#;
        let mut body = zigzag(1 << 29);
        body.extend([2, b'a', 0]);
        refused(array, &body, "claims 536870912 items of at least 1 bytes");
    }

    #[test]
    fn items_of_no_bytes_are_capped() {
        let nulls = r#"{"type": "array", "items": "null"}"#;
        let mut body = zigzag(MAX_ZERO_SIZE_ITEMS as i64);
        body.push(0);
        ok(nulls, &body);
        let mut body = zigzag(MAX_ZERO_SIZE_ITEMS as i64 / 2);
        body.extend(zigzag(MAX_ZERO_SIZE_ITEMS as i64 / 2 + 1));
        body.push(0);
        refused(nulls, &body, "more than 4096 items of no bytes");
        let empty = r#"{"type": "array", "items": {"type": "record", "name": "E", "fields": []}}"#;
        let mut body = zigzag(1 << 40);
        body.push(0);
        refused(empty, &body, "more than 4096 items of no bytes");
    }

    #[test]
    fn unions_enums_and_references_are_checked() {
        let schema = r#"{"type": "record", "name": "R", "namespace": "n", "fields": [
            {"name": "a", "type": ["null", {"type": "enum", "name": "E", "symbols": ["x", "y"]}]},
            {"name": "b", "type": "E"}
        ]}"#;
        ok(schema, &[2, 2, 0]);
        refused(schema, &[4, 0, 0], "union index 2 of 2 variants");
        refused(schema, &[1, 0, 0], "union index -1");
        refused(schema, &[2, 4, 0], "enum index 2 of 2 symbols");
        refused(schema, &[0, 6], "enum index 3 of 2 symbols");
    }

    #[test]
    fn recursion_is_bounded() {
        let list = r#"{"type": "record", "name": "L", "fields": [{"name": "next", "type": ["null", "L"]}]}"#;
        ok(list, &[2, 2, 0]);
        let mut deep = vec![2u8; 1000];
        deep.push(0);
        refused(list, &deep, "nest deeper than 64");
        let endless = r#"{"type": "record", "name": "A", "fields": [{"name": "a", "type": {"type": "array", "items": "A"}}]}"#;
        refused(endless, &[2; 1000], "nest deeper than 64");
    }
}
