//! Arbitrary bytes through the broker's record decoder.
//!
//! Asserted: nothing panics; a body that decodes re-encodes to a body that
//! decodes to the same record; that encoding is a fixed point (encoding the
//! record decoded from it gives it back) and never longer than the input;
//! encoding after other bytes appends the same bytes; and the index form of
//! the record (what the live path keeps) is the same either way.
#![no_main]

use event_broker_core::record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let record = match record::decode(data) {
        Ok(record) => record,
        Err(e) => {
            // Refusals are logged and shown to operators: they must print.
            let _ = e.to_string();
            return;
        }
    };
    let encoded = record.encode();
    assert!(encoded.len() <= data.len(), "re-encoding grew the record");
    let again = record::decode(&encoded).expect("a re-encoded record decodes");
    assert_eq!(again, record);
    assert_eq!(again.encode(), encoded, "encoding is not a fixed point");
    let mut out = b"before".to_vec();
    record.encode_into(&mut out);
    assert_eq!(&out[..6], b"before");
    assert_eq!(&out[6..], &encoded[..]);
    assert_eq!(record.into_index(), again.into_index());
});
