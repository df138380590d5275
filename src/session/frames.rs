//! Reassembly of a GED-188 byte stream into whole frames: reads land in the
//! spare room at the end of one buffer, whole frames are taken from the
//! front (`frame::check` first: cheap, `Incomplete` until a frame is all
//! there), and the unread tail moves to the front before the next read. A
//! read may hold several frames, or part of one (docs/protocol.md §1). No I/O
//! here: the caller reads into [`FrameBuffer::spare`] with whatever socket it
//! has (glommio for ingest, mio or std in the tools).

use crate::proto::frame::{self, MAX_FRAME_LEN};
use crate::proto::DecodeError;

/// Bytes one read may bring: room for several 200-byte events per read, and
/// always more than one frame of the largest size (12,500 bytes).
pub const READ_CHUNK: usize = 64 * 1024;

/// A read buffer that hands out whole frames.
#[derive(Debug)]
pub struct FrameBuffer {
    /// Buffered bytes live in `buf[start..end]`.
    buf: Vec<u8>,
    /// First byte not yet handed out as a frame.
    start: usize,
    /// One past the last byte read.
    end: usize,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    pub fn new() -> FrameBuffer {
        FrameBuffer {
            buf: vec![0; READ_CHUNK + MAX_FRAME_LEN],
            start: 0,
            end: 0,
        }
    }

    /// Bytes buffered and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Forget everything buffered (a new connection).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room to read into: at least [`READ_CHUNK`] bytes. Moves a partial
    /// frame at the back to the front first (at most one frame's bytes).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < READ_CHUNK {
                // Only when a caller feeds more than it takes frames out.
                self.buf.resize(self.end + READ_CHUNK, 0);
            }
        }
        &mut self.buf[self.end..]
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
        let at = self.start;
        self.start += len;
        if self.start == self.end {
            // Empty: the next read starts at the front, no copy needed.
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(&self.buf[at..at + len]))
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
    fn half_a_header_waits() {
        let mut buf = FrameBuffer::new();
        buf.extend(&[0, 0, 0]);
        assert_eq!(buf.next_frame().unwrap(), None);
        assert_eq!(buf.buffered(), 3);
    }
}
