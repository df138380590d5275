//! Reassembly of a GED-188 byte stream into whole frames — the one
//! reassembler, for the upstream's stream and for every client's: reads land
//! in the spare room at the end of one buffer, whole frames are taken from
//! the front (`frame::check` first: cheap, `Incomplete` until a frame is all
//! there), and the unread tail moves to the front before the next read. A
//! read may hold several frames, or part of one (docs/protocol.md §1). A
//! header announcing more than 12,500 bytes is an error that
//! [`DecodeError::breaks_framing`]: the stream cannot be resynchronised. No
//! I/O here: the caller reads into [`FrameBuffer::spare`] with whatever
//! socket it has (glommio on the cores, mio or std in the tools). The
//! `split_stream` fuzz target drives it with every split of its input.

use crate::proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use crate::proto::{DecodeError, Frame};

/// Bytes one upstream read may bring: room for several 200-byte events per
/// read, and always more than one frame of the largest size (12,500 bytes).
pub const READ_CHUNK: usize = 64 * 1024;

/// A client session's buffer while it waits: requests are small, and an
/// idle session should cost little (10,000 of them are a normal load).
pub const CLIENT_READ_LEN: usize = 512;

/// A read buffer that hands out whole frames.
#[derive(Debug)]
pub struct FrameBuffer {
    /// Buffered bytes live in `buf[start..end]`.
    buf: Vec<u8>,
    /// First byte not yet handed out as a frame.
    start: usize,
    /// One past the last byte read.
    end: usize,
    /// Room a read is given, at least.
    read_len: usize,
    /// What the buffer shrinks back to once it is empty.
    idle_len: usize,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    /// For the upstream's stream: reads of [`READ_CHUNK`] bytes.
    pub fn new() -> FrameBuffer {
        Self::sized(READ_CHUNK, READ_CHUNK + MAX_FRAME_LEN)
    }

    /// For a client's stream: [`CLIENT_READ_LEN`] bytes while idle, grown to
    /// hold a larger frame while it arrives, and shrunk back once drained.
    pub fn for_client() -> FrameBuffer {
        Self::sized(CLIENT_READ_LEN, CLIENT_READ_LEN)
    }

    fn sized(read_len: usize, idle_len: usize) -> FrameBuffer {
        FrameBuffer {
            buf: vec![0; idle_len],
            start: 0,
            end: 0,
            read_len,
            idle_len,
        }
    }

