//! Recorded stream files (`ctirouter record`, `serve --replay`): upstream
//! frames with the time each arrived, byte for byte as the CTI Server sent
//! them.
//!
//! # Format (version 1), every integer big-endian
//! ```text
//! header   "CTIREC"                     6 bytes, magic
//!          format version   u16         1
//!          protocol version u16         13..=24, the version every frame is encoded in
//!          start time       u64         wall clock at the start, ns since 1970-01-01 UTC
//! record   time             u64         ns since the start time (monotonic clock)
//!          frame length     u32         8..=12,500: the whole frame, header included
//!          frame            bytes       one GED-188 frame (MessageLength + 8 = frame length)
//! ```
//! Records follow each other to the end of the file; a file cut short in a
//! record is truncated, and the reader says at which byte. The recorder
//! stores OPEN_CONF and every event frame (not heartbeat or close answers),
//! so a replay knows the PG status the recording started with.
//!
//! The codec here is sans-IO ([`Header::parse`], [`parse_record`],
//! [`encode_record`]); [`Reader`] and [`Writer`] wrap any `Read`/`Write`.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto::frame::{self, HEADER_LEN as FRAME_HEADER_LEN, MAX_FRAME_LEN};
use crate::proto::Version;

/// The first bytes of every recording.
pub const MAGIC: &[u8; 6] = b"CTIREC";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the file header.
pub const HEADER_LEN: usize = 18;
/// Bytes before each frame: time (8) + frame length (4).
pub const RECORD_HEADER_LEN: usize = 12;

/// The file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The protocol version every recorded frame is encoded in.
    pub version: Version,
    /// Wall-clock start of the recording, ns since the Unix epoch.
    pub started_unix_ns: u64,
}

/// One record: a frame and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Time since the start of the recording.
    pub at: Duration,
    /// One whole frame (header included).
    pub frame: &'a [u8],
}

/// What is wrong with a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corrupt {
    BadMagic,
    UnsupportedFormat(u16),
    BadProtocolVersion(u16),
    /// The file ends inside its header.
    TruncatedHeader {
        available: usize,
    },
    /// The file ends inside a record.
    TruncatedRecord {
        needed: usize,
        available: usize,
    },
    /// A record's frame length is over the 12,500-byte limit (docs/protocol.md §2.3).
    FrameTooLong {
        len: usize,
    },
    /// A record's frame length is below the 8-byte frame header.
    FrameTooShort {
        len: usize,
    },
    /// The frame's own MessageLength disagrees with the record's length.
    FrameLengthMismatch {
        record_len: usize,
        frame_len: usize,
    },
}

/// A corrupt recording and the byte offset where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub offset: u64,
    pub kind: Corrupt,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corrupt::BadMagic => write!(f, "not a ctirouter recording (no \"CTIREC\" magic)"),
            Corrupt::UnsupportedFormat(v) => {
                write!(
                    f,
                    "recording format {v} is not supported (this build reads {FORMAT_VERSION})"
                )
            }
            Corrupt::BadProtocolVersion(v) => {
                write!(f, "protocol version {v} is not one of 13..=24")
            }
            Corrupt::TruncatedHeader { available } => {
                write!(f, "truncated header: {available} of {HEADER_LEN} bytes")
            }
            Corrupt::TruncatedRecord { needed, available } => {
                write!(
                    f,
                    "truncated record: needs {needed} bytes, {available} left"
                )
            }
            Corrupt::FrameTooLong { len } => {
                write!(
                    f,
                    "frame length {len} exceeds the {MAX_FRAME_LEN}-byte limit"
                )
            }
            Corrupt::FrameTooShort { len } => {
                write!(f, "frame length {len} is shorter than a frame header")
            }
            Corrupt::FrameLengthMismatch {
                record_len,
                frame_len,
            } => write!(
                f,
                "record says {record_len} bytes but its frame's header says {frame_len}"
            ),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt recording at byte {}: {}",
            self.offset, self.kind
        )
    }
}

impl std::error::Error for FormatError {}

