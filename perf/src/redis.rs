//! The few pieces of RESP the peer runs need, sans I/O: SUBSCRIBE and the
//! pushed `message` arrays for subscribers, PUBLISH and its integer replies
//! for the publisher.

use crate::cti_client::Seen;
use crate::nats::{find_crlf, push_decimal};

/// Channel every peer run publishes on.
pub const CHANNEL: &str = "ctiperf";

/// A subscriber's state.
#[derive(Debug, Default)]
pub struct RedisSub;

impl RedisSub {
    pub fn hello(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"*2\r\n$9\r\nSUBSCRIBE\r\n");
        bulk(CHANNEL.as_bytes(), out);
    }

    /// The next whole RESP value at the front of `buf` and its length.
    #[inline]
    pub fn next<'a>(&mut self, buf: &'a [u8], _out: &mut Vec<u8>) -> Option<(Seen<'a>, usize)> {
        let mut parts: [&[u8]; 3] = [&[]; 3];
        let (n, used) = parse_array(buf, &mut parts)?;
        let seen = match (n, parts[0]) {
            (3, b"message") => Seen::Event(parts[2]),
            (3, b"subscribe") => Seen::Opened,
            (_, _) if buf.first() == Some(&b'-') => Seen::Ended(0),
            _ => Seen::Other,
        };
        Some((seen, used))
    }
}

/// One RESP value: an array of up to 3 bulk strings / integers (pub/sub
/// pushes), or a simple value. Returns the element count and bytes used.
fn parse_array<'a>(buf: &'a [u8], parts: &mut [&'a [u8]; 3]) -> Option<(usize, usize)> {
    let eol = find_crlf(buf)?;
    match buf.first()? {
        b'*' => {
            let n: usize = std::str::from_utf8(&buf[1..eol]).ok()?.parse().ok()?;
            let mut at = eol + 2;
            for i in 0..n {
                let (item, used) = parse_item(&buf[at..])?;
                if i < parts.len() {
                    parts[i] = item;
                }
                at += used;
            }
            Some((n, at))
        }
        _ => Some((0, eol + 2)),
    }
}

/// A bulk string (`$len\r\nbytes\r\n`) or a one-line value (`:1\r\n`).
fn parse_item(buf: &[u8]) -> Option<(&[u8], usize)> {
    let eol = find_crlf(buf)?;
    if buf.first()? != &b'$' {
        return Some((&buf[1..eol], eol + 2));
    }
    let len: usize = std::str::from_utf8(&buf[1..eol]).ok()?.parse().ok()?;
    let end = eol + 2 + len;
    if buf.len() < end + 2 {
        return None;
    }
    Some((&buf[eol + 2..end], end + 2))
}

fn bulk(data: &[u8], out: &mut Vec<u8>) {
    out.push(b'$');
    push_decimal(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The publisher: PUBLISH needs no handshake; its replies are counted.
#[derive(Debug, Default)]
pub struct RedisPub {
    pub nr_replies: u64,
}

impl RedisPub {
    pub fn on_input(&mut self, input: &[u8]) -> Result<usize, String> {
        let mut used = 0;
        while let Some(eol) = find_crlf(&input[used..]) {
            if input[used] == b'-' {
                let line = &input[used..used + eol];
                return Err(format!("redis: {}", String::from_utf8_lossy(line)));
            }
            self.nr_replies += 1;
            used += eol + 2;
        }
        Ok(used)
    }

    #[inline]
    pub fn begin(&self, len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
        bulk(CHANNEL.as_bytes(), out);
        out.push(b'$');
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn end(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_message_yields_its_payload() {
        let mut s = RedisSub;
        let mut out = Vec::new();
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$7\r\nctiperf\r\n:1\r\n";
        let (seen, used) = s.next(sub, &mut out).unwrap();
        assert_eq!((seen, used), (Seen::Opened, sub.len()));
        let msg = b"*3\r\n$7\r\nmessage\r\n$7\r\nctiperf\r\n$4\r\na\r\nb\r\n";
        let (seen, used) = s.next(msg, &mut out).unwrap();
        assert_eq!((seen, used), (Seen::Event(b"a\r\nb"), msg.len()));
        assert!(s.next(&msg[..msg.len() - 1], &mut out).is_none());
    }

    #[test]
    fn publish_is_a_three_element_array() {
        let p = RedisPub::default();
        let mut out = Vec::new();
        p.begin(2, &mut out);
        out.extend_from_slice(b"hi");
        p.end(&mut out);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$7\r\nctiperf\r\n$2\r\nhi\r\n");
    }
}
