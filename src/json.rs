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

/// A member of a JSON object as Go's `encoding/json` finds it: the exact key, else any
/// key equal ignoring ASCII case (Consul's clients send `lockdelay` as often as
/// `LockDelay`).
pub fn field<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}
