//! Decoding of Kubernetes protobuf request bodies for the few built-in types Go clients write
//! with protobuf: kubectl's generators (`kubectl create configmap|secret|namespace|
//! serviceaccount|token`) and Helm's release storage (Secrets, ConfigMaps), plus the
//! DeleteOptions their deletes carry.
//!
//! A body is the `k8s\0` magic followed by a `runtime.Unknown` envelope (type meta and the raw
//! message). The raw message is decoded with a small hand-written table of field numbers taken
//! from the upstream `generated.proto` files; unknown fields are skipped. Any other kind is
//! refused with 415, as JSON would have to be used for it. Responses are always JSON, which
//! client-go accepts by its Content-Type.

use crate::error::ApiError;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// Whether a body is a Kubernetes protobuf envelope.
pub fn is_protobuf(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    MapStrStr,
    MapStrBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

type Field = (u64, &'static str, Kind);

const OWNER_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "controller", Kind::Bool),
    (7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "generation", Kind::Int),
    (8, "creationTimestamp", Kind::Time),
    (9, "deletionTimestamp", Kind::Time),
    (10, "deletionGracePeriodSeconds", Kind::Int),
    (11, "labels", Kind::MapStrStr),
    (12, "annotations", Kind::MapStrStr),
    (13, "ownerReferences", Kind::RepMsg(OWNER_REF)),
    (14, "finalizers", Kind::RepStr),
];

const SECRET: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapStrBytes),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::MapStrStr),
    (5, "immutable", Kind::Bool),
];

const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapStrStr),
    (3, "binaryData", Kind::MapStrBytes),
    (4, "immutable", Kind::Bool),
];

const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "spec", Kind::Msg(&[(1, "finalizers", Kind::RepStr)])),
    (3, "status", Kind::Msg(&[(1, "phase", Kind::Str)])),
];

const LOCAL_REF: &[Field] = &[(1, "name", Kind::Str)];

const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (
        2,
        "secrets",
        Kind::RepMsg(&[
            (1, "kind", Kind::Str),
            (2, "namespace", Kind::Str),
            (3, "name", Kind::Str),
        ]),
    ),
    (3, "imagePullSecrets", Kind::RepMsg(LOCAL_REF)),
    (4, "automountServiceAccountToken", Kind::Bool),
];

const TOKEN_REQUEST: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (
        2,
        "spec",
        Kind::Msg(&[
            (1, "audiences", Kind::RepStr),
            (
                3,
                "boundObjectRef",
                Kind::Msg(&[
                    (1, "kind", Kind::Str),
                    (2, "apiVersion", Kind::Str),
                    (3, "name", Kind::Str),
                    (4, "uid", Kind::Str),
                ]),
            ),
            (4, "expirationSeconds", Kind::Int),
        ]),
    ),
];

const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", Kind::Int),
    (
        2,
        "preconditions",
        Kind::Msg(&[(1, "uid", Kind::Str), (2, "resourceVersion", Kind::Str)]),
    ),
    (3, "orphanDependents", Kind::Bool),
    (4, "propagationPolicy", Kind::Str),
    (5, "dryRun", Kind::RepStr),
];

fn schema_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        "TokenRequest" => TOKEN_REQUEST,
        "DeleteOptions" => DELETE_OPTIONS,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed() -> ApiError {
    ApiError::BadRequest("malformed protobuf body".to_string())
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(malformed)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(malformed())
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| malformed())?;
        let end = self.pos.checked_add(len).ok_or_else(malformed)?;
        let out = self.buf.get(self.pos..end).ok_or_else(malformed)?;
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> Result<(), ApiError> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.pos += 8,
            2 => {
                self.bytes()?;
            }
            5 => self.pos += 4,
            _ => return Err(malformed()),
        }
        if self.pos > self.buf.len() {
            return Err(malformed());
        }
        Ok(())
    }
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed())
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let mut r = Reader::new(b);
    let (mut key, mut value) = (String::new(), Value::String(String::new()));
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => key = text(r.bytes()?)?,
            (2, 2) => {
                let raw = r.bytes()?;
                value = if bytes_value {
                    json!(base64(raw))
                } else {
                    json!(text(raw)?)
                };
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

fn time(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut seconds = 0i64;
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => seconds = r.varint()? as i64,
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(jiff::Timestamp::from_second(seconds)
        .map(|t| json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null))
}

fn message(b: &[u8], schema: &[Field]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut out = Map::new();
    while !r.done() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some((_, name, kind)) = schema.iter().find(|(n, _, _)| *n == num) else {
            r.skip(wire)?;
            continue;
        };
        let name = name.to_string();
        match (kind, wire) {
            (Kind::Int, 0) => {
                out.insert(name, json!(r.varint()? as i64));
            }
            (Kind::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (Kind::Str, 2) => {
                out.insert(name, json!(text(r.bytes()?)?));
            }
            (Kind::Time, 2) => {
                out.insert(name, time(r.bytes()?)?);
            }
            (Kind::Msg(sub), 2) => {
                out.insert(name, message(r.bytes()?, sub)?);
            }
            (Kind::MapStrStr | Kind::MapStrBytes, 2) => {
                let (k, v) = map_entry(r.bytes()?, matches!(kind, Kind::MapStrBytes))?;
                if let Some(m) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    m.insert(k, v);
                }
            }
            (Kind::RepStr, 2) => {
                let s = text(r.bytes()?)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(json!(s));
                }
            }
            (Kind::RepMsg(sub), 2) => {
                let item = message(r.bytes()?, sub)?;
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(item);
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let mut r = Reader::new(envelope);
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.done() {
                    let t = tm.varint()?;
                    match (t >> 3, t & 7) {
                        (1, 2) => api_version = text(tm.bytes()?)?,
                        (2, 2) => kind = text(tm.bytes()?)?,
                        (_, wire) => tm.skip(wire)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    let schema = schema_for(&kind).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "kube-emulator decodes protobuf only for Secret, ConfigMap, Namespace, ServiceAccount, TokenRequest and DeleteOptions (got {kind}); send application/json"
        ))
    })?;
    let mut obj = message(raw, schema)?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_secret_envelope() {
        let meta = [
            field(1, b"rel"),
            field(11, &[field(1, b"owner"), field(2, b"helm")].concat()),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &[field(1, b"release"), field(2, b"hi")].concat()),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rel", "labels": {"owner": "helm"}}, "data": {"release": "aGk="}, "type": "helm.sh/release.v1"})
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
