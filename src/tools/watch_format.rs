//! How `watch` prints a frame: one line per message, either readable
//! (`CALL_DELIVERED_EVENT monitor_id=0 ... CONNECTION_DEVID="T12"`: fixed
//! fields by name, floating fields by protocol tag name) or one JSON object
//! (`{"type":"CALL_DELIVERED_EVENT","fields":{...}}`, every field name in
//! snake_case, a repeated field as an array) for jq. No I/O here.

use serde_json::{json, Map, Value};

use crate::proto::{decode_frame, tags, DecodeOptions, Field, FieldValue, Message, Version};

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

/// One frame's line: [`json`] or [`readable`].
pub fn line(frame: &[u8], version: Version, json: bool) -> String {
    match json {
        true => self::json(frame, version),
        false => readable(frame, version),
    }
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
/// named variables) becomes an array in order. Every field name is
/// snake_case: a fixed field by its name (`peripheral_id`), a floating
/// field by its protocol tag name in lower case (`connection_devid` for
/// CONNECTION_DEVID), or `flt_` and that where the message has a fixed
/// field of the same name (AGENT_STATE_EVENT's `skill_group_number` is the
/// event's skill group, `flt_skill_group_number` the agent's list).
pub fn json(frame: &[u8], version: Version) -> String {
    let message = match decode(frame, version) {
        Ok(m) => m,
        Err(e) => {
            return json!({"type": format!("TYPE_{}", message_type(frame)), "error": e})
                .to_string();
        }
    };
    let mut visited: Vec<(Option<&'static str>, &'static str, Value)> = Vec::new();
    message.visit(version, &mut |field: Field<'_>| {
        let tag_name = field.tag.and_then(tags::name);
        visited.push((tag_name, field.name, json_value(field.value)));
    });
    let fixed: Vec<&str> = visited
        .iter()
        .filter(|(tag_name, ..)| tag_name.is_none())
        .map(|&(_, name, _)| name)
        .collect();
    // Each name once, its values in wire order.
    let mut named: Vec<(String, Vec<Value>)> = Vec::new();
    for (tag_name, name, value) in visited {
        let key = match tag_name {
            None => name.to_string(),
            Some(tag_name) => {
                let lower = tag_name.to_ascii_lowercase();
                match fixed.contains(&lower.as_str()) {
                    true => format!("flt_{lower}"),
                    false => lower,
                }
            }
        };
        match named.iter_mut().find(|(name, _)| *name == key) {
            Some((_, values)) => values.push(value),
            None => named.push((key, vec![value])),
        }
    }
    let mut fields = Map::new();
    for (name, mut values) in named {
        let value = match values.len() {
            1 => values.remove(0),
            _ => Value::Array(values),
        };
        fields.insert(name, value);
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
    use crate::proto::group::SkillGroup;
    use crate::proto::msg::{AgentStateEvent, CallConferencedEvent, CallDeliveredEvent};

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
        assert_eq!(v["fields"]["connection_devid"], "T12");
    }

    #[test]
    fn json_field_names_are_all_snake_case() {
        let frame = Message::from(AgentStateEvent {
            skill_group_number: 7,
            num_flt_skill_groups: 1,
            agent_id: Some("1001".into()),
            skill_groups: vec![SkillGroup {
                number: Some(8),
                ..Default::default()
            }],
            ..Default::default()
        })
        .to_frame(v24())
        .unwrap();
        let v: Value = serde_json::from_str(&json(&frame, v24())).unwrap();
        let fields = v["fields"].as_object().unwrap();
        for name in fields.keys() {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
        assert_eq!(fields["agent_id"], "1001");
        assert_eq!(fields["skill_group_number"], 7, "the fixed field");
        assert_eq!(fields["flt_skill_group_number"], 8, "the floating one");
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
