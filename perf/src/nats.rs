//! The few pieces of the NATS text protocol the peer runs need, sans I/O:
//! CONNECT, SUB, PUB, PING/PONG and MSG parsing. The payload is the same CTI
//! frame the router forwards, so the swarm measures it the same way.

use crate::cti_client::Seen;

/// Subject every peer run publishes on.
pub const SUBJECT: &str = "ctiperf";
const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"ctirouter-perf\"}\r\n";

/// A subscriber's state.
#[derive(Debug, Default)]
pub struct NatsSub {
    opened: bool,
}

impl NatsSub {
    /// CONNECT, SUB, then PING: the PONG says the subscription is in place.
    pub fn hello(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(CONNECT);
        out.extend_from_slice(format!("SUB {SUBJECT} 1\r\nPING\r\n").as_bytes());
    }

    /// The next whole protocol message at the front of `buf` and its length.
    #[inline]
    pub fn next<'a>(&mut self, buf: &'a [u8], out: &mut Vec<u8>) -> Option<(Seen<'a>, usize)> {
        let eol = find_crlf(buf)?;
        let line = &buf[..eol];
        if line.starts_with(b"MSG ") {
            let size = last_number(line)?;
            let end = eol + 2 + size;
            if buf.len() < end + 2 {
                return None;
            }
            return Some((Seen::Event(&buf[eol + 2..end]), end + 2));
        }
        let seen = if line.starts_with(b"PING") {
            out.extend_from_slice(b"PONG\r\n");
            Seen::Other
        } else if line.starts_with(b"PONG") && !self.opened {
            self.opened = true;
            Seen::Opened
        } else if line.starts_with(b"-ERR") {
            Seen::Ended(0)
        } else {
            Seen::Other
        };
        Some((seen, eol + 2))
    }
}

/// The publisher's state.
#[derive(Debug, Default)]
pub struct NatsPub {
    pub ready: bool,
}

impl NatsPub {
    pub fn hello(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(CONNECT);
        out.extend_from_slice(b"PING\r\n");
    }

    /// Consume server lines (PING → PONG; the first PONG makes it ready).
    pub fn on_input(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        let mut used = 0;
        while let Some(eol) = find_crlf(&input[used..]) {
            let line = &input[used..used + eol];
            if line.starts_with(b"PING") {
                out.extend_from_slice(b"PONG\r\n");
            } else if line.starts_with(b"PONG") {
                self.ready = true;
            } else if line.starts_with(b"-ERR") {
                return Err(format!("nats: {}", String::from_utf8_lossy(line)));
            }
            used += eol + 2;
        }
        Ok(used)
    }

    /// What goes before a payload of `len` bytes.
    #[inline]
    pub fn begin(&self, len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(b"PUB ");
        out.extend_from_slice(SUBJECT.as_bytes());
        out.push(b' ');
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn end(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
    }
}

#[inline]
pub fn find_crlf(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let i = from + buf[from..].iter().position(|&b| b == b'\r')?;
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i);
        }
        if i + 1 >= buf.len() {
            return None;
        }
        from = i + 1;
    }
}

fn last_number(line: &[u8]) -> Option<usize> {
    let start = line.iter().rposition(|&b| b == b' ')? + 1;
    std::str::from_utf8(&line[start..]).ok()?.parse().ok()
}

#[inline]
pub fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_payload_is_cut_by_its_size() {
        let mut s = NatsSub::default();
        let mut out = Vec::new();
        let buf = b"INFO {}\r\nPONG\r\nMSG ctiperf 1 5\r\nhe\r\no\r\nPING\r\nMSG ctiperf 1 3\r\nab";
        let mut at = 0;
        let mut seen = Vec::new();
        while let Some((s2, used)) = s.next(&buf[at..], &mut out) {
            seen.push(format!("{s2:?}"));
            at += used;
        }
        assert_eq!(seen[1], "Opened");
        assert_eq!(seen[2], format!("{:?}", Seen::Event(b"he\r\no")));
        assert_eq!(out, b"PONG\r\n");
        assert_eq!(&buf[at..], b"MSG ctiperf 1 3\r\nab");
    }

    #[test]
    fn publish_frames_the_payload() {
        let p = NatsPub::default();
        let mut out = Vec::new();
        p.begin(250, &mut out);
        p.end(&mut out);
        assert_eq!(out, b"PUB ctiperf 250\r\n\r\n");
    }
}