/// A read failed: the file itself, or what is in it.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Corrupt(FormatError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "reading the recording: {e}"),
            ReadError::Corrupt(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl Header {
    /// A header for a recording that starts now.
    pub fn now(version: Version) -> Header {
        let started_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Header {
            version,
            started_unix_ns,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.version.number() as u16).to_be_bytes());
        out.extend_from_slice(&self.started_unix_ns.to_be_bytes());
    }

    /// The header at the start of `buf` (which holds the file's first bytes;
    /// all of the file when it is shorter than a header).
    pub fn parse(buf: &[u8]) -> Result<Header, FormatError> {
        let corrupt = |offset: u64, kind| FormatError { offset, kind };
        let magic_len = MAGIC.len().min(buf.len());
        if buf[..magic_len] != MAGIC[..magic_len] {
            return Err(corrupt(0, Corrupt::BadMagic));
        }
        if buf.len() < HEADER_LEN {
            return Err(corrupt(
                0,
                Corrupt::TruncatedHeader {
                    available: buf.len(),
                },
            ));
        }
        let format = be_u16(buf, 6);
        if format != FORMAT_VERSION {
            return Err(corrupt(6, Corrupt::UnsupportedFormat(format)));
        }
        let protocol = be_u16(buf, 8);
        let Some(version) = Version::new(protocol as u32) else {
            return Err(corrupt(8, Corrupt::BadProtocolVersion(protocol)));
        };
        let mut start = [0u8; 8];
        start.copy_from_slice(&buf[10..18]);
        Ok(Header {
            version,
            started_unix_ns: u64::from_be_bytes(start),
        })
    }
}

/// Append one record.
pub fn encode_record(at: Duration, frame: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(at.as_nanos() as u64).to_be_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
}

/// The record at the front of `buf` and the bytes it used; `Ok(None)` when
/// `buf` ends inside it (read more, or at end of file: truncated). Errors
/// are relative to the start of `buf`.
pub fn parse_record(buf: &[u8]) -> Result<Option<(Record<'_>, usize)>, Corrupt> {
    if buf.len() < RECORD_HEADER_LEN {
        return Ok(None);
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&buf[..8]);
    let len = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(Corrupt::FrameTooLong { len });
    }
    if len < FRAME_HEADER_LEN {
        return Err(Corrupt::FrameTooShort { len });
    }
    let Some(frame) = buf.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Ok(None);
    };
    match frame::check(frame) {
        Ok(frame_len) if frame_len == len => {}
        _ => {
            let body = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
            return Err(Corrupt::FrameLengthMismatch {
                record_len: len,
                frame_len: body.saturating_add(FRAME_HEADER_LEN),
            });
        }
    }
    let record = Record {
        at: Duration::from_nanos(u64::from_be_bytes(at)),
        frame,
    };
    Ok(Some((record, RECORD_HEADER_LEN + len)))
}

/// A record already checked by [`parse_record`] (exactly its bytes).
fn record_unchecked(bytes: &[u8]) -> Record<'_> {
    let mut at = [0u8; 8];
    at.copy_from_slice(&bytes[..8]);
    Record {
        at: Duration::from_nanos(u64::from_be_bytes(at)),
        frame: &bytes[RECORD_HEADER_LEN..],
    }
}

/// Bytes a record needs in all, once its header is there (for messages).
fn record_len(buf: &[u8]) -> usize {
    match buf.get(8..12) {
        Some(l) => RECORD_HEADER_LEN + u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
        None => RECORD_HEADER_LEN,
    }
}

/// Buffer size of [`Reader`]: many records per read.
const READ_CHUNK: usize = 64 * 1024;

/// Reads a recording record by record.
pub struct Reader<R> {
    inner: R,
    header: Header,
    /// Unparsed bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
}

impl<R: Read> Reader<R> {
    /// Read and check the header.
    pub fn new(mut inner: R) -> Result<Reader<R>, ReadError> {
        let mut head = [0u8; HEADER_LEN];
        let n = read_full(&mut inner, &mut head)?;
        let header = Header::parse(&head[..n]).map_err(ReadError::Corrupt)?;
        Ok(Reader {
            inner,
            header,
            buf: vec![0; READ_CHUNK + MAX_FRAME_LEN + RECORD_HEADER_LEN],
            start: 0,
            end: 0,
            offset: HEADER_LEN as u64,
            eof: false,
        })
    }

