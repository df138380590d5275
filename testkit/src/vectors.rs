//! The codec tests' helpers: loading the public sample vectors
//! (`tests/vectors/*.tsv`, format in `tests/vectors/README.md`; the
//! request-service file separately), turning a
//! decoded message into the vectors' `fields` JSON, and small frame-building
//! helpers at a version's tag width. No assertions about the codec live here.
//! Not glob-exported at the crate root: `use testkit::vectors::…`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ctirouter::proto::error::Invalid;
use ctirouter::proto::frame::{self, HEADER_LEN};
use ctirouter::proto::wire::FloatingFields;
use ctirouter::proto::{tags, DecodeOptions, Field, FieldValue, Message, Version};
use serde_json::{Map, Value};

use crate::frames::raw_frame;
use crate::v;

/// The two sample files, relative to the repository's root.
pub const VECTOR_FILES: [&str; 2] = [
    "tests/vectors/ged188-v19-samples.tsv",
    "tests/vectors/ged188-v20-samples.tsv",
];

/// The request-service samples (v19): the same frames as the rows of these
/// types in the v19 samples file, with docs/protocol.md §12 field names. Kept
/// apart from [`all_rows`] so no frame is counted twice.
pub const REQUEST_VECTOR_FILE: &str = "tests/vectors/ged188-v19-requests.tsv";

/// Tags whose values are JSON arrays in the vectors even with one element
/// (vectors README, "`fields` conventions").
pub const LIST_MEMBER_TAGS: &[&str] = &[
    "NAMED_VARIABLE",
    "NAMED_ARRAY",
    "CTI_CLIENT_SIGNATURE",
    "CTI_CLIENT_TIMESTAMP",
    "PARTY_CALLID",
    "PARTY_DEVID_TYPE",
    "PARTY_DEVID",
    "SKILL_GROUP_NUMBER",
    "SKILL_GROUP_ID",
    "SKILL_GROUP_PRIORITY",
    "SKILL_GROUP_STATE",
    "ATC_AGENT_ID",
    "AGENT_FLAGS",
    "ATC_AGENT_STATE",
    "ATC_STATE_DURATION",
    "CALL_CONN_CALLID",
    "CALL_CONN_DEVID_TYPE",
    "CALL_CONN_DEVID",
    "CALL_STATE",
    "SILENT_MONITOR_STATUS",
    "LIST_TEAM_ID",
    "LINE_HANDLE",
    "LINE_TYPE",
    "MULTI_LINE_AGENT_CONTROL",
];

/// One sample: a whole frame and the values it states.
#[derive(Debug, Clone)]
pub struct Row {
    /// File the row came from (for messages).
    pub file: &'static str,
    /// `name` column: protocol name, `#2` for a second sample of a type.
    pub name: String,
    pub message_type: u32,
    pub version: u32,
    pub frame: Vec<u8>,
    pub fields: Map<String, Value>,
}

impl Row {
    pub fn version(&self) -> Version {
        v(self.version)
    }

    /// The frame's body (bytes after the 8-byte header).
    pub fn body(&self) -> &[u8] {
        &self.frame[HEADER_LEN..]
    }

    /// Where the row comes from, for assertion messages.
    pub fn label(&self) -> String {
        format!("{} ({}, type {})", self.name, self.file, self.message_type)
    }
}

fn load(file: &'static str) -> Vec<Row> {
    let path = format!("{}/../{}", env!("CARGO_MANIFEST_DIR"), file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("name\ttype\tversion\tframe_hex\tfields"),
        "{path}: header"
    );
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "{path}: {line}");
            let fields = match serde_json::from_str(cols[4]) {
                Ok(Value::Object(map)) => map,
                other => panic!("{path}: {}: fields is not an object: {other:?}", cols[0]),
            };
            Row {
                file,
                name: cols[0].to_string(),
                message_type: cols[1].parse().expect("type column"),
                version: cols[2].parse().expect("version column"),
                frame: hex::decode(cols[3]).expect("frame_hex column"),
                fields,
            }
        })
        .collect()
}

/// Every row of both files, v19 file first, each in file order.
pub fn all_rows() -> &'static [Row] {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| VECTOR_FILES.iter().flat_map(|f| load(f)).collect())
}

/// Every row of the request-service file, in file order.
pub fn request_rows() -> &'static [Row] {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| load(REQUEST_VECTOR_FILE))
}

/// The row named `name` in the file of protocol version `version`.
pub fn row(version: u32, name: &str) -> &'static Row {
    all_rows()
        .iter()
        .find(|r| r.version == version && r.name == name)
        .unwrap_or_else(|| panic!("no v{version} row {name}"))
}

/// Frame-parse a row and decode its body at `version`.
pub fn decode_row(row: &Row, version: Version, options: DecodeOptions) -> Result<Message, Invalid> {
    let (parsed, used) =
        frame::parse(&row.frame).unwrap_or_else(|e| panic!("{}: {e}", row.label()));
    assert_eq!(used, row.frame.len(), "{}: one whole frame", row.label());
    assert_eq!(parsed.message_type, row.message_type, "{}", row.label());
    Message::decode(parsed.message_type, parsed.body, version, options)
}

