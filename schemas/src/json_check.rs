//! Whether a JSON text parses as a [`serde_json::Value`], without building the value: how
//! the direct decoder validates a `JsonText` field value it does not build yet.
//!
//! It runs serde_json's own parser with a visitor that accepts what `Value`'s accepts and
//! keeps nothing, so the two agree on every text: the same syntax, escapes, number range,
//! recursion limit and trailing characters. One rule of `Value`'s visitor is mirrored by
//! hand: with serde_json's `raw_value` feature (enabled by other crates of a build, so not
//! in every build of this one), an object whose first key is serde_json's raw-value token
//! is read as the JSON text of its string value, and must have no other entry.
//!
//! Before serde_json, a one-pass reader accepts the plain texts field values nearly always
//! are ([`plainly_valid`]: no escapes, exponents, long numbers, deep nesting or `$` keys),
//! all of which `Value` accepts too; any other text goes to serde_json. The tests compare
//! both with `Value` on hand-picked and generated texts.

use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value as Json;

/// `serde_json::from_str::<serde_json::Value>(text).is_ok()`, without allocating, for the
/// bytes of a `text` checked as UTF-8 already (the plain reader needs no `&str`: only
/// serde_json's path, for texts outside the plain subset, makes one).
pub(crate) fn parses(text: &[u8]) -> bool {
    plainly_valid(text) || std::str::from_utf8(text).is_ok_and(|text| serde_json::from_str::<Any>(text).is_ok())
}

/// Nesting deeper than this is left to serde_json (its limit is 127).
const PLAIN_DEPTH: u32 = 64;
/// Longer numbers are left to serde_json (no number this long can be out of range).
const PLAIN_NUMBER: usize = 20;

/// Whether `text` is JSON of a plain subset that `Value` certainly accepts: strings without
/// escapes or control characters, numbers without exponents of at most
/// [`PLAIN_NUMBER`] characters, nesting up to [`PLAIN_DEPTH`], no object key starting
/// with `$` (serde_json's raw-value token does). What field values nearly always are, read
/// in one pass without serde's machinery; `false` says nothing (serde_json decides).
fn plainly_valid(text: &[u8]) -> bool {
    let mut p = Plain { s: text, i: 0 };
    p.ws();
    if !p.value(0) {
        return false;
    }
    p.ws();
    p.i == text.len()
}

/// The plain-subset reader of [`plainly_valid`]: `false` as soon as it leaves the subset.
struct Plain<'a> {
    s: &'a [u8],
    i: usize,
}

impl Plain<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let here = self.peek() == Some(b);
        self.i += usize::from(here);
        here
    }

    /// serde_json's whitespace.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn value(&mut self, depth: u32) -> bool {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'[') => depth < PLAIN_DEPTH && self.array(depth + 1),
            Some(b'{') => depth < PLAIN_DEPTH && self.object(depth + 1),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    fn word(&mut self, word: &[u8]) -> bool {
        let here = self.s[self.i..].starts_with(word);
        self.i += if here { word.len() } else { 0 };
        here
    }

    /// A string without escapes or control characters (the text is UTF-8 already).
    fn string(&mut self) -> bool {
        let from = self.i + 1;
        match self.s[from..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) {
            Some(n) if self.s[from + n] == b'"' => {
                self.i = from + n + 1;
                true
            }
            _ => false,
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)?`, short, and not followed by a digit or an
    /// exponent.
    fn number(&mut self) -> bool {
        let start = self.i;
        self.eat(b'-');
        if !self.eat(b'0') && (!matches!(self.peek(), Some(b'1'..=b'9')) || self.digits() == 0) {
            return false;
        }
        if self.eat(b'.') && self.digits() == 0 {
            return false;
        }
        !matches!(self.peek(), Some(b'0'..=b'9' | b'e' | b'E')) && self.i - start <= PLAIN_NUMBER
    }

    fn array(&mut self, depth: u32) -> bool {
        self.items(b']', |p| p.value(depth))
    }

    fn object(&mut self, depth: u32) -> bool {
        self.items(b'}', |p| {
            // A key that could be serde_json's raw-value token is left to serde_json.
            if p.peek() != Some(b'"') || p.s.get(p.i + 1) == Some(&b'$') || !p.string() {
                return false;
            }
            p.ws();
            if !p.eat(b':') {
                return false;
            }
            p.ws();
            p.value(depth)
        })
    }

    /// The items of an array or object after its opening bracket: `item` each, separated
    /// by commas, up to `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> bool) -> bool {
        self.i += 1;
        self.ws();
        if self.eat(close) {
            return true;
        }
        loop {
            if !item(self) {
                return false;
            }
            self.ws();
            if self.eat(close) {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
            self.ws();
        }
    }
}

