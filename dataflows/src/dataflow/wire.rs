//! `Wire<T>`: a record that crosses processes as JSON.
//!
//! timely encodes what an exchange sends to another process with bincode, which cannot carry
//! some of serde's shapes: flattened fields, skipped fields, internally tagged enums and
//! `serde_json::Value` (all of which the report and the parsed meta.json use, because they are
//! also written as JSON). Wrapping such a record in `Wire` makes bincode carry its JSON text
//! instead. Within one process timely moves records without encoding them, so this costs nothing
//! outside cluster mode.

use std::fmt;

use serde::de::{DeserializeOwned, Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wire<T>(pub T);

impl<T: Serialize> Serialize for Wire<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&json)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Wire<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonBytes<T>(std::marker::PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for JsonBytes<T> {
            type Value = Wire<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record as JSON bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
                serde_json::from_slice(bytes).map(Wire).map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Self::Value, E> {
                self.visit_bytes(&bytes)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Formats without a bytes type hand them over as a sequence of numbers.
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                serde_json::from_slice(&bytes).map(Wire).map_err(A::Error::custom)
            }
        }
        deserializer.deserialize_byte_buf(JsonBytes(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::failure::{Failure, FailureCause};
    use crate::report::{BlockOutcome, Outcome, Record};

    fn record() -> Record {
        Record::Block(BlockOutcome {
            block: "01DWJQ1R9XW3Z3WJ7A7HNGQRG1".into(),
            group: Some("0@17241709254077376921".into()),
            min_time: None,
            max_time: Some(10),
            outcome: Outcome::failed(Failure::new(FailureCause::Target, "gone")),
            bytes: Some(7),
            meta_modified: None,
            level: Some(2),
            labels: Some(std::sync::Arc::new([("cluster".to_string(), "eu1".to_string())].into())),
        })
    }

    #[test]
    fn a_report_record_crosses_timelys_codec_only_as_wire() {
        // timely encodes with bincode: the record's own shape (flattened, tagged, skipped fields)
        // does not survive it, which is why it travels as `Wire`.
        let bare = bincode::serialize(&record()).and_then(|b| bincode::deserialize::<Record>(&b));
        assert!(bare.is_err(), "bincode now carries a Record: Wire may be unneeded");
        let bytes = bincode::serialize(&Wire(record())).unwrap();
        assert_eq!(bincode::deserialize::<Wire<Record>>(&bytes).unwrap(), Wire(record()));
    }

    #[test]
    fn json_values_cross_as_wire() {
        let value = serde_json::json!({"indexStats": {"seriesMaxSize": 12}, "list": [1, "a", null]});
        let bytes = bincode::serialize(&Wire(value.clone())).unwrap();
        assert_eq!(bincode::deserialize::<Wire<serde_json::Value>>(&bytes).unwrap(), Wire(value));
    }

    /// A meta.json whose `thanos.index_stats` is `levels` nested arrays, so the document nests
    /// `levels + 2` deep; strings full of brackets beside it must not count.
    fn nested_meta(levels: usize) -> bytes::Bytes {
        const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";
        let value = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        bytes::Bytes::from(format!(
            r#"{{"ulid":"{ULID}","minTime":0,"maxTime":1,"version":1,
               "thanos":{{"labels":{{"a":"[[[{{\"\\}}"}},"source":"]]]","index_stats":{value}}}}}"#
        ))
    }

    #[test]
    fn the_deepest_accepted_meta_crosses_processes() {
        use crate::dataflow::operators::CommitBlock;
        use crate::model::block::SourceBlock;
        use crate::model::failure::{Failure, FailureCause};
        use crate::model::meta::{parse_meta, MetaError, MAX_META_DEPTH};
        const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

        assert!(matches!(parse_meta(ULID, nested_meta(MAX_META_DEPTH - 1)), Err(MetaError::Parse { .. })));
        let raw = parse_meta(ULID, nested_meta(MAX_META_DEPTH - 2)).unwrap();
        let failure = Failure::new(FailureCause::Source, "x");
        let block = SourceBlock::defective(ULID, raw, failure, &crate::model::group::Grouping::default());
        let sent = CommitBlock { queue: block.group.clone(), block };
        let bytes = bincode::serialize(&Wire(sent.clone())).unwrap();
        let Wire(received) = bincode::deserialize::<Wire<CommitBlock>>(&bytes).unwrap();
        assert_eq!(received.block, sent.block);
    }
}