    /// Bytes buffered and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Bytes the buffer holds now (idle, or grown for a large frame).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Forget everything buffered (a new connection, a broken stream).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room to read into: at least the buffer's read size, and enough for
    /// the rest of a frame whose header is in. Moves a partial frame at the
    /// back to the front first (at most one frame's bytes); an empty buffer
    /// that grew for a large frame goes back to its idle size.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.clear();
            if self.buf.len() > self.idle_len {
                self.buf = vec![0; self.idle_len];
            }
        }
        let want = self.read_len.max(self.rest_of_front_frame());
        if self.buf.len() - self.end < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < want {
                self.buf.resize(self.end + want, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Bytes still to come of the frame at the front, once its header is in
    /// (0 for a header over the limit: taking the frame reports it).
    fn rest_of_front_frame(&self) -> usize {
        let pending = &self.buf[self.start..self.end];
        let Some(header) = pending.get(..HEADER_LEN) else {
            return 0;
        };
        let body_len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let frame_len = HEADER_LEN.saturating_add(body_len);
        if frame_len > MAX_FRAME_LEN {
            return 0;
        }
        frame_len.saturating_sub(pending.len())
    }

    /// `n` bytes were read into [`FrameBuffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Append bytes (for callers that do not read into `spare`).
    pub fn extend(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = self.spare();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            self.filled(n);
            rest = &rest[n..];
        }
    }

    /// Length of the whole frame at the front, `None` while it is still
    /// arriving; an error when its header breaks framing (over 12,500 bytes).
    pub fn next_len(&self) -> Result<Option<usize>, DecodeError> {
        match frame::check(&self.buf[self.start..self.end]) {
            Ok(len) => Ok(Some(len)),
            Err(DecodeError::Incomplete) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The whole frame at the front (header included), taken out of the
    /// buffer; `None` while it is still arriving.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, DecodeError> {
        let Some(len) = self.next_len()? else {
            return Ok(None);
        };
        let at = self.take(len);
        Ok(Some(&self.buf[at..at + len]))
    }

    /// The frame at the front, parsed into its type and body, taken out of
    /// the buffer; `None` while it is still arriving.
    pub fn next_parsed(&mut self) -> Result<Option<Frame<'_>>, DecodeError> {
        let Some(len) = self.next_len()? else {
            return Ok(None);
        };
        let at = self.take(len);
        frame::parse(&self.buf[at..at + len]).map(|(frame, _)| Some(frame))
    }

    /// Take `len` bytes off the front; returns where they start.
    fn take(&mut self, len: usize) -> usize {
        let at = self.start;
        self.start += len;
        if self.start == self.end {
            // Empty: the next read starts at the front, no copy needed (the
            // bytes just taken stay where they are until then).
            self.start = 0;
            self.end = 0;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{AgentStateEvent, HeartbeatConf};
    use crate::proto::{Message, Version};

    fn frames() -> Vec<Vec<u8>> {
        (0..40u32)
            .map(|i| {
                let m: Message = if i % 3 == 0 {
                    HeartbeatConf { invoke_id: i }.into()
                } else {
                    AgentStateEvent {
                        agent_state: 3,
                        agent_id: Some(format!("agent-{i}").into()),
                        ..Default::default()
                    }
                    .into()
                };
                m.to_frame(Version::MAX).unwrap()
            })
            .collect()
    }

    fn drain(buf: &mut FrameBuffer, out: &mut Vec<Vec<u8>>) {
        while let Some(frame) = buf.next_frame().unwrap() {
            out.push(frame.to_vec());
        }
    }

    #[test]
    fn coalesced_frames_come_out_one_by_one() {
        let frames = frames();
        let mut buf = FrameBuffer::new();
        buf.extend(&frames.concat());
        let mut got = Vec::new();
        drain(&mut buf, &mut got);
        assert_eq!(got, frames);
        assert_eq!(buf.buffered(), 0);
    }

    #[test]
    fn frames_split_at_every_byte_are_reassembled() {
        let frames = frames();
        let stream = frames.concat();
        for chunk in [1, 2, 3, 7, 8, 9, 13, 100, 4096] {
            let mut buf = FrameBuffer::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                buf.extend(piece);
                drain(&mut buf, &mut got);
            }
            assert_eq!(got, frames, "chunk size {chunk}");
        }
    }

    #[test]
    fn reads_into_spare_keep_a_partial_frame_across_compaction() {
        let frames = frames();
        let stream = frames.concat().repeat(200);
        let mut buf = FrameBuffer::new();
        let mut got = Vec::new();
        let mut pos = 0;
        // Reads of an odd size, so frames straddle reads and the buffer end.
        while pos < stream.len() {
            let room = buf.spare();
            assert!(room.len() >= READ_CHUNK);
            let n = room.len().min(stream.len() - pos).min(5003);
            room[..n].copy_from_slice(&stream[pos..pos + n]);
            buf.filled(n);
            pos += n;
            drain(&mut buf, &mut got);
        }
        assert_eq!(got.len(), frames.len() * 200);
        assert_eq!(got.concat(), stream);
    }

    #[test]
    fn oversize_header_is_an_error_not_a_wait() {
        let mut buf = FrameBuffer::new();
        buf.extend(&[0x00, 0x00, 0x30, 0xd5, 0, 0, 0, 9]);
        assert!(buf.next_frame().unwrap_err().breaks_framing());
    }

    #[test]
    fn a_client_buffer_grows_for_a_large_frame_and_shrinks_back() {
        let big: Message = AgentStateEvent {
            agent_state: 3,
            agent_id: Some("x".repeat(200).into()),
            agent_extension: Some("y".repeat(200).into()),
            agent_instrument: Some("z".repeat(200).into()),
            ..Default::default()
        }
        .into();
        let big = big.to_frame(Version::MAX).unwrap();
        assert!(big.len() > CLIENT_READ_LEN);
        let mut buf = FrameBuffer::for_client();
        assert_eq!(buf.capacity(), CLIENT_READ_LEN);
        // Fed the way a socket would: each read fills what `spare` offers.
        let (mut pos, mut reads) = (0, 0);
        let mut got = Vec::new();
        while pos < big.len() {
            reads += 1;
            let room = buf.spare();
            let n = room.len().min(big.len() - pos);
            room[..n].copy_from_slice(&big[pos..pos + n]);
            buf.filled(n);
            pos += n;
            drain(&mut buf, &mut got);
        }
        // Two reads: the header announced the length, the second read had
        // room for all the rest.
        assert_eq!(reads, 2);
        assert_eq!(got, vec![big.clone()]);
        assert!(buf.capacity() >= big.len());
        buf.spare();
        assert_eq!(buf.capacity(), CLIENT_READ_LEN);
    }

    #[test]
    fn next_parses_type_and_body() {
        let frames = frames();
        let mut buf = FrameBuffer::for_client();
        buf.extend(&frames.concat());
        for f in &frames {
            let frame = buf.next_parsed().unwrap().expect("a whole frame");
            assert_eq!(
                frame.message_type,
                u32::from_be_bytes([f[4], f[5], f[6], f[7]])
            );
            assert_eq!(frame.body, &f[8..]);
        }
        assert!(buf.next_parsed().unwrap().is_none());
    }

    #[test]
    fn half_a_header_waits() {
        let mut buf = FrameBuffer::new();
        buf.extend(&[0, 0, 0]);
        assert_eq!(buf.next_frame().unwrap(), None);
        assert_eq!(buf.buffered(), 3);
    }
}