    pub fn header(&self) -> Header {
        self.header
    }

    /// File offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record; `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, ReadError> {
        loop {
            match parse_record(&self.buf[self.start..self.end]) {
                Ok(Some((_, used))) => {
                    let at = self.start;
                    self.start += used;
                    self.offset += used as u64;
                    return Ok(Some(record_unchecked(&self.buf[at..at + used])));
                }
                Ok(None) if self.eof => {
                    let available = self.end - self.start;
                    if available == 0 {
                        return Ok(None);
                    }
                    return Err(self.corrupt(Corrupt::TruncatedRecord {
                        needed: record_len(&self.buf[self.start..self.end]),
                        available,
                    }));
                }
                Ok(None) => self.fill()?,
                Err(kind) => return Err(self.corrupt(kind)),
            }
        }
    }

    fn corrupt(&self, kind: Corrupt) -> ReadError {
        ReadError::Corrupt(FormatError {
            offset: self.offset,
            kind,
        })
    }

    /// Move the unparsed tail to the front and read more after it.
    fn fill(&mut self) -> Result<(), ReadError> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let n = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(())
    }
}

fn read_retrying(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_full(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_retrying(inner, &mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Writes a recording: the header at creation, then one record per frame.
pub struct Writer<W: Write> {
    inner: W,
    scratch: Vec<u8>,
    nr_records: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut inner: W, header: Header) -> io::Result<Writer<W>> {
        let mut scratch = Vec::with_capacity(MAX_FRAME_LEN + RECORD_HEADER_LEN);
        header.encode(&mut scratch);
        inner.write_all(&scratch)?;
        Ok(Writer {
            inner,
            scratch,
            nr_records: 0,
        })
    }

    /// Append a frame received `at` after the start.
    pub fn write_frame(&mut self, at: Duration, frame: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        encode_record(at, frame, &mut self.scratch);
        self.inner.write_all(&self.scratch)?;
        self.nr_records += 1;
        Ok(())
    }

    pub fn nr_records(&self) -> u64 {
        self.nr_records
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{AgentStateEvent, HeartbeatConf};
    use crate::proto::Message;

    fn v(n: u32) -> Version {
        Version::new(n).unwrap()
    }

    fn frames() -> Vec<Vec<u8>> {
        (0..5u32)
            .map(|i| {
                let m: Message = if i % 2 == 0 {
                    AgentStateEvent {
                        agent_id: Some(format!("{}", 1000 + i).into()),
                        ..Default::default()
                    }
                    .into()
                } else {
                    HeartbeatConf { invoke_id: i }.into()
                };
                m.to_frame(v(19)).unwrap()
            })
            .collect()
    }

    fn recording() -> Vec<u8> {
        let header = Header {
            version: v(19),
            started_unix_ns: 1_700_000_000_000_000_000,
        };
        let mut w = Writer::new(Vec::new(), header).unwrap();
        for (i, f) in frames().iter().enumerate() {
            w.write_frame(Duration::from_millis(10 * i as u64), f)
                .unwrap();
        }
        w.into_inner()
    }

    fn read_all(bytes: &[u8]) -> (Vec<(Duration, Vec<u8>)>, Option<ReadError>) {
        let mut records = Vec::new();
        let mut reader = match Reader::new(bytes) {
            Ok(r) => r,
            Err(e) => return (records, Some(e)),
        };
        loop {
            match reader.next_record() {
                Ok(Some(r)) => records.push((r.at, r.frame.to_vec())),
                Ok(None) => return (records, None),
                Err(e) => return (records, Some(e)),
            }
        }
    }

    fn corrupt(e: Option<ReadError>) -> FormatError {
        match e {
            Some(ReadError::Corrupt(f)) => f,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn frames_and_times_round_trip() {
        let bytes = recording();
        assert_eq!(&bytes[..6], b"CTIREC");
        assert_eq!(&bytes[6..10], &[0, 1, 0, 19]);
        let reader = Reader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().version, v(19));
        assert_eq!(reader.header().started_unix_ns, 1_700_000_000_000_000_000);
        let (records, err) = read_all(&bytes);
        assert!(err.is_none());
        let got: Vec<Vec<u8>> = records.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(got, frames());
        assert_eq!(records[3].0, Duration::from_millis(30));
    }

    #[test]
    fn truncated_header_is_reported_at_offset_zero() {
        let bytes = recording();
        for cut in [0, 3, 6, 10, 17] {
            let e = corrupt(read_all(&bytes[..cut]).1);
            assert_eq!(e.offset, 0);
            assert_eq!(e.kind, Corrupt::TruncatedHeader { available: cut });
        }
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut bytes = recording();
        bytes[0] = b'X';
        let e = corrupt(read_all(&bytes).1);
        assert_eq!((e.offset, &e.kind), (0, &Corrupt::BadMagic));
        assert!(e.to_string().contains("byte 0"), "{e}");
    }

    #[test]
    fn unknown_format_and_protocol_versions_are_refused() {
        let mut bytes = recording();
        bytes[7] = 2;
        assert_eq!(
            corrupt(read_all(&bytes).1).kind,
            Corrupt::UnsupportedFormat(2)
        );
        let mut bytes = recording();
        bytes[9] = 25;
        let e = corrupt(read_all(&bytes).1);
        assert_eq!((e.offset, e.kind), (8, Corrupt::BadProtocolVersion(25)));
    }

    #[test]
    fn truncated_record_keeps_the_good_ones_and_names_its_offset() {
        let bytes = recording();
        let f = frames();
        let third = HEADER_LEN + 2 * RECORD_HEADER_LEN + f[0].len() + f[1].len();
        // Cut inside the third record's header, then inside its frame.
        for cut in [third + 5, third + RECORD_HEADER_LEN + 3] {
            let (records, err) = read_all(&bytes[..cut]);
            assert_eq!(records.len(), 2);
            let e = corrupt(err);
            assert_eq!(e.offset, third as u64);
            assert!(matches!(e.kind, Corrupt::TruncatedRecord { .. }), "{e}");
            assert!(e.to_string().contains(&format!("byte {third}")), "{e}");
        }
    }

    #[test]
    fn frame_length_over_the_limit_is_corrupt() {
        let mut bytes = recording();
        let first_len = HEADER_LEN + 8;
        bytes[first_len..first_len + 4].copy_from_slice(&12_501u32.to_be_bytes());
        let (records, err) = read_all(&bytes);
        assert!(records.is_empty());
        let e = corrupt(err);
        assert_eq!(
            (e.offset, e.kind),
            (HEADER_LEN as u64, Corrupt::FrameTooLong { len: 12_501 })
        );
    }

    #[test]
    fn record_length_must_match_the_frame_header() {
        let mut out = Vec::new();
        let frame = frames()[0].clone();
        encode_record(Duration::ZERO, &frame, &mut out);
        out[RECORD_HEADER_LEN + 3] ^= 1;
        assert!(matches!(
            parse_record(&out),
            Err(Corrupt::FrameLengthMismatch { .. })
        ));
        let mut short = Vec::new();
        encode_record(Duration::ZERO, &[0, 0, 0], &mut short);
        assert_eq!(parse_record(&short), Err(Corrupt::FrameTooShort { len: 3 }));
    }

    #[test]
    fn records_are_read_across_buffer_refills() {
        let header = Header::now(v(24));
        let frame = Message::from(AgentStateEvent::default())
            .to_frame(v(24))
            .unwrap();
        let mut w = Writer::new(Vec::new(), header).unwrap();
        for i in 0..5000 {
            w.write_frame(Duration::from_micros(i), &frame).unwrap();
        }
        let bytes = w.into_inner();
        let (records, err) = read_all(&bytes);
        assert!(err.is_none());
        assert_eq!(records.len(), 5000);
        assert!(records.iter().all(|(_, f)| *f == frame));
    }
}
