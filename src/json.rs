//! JSON as Go's `encoding/json` writes it, for Consul-compatible output.

use serde::Serialize;

/// Go's `json.MarshalIndent(v, "", indent)`.
pub fn to_pretty_json<T: Serialize + ?Sized>(value: &T, indent: &[u8]) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value
        .serialize(&mut ser)
        .expect("JSON encoding of plain data");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}
