//! A message's headers as the handler sees them, read once into one buffer.

use smallvec::SmallVec;

/// The headers of a Kafka message as (name, UTF-8 value) pairs, in their order, kept in
/// one buffer: reading a message's headers costs one allocation, not two per header (the
/// spans of up to [`INLINE`] headers, as many as the contract's, live inline).
/// A value that is not UTF-8 is read lossily; a header without a value reads as `""`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MessageHeaders {
    text: String,
    /// Per header: where its name starts, where its value starts, where it ends.
    spans: SmallVec<[(u32, u32, u32); INLINE]>,
}

/// Headers whose spans need no allocation of their own.
const INLINE: usize = 10;

impl MessageHeaders {
    /// No headers.
    pub fn new() -> MessageHeaders {
        MessageHeaders::default()
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        let value_start = self.text.len();
        self.text.push_str(value);
        let at = |n: usize| u32::try_from(n).expect("headers over 4 GiB");
        self.spans.push((at(start), at(value_start), at(self.text.len())));
    }

    /// The headers in their order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.spans.iter().map(|&(n, v, e)| (&self.text[n as usize..v as usize], &self.text[v as usize..e as usize]))
    }

    /// The value of the first header named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// How many headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The headers as owned pairs.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// The headers of a fetched message. Names and values are copied into one buffer
    /// whose text is checked in one pass (short strings checked one by one cost a call
    /// each); only a message with a value that is not UTF-8 is read header by header.
    pub(crate) fn of(headers: &impl rdkafka::message::Headers) -> MessageHeaders {
        let mut bytes = Vec::with_capacity(256);
        let mut spans = SmallVec::with_capacity(headers.count());
        let at = |n: usize| u32::try_from(n).expect("headers over 4 GiB");
        for h in headers.iter() {
            let start = bytes.len();
            bytes.extend_from_slice(h.key.as_bytes());
            let value_start = bytes.len();
            bytes.extend_from_slice(h.value.unwrap_or_default());
            spans.push((at(start), at(value_start), at(bytes.len())));
        }
        // Every name is UTF-8 and begins with no continuation byte, so the whole is UTF-8
        // exactly when every value is, and each span starts and ends on a character.
        match String::from_utf8(bytes) {
            Ok(text) => MessageHeaders { text, spans },
            Err(_) => MessageHeaders::of_lossy(headers),
        }
    }

    /// [`MessageHeaders::of`] header by header, each value read lossily.
    fn of_lossy(headers: &impl rdkafka::message::Headers) -> MessageHeaders {
        let mut out = MessageHeaders { text: String::with_capacity(256), spans: SmallVec::with_capacity(headers.count()) };
        for h in headers.iter() {
            out.push(h.key, &String::from_utf8_lossy(h.value.unwrap_or_default()));
        }
        out
    }
}

impl std::fmt::Debug for MessageHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for MessageHeaders {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> MessageHeaders {
        let mut out = MessageHeaders::new();
        for (k, v) in iter {
            out.push(k.as_ref(), v.as_ref());
        }
        out
    }
}

impl<K: AsRef<str>, V: AsRef<str>> From<Vec<(K, V)>> for MessageHeaders {
    fn from(pairs: Vec<(K, V)>) -> MessageHeaders {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetched_headers_read_as_utf8_lossily_and_without_a_value_as_empty() {
        use rdkafka::message::{Header, OwnedHeaders};
        let fetched = OwnedHeaders::new()
            .insert(Header { key: "bad", value: Some(&[0xff, b'x'][..]) })
            .insert(Header { key: "none", value: None::<&[u8]> })
            .insert(Header { key: "ok", value: Some("rec_1") });
        let h = MessageHeaders::of(&fetched);
        assert_eq!(
            h.to_vec(),
            vec![("bad".into(), "\u{fffd}x".into()), ("none".into(), String::new()), ("ok".into(), "rec_1".into())]
        );
    }

    #[test]
    fn fetched_utf8_headers_read_as_they_are_and_one_bad_value_reads_only_itself_lossily() {
        use rdkafka::message::{Header, OwnedHeaders};
        let fetched = OwnedHeaders::new()
            .insert(Header { key: "event-id", value: Some("é-1") })
            .insert(Header { key: "none", value: None::<&[u8]> })
            .insert(Header { key: "ordering-key", value: Some("rec_ü") });
        let h = MessageHeaders::of(&fetched);
        assert_eq!(
            h.to_vec(),
            vec![("event-id".into(), "é-1".into()), ("none".into(), String::new()), ("ordering-key".into(), "rec_ü".into())]
        );
        // A value cut inside a character: bytes that would be UTF-8 only together with the
        // next header's are still this value's fault, read lossily, the others as they are.
        let cut = OwnedHeaders::new()
            .insert(Header { key: "a", value: Some(&"é".as_bytes()[..1]) })
            .insert(Header { key: "b", value: Some(&"é".as_bytes()[1..]) })
            .insert(Header { key: "c", value: Some("ok") });
        let h = MessageHeaders::of(&cut);
        assert_eq!(h.to_vec(), vec![("a".into(), "\u{fffd}".into()), ("b".into(), "\u{fffd}".into()), ("c".into(), "ok".into())]);
    }

    #[test]
    fn headers_keep_their_order_names_values_and_repeats() {
        let h: MessageHeaders = vec![("event-id", "e-1"), ("empty", ""), ("ordering-key", "rec_1"), ("event-id", "e-2")].into();
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("event-id"), Some("e-1"), "the first of a repeated name");
        assert_eq!(h.get("empty"), Some(""));
        assert_eq!(h.get("missing"), None);
        assert_eq!(
            h.to_vec(),
            vec![
                ("event-id".to_owned(), "e-1".to_owned()),
                ("empty".to_owned(), String::new()),
                ("ordering-key".to_owned(), "rec_1".to_owned()),
                ("event-id".to_owned(), "e-2".to_owned()),
            ]
        );
        assert_eq!(format!("{h:?}"), r#"[("event-id", "e-1"), ("empty", ""), ("ordering-key", "rec_1"), ("event-id", "e-2")]"#);
        assert!(MessageHeaders::new().is_empty());
    }
}