/// Encode a whole frame at `version`, which must succeed.
pub fn encode(message: &Message, version: Version) -> Vec<u8> {
    message
        .to_frame(version)
        .unwrap_or_else(|e| panic!("{}: encode at v{version}: {e}", message.name()))
}

/// Fixed-field names compared loosely: `connection_call_id` ~ `ConnectionCallID`.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|&c| c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `name` is a docs/protocol.md §5.17 tag name the codec knows.
pub fn is_tag_name(name: &str) -> bool {
    static NAMES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| (0..=u16::MAX).filter_map(tags::name).collect())
        .contains(name)
}

/// An integer as the vectors write it: the unsigned wire value. Fixed and
/// floating i32 fields are widened signed, so a negative value is read back
/// as its 32-bit pattern.
fn unsigned(value: i64) -> Value {
    if value < 0 {
        Value::from(value as i32 as u32)
    } else {
        Value::from(value as u64)
    }
}

fn text(bytes: &[u8]) -> Value {
    Value::from(String::from_utf8_lossy(bytes).into_owned())
}

/// A decoded value in the vectors' JSON conventions.
pub fn json_value(value: &FieldValue<'_>) -> Value {
    match *value {
        FieldValue::Int(i) => unsigned(i),
        FieldValue::Str(s) => text(s),
        FieldValue::Bytes(b) => Value::from(hex::encode(b)),
        FieldValue::NamedVar { name, value } => {
            serde_json::json!({ "name": text(name), "value": text(value) })
        }
        FieldValue::NamedArray { index, name, value } => {
            serde_json::json!({ "index": index, "name": text(name), "value": text(value) })
        }
    }
}

/// Key of a decoded field: its normalised name (fixed) or tag name (floating).
fn field_key(field: &Field<'_>) -> String {
    match field.tag {
        None => normalise(field.name),
        Some(_) => field.wire_name().to_string(),
    }
}

/// Key of a `fields` entry, in the same space as [`field_key`]: tag names
/// stay, fixed-field names are normalised (they can never collide: tag names
/// are upper case, normalised names lower case).
fn expected_key(name: &str) -> String {
    if is_tag_name(name) {
        name.to_string()
    } else {
        normalise(name)
    }
}

/// The fields `message` carries at `version`, keyed as in [`expected_fields`];
/// list-member tags collect into arrays, any other key must appear once.
pub fn decoded_fields(message: &Message, version: Version) -> Map<String, Value> {
    let mut out = Map::new();
    let mut duplicate = None;
    message.visit(version, &mut |field| {
        let key = field_key(&field);
        let value = json_value(&field.value);
        if field.tag.is_some() && LIST_MEMBER_TAGS.contains(&key.as_str()) {
            let list = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            list.as_array_mut()
                .expect("list tag holds an array")
                .push(value);
        } else if out.insert(key.clone(), value).is_some() {
            duplicate = Some(key);
        }
    });
    assert_eq!(
        duplicate,
        None,
        "{}: a scalar field visited twice",
        message.name()
    );
    out
}

/// A row's `fields` with keys in the space of [`decoded_fields`].
pub fn expected_fields(row: &Row) -> Map<String, Value> {
    row.fields
        .iter()
        .map(|(k, value)| (expected_key(k), value.clone()))
        .collect()
}

/// Fields of the two maps that differ, for a readable assertion message.
pub fn field_diff(decoded: &Map<String, Value>, expected: &Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = decoded.keys().chain(expected.keys()).collect();
    keys.into_iter()
        .filter(|k| decoded.get(*k) != expected.get(*k))
        .map(|k| {
            format!(
                "{k}: decoded {:?}, expected {:?}",
                decoded.get(k),
                expected.get(k)
            )
        })
        .collect()
}

/// A floating field record at `version`'s width (length = `data.len()`).
pub fn floating_field(version: Version, tag: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if version.tag_width() == 2 {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    } else {
        out.push(tag as u8);
        out.push(data.len() as u8);
    }
    out.extend_from_slice(data);
    out
}

/// `frame` without the floating fields whose tag is in `drop` (the fixed
/// part is `fixed_len` bytes at `version`), MessageLength rewritten.
pub fn without_tags(frame: &[u8], fixed_len: usize, version: Version, drop: &[u16]) -> Vec<u8> {
    let body = &frame[HEADER_LEN..];
    let mut kept = body[..fixed_len].to_vec();
    let mut fields = FloatingFields::new(&body[fixed_len..], version);
    while let Some(f) = fields.next_field().expect("well-formed floating part") {
        if !drop.contains(&f.tag) {
            kept.extend_from_slice(&floating_field(version, f.tag, f.data));
        }
    }
    let message_type = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    raw_frame(message_type, &kept)
}
