//! How `watch` prints a frame: one line per message, either readable
//! (`CALL_DELIVERED_EVENT monitor_id=0 ... CONNECTION_DEVID="T12"`: fixed
//! fields by name, floating fields by protocol tag name) or one JSON object
//! (`{"type":"CALL_DELIVERED_EVENT","fields":{...}}`, a repeated field as an
//! array) for jq. No I/O here.

use serde_json::{json, Map, Value};

use crate::proto::{decode_frame, DecodeOptions, Field, FieldValue, Message, Version};

/// Decode leniently: watch shows what the server sent, list counts and all.
fn decode(frame: &[u8], version: Version) -> Result<Message, String> {
    decode_frame(frame, version, DecodeOptions::COUNTS_UNCHECKED)
        .map(|(m, _)| m)
        .map_err(|e| e.to_string())
}

fn message_type(frame: &[u8]) -> u32 {
    frame
        .get(4..8)
        .map_or(0, |t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
}

/// `TYPE_NAME field=value ...`
pub fn readable(frame: &[u8], version: Version) -> String {
    let message = match decode(frame, version) {
        Ok(m) => m,
        Err(e) => {
            return format!(
                "UNDECODABLE type={} len={} error={e:?}",
                message_type(frame),
                frame.len()
            )
        }
    };
    let mut line = message.name().into_owned();
    if let Message::Raw(raw) = &message {
        line.push_str(&format!(" len={}", raw.body.len()));
    }
    message.visit(version, &mut |field: Field<'_>| {
        line.push(' ');
        line.push_str(field.wire_name());
        line.push('=');
        line.push_str(&field.value.to_string());
    });
    line
}

/// `{"type":"TYPE_NAME","fields":{...}}`; a field that repeats (parties,
/// named variables) becomes an array in order.
pub fn json(frame: &[u8], version: Version) -> String {
    let message = match decode(frame, version) {
        Ok(m) => m,
        Err(e) => {
            return json!({"type": format!("TYPE_{}", message_type(frame)), "error": e})
                .to_string();
        }
    };
    // Each name once, its values in wire order.
    let mut named: Vec<(&'static str, Vec<Value>)> = Vec::new();
    message.visit(version, &mut |field: Field<'_>| {
        let value = json_value(field.value);
        match named
            .iter_mut()
            .find(|(name, _)| *name == field.wire_name())
        {
            Some((_, values)) => values.push(value),
            None => named.push((field.wire_name(), vec![value])),
        }
    });
    let mut fields = Map::new();
    for (name, mut values) in named {
        let value = match values.len() {
            1 => values.remove(0),
            _ => Value::Array(values),
        };
        fields.insert(name.to_string(), value);
    }
    json!({"type": message.name(), "fields": Value::Object(fields)}).to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_value(value: FieldValue<'_>) -> Value {
    match value {
        FieldValue::Int(i) => json!(i),
        FieldValue::Str(s) => json!(text(s)),
        FieldValue::Bytes(b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        FieldValue::NamedVar { name, value } => json!({"name": text(name), "value": text(value)}),
        FieldValue::NamedArray { index, name, value } => {
            json!({"index": index, "name": text(name), "value": text(value)})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::group::Party;
    use crate::proto::msg::{CallConferencedEvent, CallDeliveredEvent};

    fn v24() -> Version {
        Version::MAX
    }

    fn delivered() -> Vec<u8> {
        Message::from(CallDeliveredEvent {
            peripheral_id: 5000,
            connection_call_id: 77,
            connection_device_id: Some("T12".into()),
            ..Default::default()
        })
        .to_frame(v24())
        .unwrap()
    }

    #[test]
    fn readable_line_names_the_type_and_fields() {
        let line = readable(&delivered(), v24());
        assert!(line.starts_with("CALL_DELIVERED_EVENT "), "{line}");
        assert!(line.contains(" peripheral_id=5000"), "{line}");
        assert!(line.contains(" connection_call_id=77"), "{line}");
        assert!(line.contains("=\"T12\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn json_line_parses_and_keeps_values() {
        let line = json(&delivered(), v24());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "CALL_DELIVERED_EVENT");
        assert_eq!(v["fields"]["peripheral_id"], 5000);
        assert!(v["fields"]
            .as_object()
            .unwrap()
            .values()
            .any(|x| x == "T12"));
    }

    #[test]
    fn repeated_fields_become_arrays() {
        let party = |d: &str| Party {
            call_id: Some(1),
            device_id_type: Some(0),
            device_id: Some(d.into()),
        };
        let frame = Message::from(CallConferencedEvent {
            num_parties: 2,
            parties: vec![party("3001"), party("3002")],
            ..Default::default()
        })
        .to_frame(v24())
        .unwrap();
        let v: Value = serde_json::from_str(&json(&frame, v24())).unwrap();
        let fields = v["fields"].as_object().unwrap();
        let devices = fields
            .values()
            .find(|x| x.as_array().is_some_and(|a| a.contains(&json!("3001"))))
            .expect("an array with both parties");
        assert_eq!(devices, &json!(["3001", "3002"]));
    }

    #[test]
    fn garbage_is_reported_not_fatal() {
        let mut frame = delivered();
        frame.truncate(20);
        frame[..4].copy_from_slice(&12u32.to_be_bytes());
        assert!(readable(&frame, v24()).starts_with("UNDECODABLE type=9"));
        let v: Value = serde_json::from_str(&json(&frame, v24())).unwrap();
        assert!(v["error"].is_string());
    }
}
