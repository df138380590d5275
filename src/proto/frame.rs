//! Framing (docs/protocol.md §2.1–§2.3): the 8-byte header (MessageLength counts the
//! bytes after it, MessageType), `check` (cheap; `Incomplete` until a whole
//! frame is buffered) then `parse`. A frame over 12,500 bytes is refused from
//! its header alone, before any body is buffered or allocated.

use super::error::{DecodeError, Invalid};

/// Bytes of the message header (MHDR).
pub const HEADER_LEN: usize = 8;
/// Largest frame, header included (docs/protocol.md §2.3: PV24, 12,500 bytes).
pub const MAX_FRAME_LEN: usize = 12_500;

/// One whole frame, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub message_type: u32,
    /// Fixed part + floating part (the MessageLength bytes after the header).
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Whole frame length on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }
}

/// Length of the whole frame at the front of `buf`, once all of it is there.
///
/// `Incomplete` while the header or body is still arriving; `FrameTooLong`
/// as soon as the header announces more than [`MAX_FRAME_LEN`].
#[inline]
pub fn check(buf: &[u8]) -> Result<usize, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Err(DecodeError::Incomplete);
    };
    let body_len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let frame_len = HEADER_LEN.saturating_add(body_len);
    if frame_len > MAX_FRAME_LEN {
        return Err(Invalid::FrameTooLong { frame_len }.into());
    }
    if buf.len() < frame_len {
        return Err(DecodeError::Incomplete);
    }
    Ok(frame_len)
}

/// The frame at the front of `buf`, and how many bytes it used.
#[inline]
pub fn parse(buf: &[u8]) -> Result<(Frame<'_>, usize), DecodeError> {
    let frame_len = check(buf)?;
    let message_type = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Ok((
        Frame {
            message_type,
            body: &buf[HEADER_LEN..frame_len],
        },
        frame_len,
    ))
}

/// Starts a frame in `out`: a placeholder length and the type. Returns the
/// header's position for [`finish_frame`].
#[inline]
pub fn begin_frame(out: &mut Vec<u8>, message_type: u32) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&message_type.to_be_bytes());
    start
}

/// Writes the MessageLength of the frame begun at `start`; returns its wire length.
#[inline]
pub fn finish_frame(out: &mut [u8], start: usize) -> usize {
    let frame_len = out.len() - start;
    let body_len = (frame_len - HEADER_LEN) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_be_bytes());
    frame_len
}

/// The MessageType of a frame, once its header is there.
pub fn message_type(frame: &[u8]) -> Option<u32> {
    frame
        .get(4..HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

/// Append a whole frame of `message_type` around `body`.
pub fn push_frame(out: &mut Vec<u8>, message_type: u32, body: &[u8]) -> usize {
    let start = begin_frame(out, message_type);
    out.extend_from_slice(body);
    finish_frame(out, start)
}

/// Overwrite the InvokeID (the first body field of every request and
/// reply) of the whole frame `frame`; false if it has no room for one.
pub fn patch_invoke_id(frame: &mut [u8], invoke_id: u32) -> bool {
    match frame.get_mut(HEADER_LEN..HEADER_LEN + 4) {
        Some(field) => {
            field.copy_from_slice(&invoke_id.to_be_bytes());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_req_frames() {
        let bytes = [0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 0x2a, 0xff];
        let (frame, used) = parse(&bytes).unwrap();
        assert_eq!(
            (frame.message_type, frame.body, used),
            (5, &bytes[8..12], 12)
        );
    }

    #[test]
    fn partial_header_and_body_are_incomplete() {
        assert_eq!(check(&[0, 0, 0]), Err(DecodeError::Incomplete));
        assert_eq!(
            check(&[0, 0, 0, 4, 0, 0, 0, 5, 0]),
            Err(DecodeError::Incomplete)
        );
    }

    #[test]
    fn oversize_frame_is_refused_from_its_header() {
        let err = check(&[0, 0, 0x30, 0xd5, 0, 0, 0, 9]).unwrap_err();
        assert!(err.breaks_framing());
        assert_eq!(
            check(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9])
                .unwrap_err()
                .status_code(),
            25
        );
        // Exactly the limit is fine (but incomplete here).
        let body = (MAX_FRAME_LEN - HEADER_LEN) as u32;
        let mut hdr = body.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0, 0, 0, 9]);
        assert_eq!(check(&hdr), Err(DecodeError::Incomplete));
    }
}
