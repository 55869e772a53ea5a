//! The client-op parser harness, shared by the cargo-fuzz target `parse_client` and the
//! stable property test `tests/fuzz_harness.rs`. The parser runs with small limits,
//! fed in two reads at an input-chosen split: it must never panic, and a stream that
//! parsed must re-encode to ops that parse back to the same values.

use bytes::BytesMut;
use infinistream_protocol::{ClientParser, HeaderMap, Limits, ServerParser};

/// Runs the parser on `data` (its first byte picks the split); panics only on a bug.
pub fn run(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let parser = ClientParser::new(Limits {
        max_control_line: 256,
        max_payload: 4096,
    });
    let cut = usize::from(cut).min(data.len());
    let mut buf = BytesMut::new();
    let mut ops = Vec::new();
    'outer: for part in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(part);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
    let mut wire = BytesMut::new();
    for op in &ops {
        op.encode(&mut wire);
    }
    let lenient = ClientParser::new(Limits {
        max_control_line: 1 << 16,
        max_payload: 1 << 20,
    });
    for op in &ops {
        match lenient.parse(&mut wire) {
            Ok(Some(again)) => assert_eq!(&again, op),
            other => panic!("re-encoded op did not parse: {other:?}"),
        }
    }
    let _ = HeaderMap::parse(data);
    let _ = ServerParser::new(256).parse(&mut BytesMut::from(data));
}