/// serde_json's `raw_value` token (`serde_json::raw::TOKEN`, not public).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Whether this build's serde_json reads the raw-value token as `Value`'s visitor does with
/// `raw_value` on.
fn raw_value_token_is_special() -> bool {
    static SPECIAL: OnceLock<bool> = OnceLock::new();
    *SPECIAL.get_or_init(|| serde_json::from_str::<Json>(&format!(r#"{{"{RAW_VALUE_TOKEN}": "7"}}"#)).is_ok_and(|v| v == 7))
}

/// Any JSON value, checked and dropped.
struct Any;

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Any, D::Error> {
        deserializer.deserialize_any(Any)
    }
}

impl<'de> Visitor<'de> for Any {
    type Value = Any;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_str<E>(self, _: &str) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_none<E>(self) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Any, D::Error> {
        Any::deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Any, E> {
        Ok(Any)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
        while seq.next_element::<Any>()?.is_some() {}
        Ok(Any)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
        match map.next_key_seed(Key)? {
            None => {}
            Some(true) if raw_value_token_is_special() => {
                // As `Value`: the string value is parsed as JSON text of its own.
                map.next_value_seed(RawText)?;
            }
            Some(_) => {
                map.next_value::<Any>()?;
                while map.next_entry_seed(Key, PhantomData::<Any>)?.is_some() {}
            }
        }
        Ok(Any)
    }
}

/// An object key, read as `Value` reads it (a string); whether it is the raw-value token.
#[derive(Clone, Copy)]
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == RAW_VALUE_TOKEN)
    }
}

/// The string value of a raw-value object, which must be JSON text.
struct RawText;

impl<'de> DeserializeSeed<'de> for RawText {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for RawText {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("raw value")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        serde_json::from_str::<Any>(text).map(drop).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(text: &str) {
        let want = serde_json::from_str::<Json>(text).is_ok();
        assert_eq!(parses(text.as_bytes()), want, "{text:?}: Value {}", if want { "parses it" } else { "refuses it" });
    }

    #[test]
    fn agrees_with_value_on_edge_cases() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep_objects = |n: usize| format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        let token = RAW_VALUE_TOKEN;
        let escaped_token = token.replace('R', "\\u0052");
        for text in [
            "",
            " ",
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1.5",
            "-1e-7",
            "1e400",
            "-1e400",
            "1e-400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "01",
            "1.",
            ".5",
            "+1",
            "NaN",
            "Infinity",
            "\"\"",
            "\"a\\u00e9\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\\ud83d\\ude00\"",
            "\"\\x\"",
            "\"a\u{1}b\"",
            "\"tab\there\"",
            "[]",
            "[1,]",
            "[1 2]",
            "{}",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{\"a\":1,\"a\":2}",
            "{\"\\ud800\":1}",
            "[1] x",
            "[1] ",
            "\u{feff}[1]",
            "[1]\n",
            "{\"a\":[{\"b\":null}]}",
            "[",
            "{\"a\":",
            "\"abc",
            "nul",
            "truex",
        ] {
            same(text);
        }
        for n in [1, 100, 127, 128, 129, 1000] {
            same(&deep(n));
            same(&deep_objects(n));
        }
        for text in [
            format!(r#"{{"{token}": "[1, 2]"}}"#),
            format!(r#"{{"{token}": "[1, 2"}}"#),
            format!(r#"{{"{token}": 5}}"#),
            format!(r#"{{"{token}": "1", "b": 2}}"#),
            format!(r#"{{"b": 2, "{token}": 5}}"#),
            format!(r#"{{"{escaped_token}": "[1]"}}"#),
            format!(r#"{{"{escaped_token}": null}}"#),
            format!(r#"[{{"{token}": "{{\"{token}\": \"x\"}}"}}]"#),
            format!(r#"{{"{token}": "{}"}}"#, deep(200)),
        ] {
            same(&text);
        }
    }

    #[test]
    fn plain_texts_are_read_without_serde_json_and_the_rest_left_to_it() {
        for text in [
            r#"["customer","vip"]"#,
            r#"{"city":"Lyon","zip":"69001"}"#,
            " [ 1 , -0 , 0.25 , -12.5 , true , false , null , \"é ☃\" , [] , {} ] ",
            r#"{"a":{"b":[{"c":[1,2,{"d":"x"}]}]}}"#,
            "-1234567890123456789",
            "12345678901234567.25",
        ] {
            assert!(plainly_valid(text.as_bytes()), "{text:?} is plain");
            same(text);
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        for text in [
            "\"a\\nb\"".to_owned(),
            "1e3".into(),
            "123456789012345678901".into(),
            r#"{"$serde_json::private::RawValue":"1"}"#.into(),
            r#"{"$other":1}"#.into(),
            deep(65),
            "01".into(),
            "\u{feff}1".into(),
            "[1,]".into(),
        ] {
            assert!(!plainly_valid(text.as_bytes()), "{text:?} is left to serde_json");
            same(&text);
        }
        assert!(plainly_valid(deep(64).as_bytes()));
    }

    #[test]
    fn agrees_with_value_on_generated_and_damaged_texts() {
        // xorshift: failures reproduce.
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "\"k\"",
            "\"\\u00e9\"",
            "\"\\ud800\"",
            "1",
            "-2.5e3",
            "1e999",
            "null",
            "true",
            " ",
            "\"",
            "\\",
            "x",
            "\"$serde_json::private::RawValue\"",
            "\"[1]\"",
            "0.1",
            "{\"a\":",
            "[[",
        ];
        for _ in 0..20_000 {
            let n = 1 + next() % 12;
            let text: String = (0..n).map(|_| pieces[(next() % pieces.len() as u64) as usize]).collect();
            same(&text);
        }
    }
}
