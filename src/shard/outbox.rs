//! A session's output queue without copies of shared events.
//!
//! An event that goes out unchanged (an All Events copy, a SYSTEM_EVENT, a
//! Client Monitor notice) is queued as a reference to the event's bytes at
//! the session's version; the kernel copies it straight from there with one
//! vectored write per batch. Bytes only this session sends (its replies, and
//! monitor copies with the MonitorID patched in) are appended to `local`, and
//! every run of them becomes one chunk. Copying each event into every
//! session's buffer cost as much as the kernel's own copy at 1,000 sessions
//! (perf/results/profiles/), which this removes.
//!
//! A shard wraps each event it receives in one `Rc` ([`ShardEvent`]), so
//! queueing it for a session costs a plain increment, not an atomic one
//! (measured: the atomic clone and drop were ~15 ns per delivery).
//!
//! Order: whatever is appended to `local` goes out after every chunk queued
//! before it ([`Outbox::push_shared`] seals the pending local bytes first).

use std::io::IoSlice;
use std::rc::Rc;
use std::sync::Arc;

use crate::event::Event;
use crate::proto::Version;

/// An event as one shard holds it: shared by its sessions' outboxes.
pub type ShardEvent = Rc<Arc<Event>>;

/// Most iovecs handed to one `sendmsg`.
pub const MAX_IOV: usize = 256;

/// Above this much spare capacity, a written-out outbox gives its memory back
/// (an idle session after a burst should not keep the burst's buffers).
const KEEP_LOCAL_BYTES: usize = 64 * 1024;
const KEEP_CHUNKS: usize = 1024;

enum Chunk {
    /// `local[start..end]`.
    Local { start: usize, end: usize },
    /// The event's bytes at `version` (known to exist when queued).
    Shared { event: ShardEvent, version: Version },
}

/// Queued output of one session.
#[derive(Default)]
pub struct Outbox {
    /// Bytes only this session sends; append freely, order is kept.
    pub local: Vec<u8>,
    chunks: Vec<Chunk>,
    /// `local[..sealed]` is covered by chunks.
    sealed: usize,
    shared_bytes: usize,
}

impl Outbox {
    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.local.len() + self.shared_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.chunks.is_empty()
    }

    /// Queue `event`'s bytes at `version` (`len` of them) without copying.
    pub fn push_shared(&mut self, event: &ShardEvent, version: Version, len: usize) {
        self.seal();
        self.shared_bytes += len;
        self.chunks.push(Chunk::Shared {
            event: event.clone(),
            version,
        });
    }

    /// Cover the local bytes appended since the last seal with a chunk.
    fn seal(&mut self) {
        let end = self.local.len();
        if end == self.sealed {
            return;
        }
        match self.chunks.last_mut() {
            Some(Chunk::Local { end: last, .. }) if *last == self.sealed => *last = end,
            _ => self.chunks.push(Chunk::Local {
                start: self.sealed,
                end,
            }),
        }
        self.sealed = end;
    }

    /// Drop everything queued, keeping modest buffers for reuse.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.local.clear();
        self.sealed = 0;
        self.shared_bytes = 0;
        if self.local.capacity() > KEEP_LOCAL_BYTES {
            self.local = Vec::new();
        }
        if self.chunks.capacity() > KEEP_CHUNKS {
            self.chunks = Vec::new();
        }
    }

    /// Make everything queued ready to write (call before [`Outbox::fill`]).
    pub fn seal_all(&mut self) {
        self.seal();
    }

    fn chunk_bytes<'a>(&'a self, chunk: &'a Chunk) -> &'a [u8] {
        match chunk {
            Chunk::Local { start, end } => &self.local[*start..*end],
            Chunk::Shared { event, version } => event.bytes_at(*version).unwrap_or_default(),
        }
    }

    /// Fill `iov` with the sealed bytes from `at` on; returns how many
    /// slices were filled (0 = all written).
    pub fn fill<'a>(&'a self, at: Cursor, iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().enumerate().skip(at.chunk) {
            if n == iov.len() {
                break;
            }
            let bytes = self.chunk_bytes(chunk);
            let skip = if i == at.chunk { at.offset } else { 0 };
            if skip < bytes.len() {
                iov[n] = IoSlice::new(&bytes[skip..]);
                n += 1;
            }
        }
        n
    }

    /// The cursor moved forward by `written` bytes.
    pub fn advance(&self, mut at: Cursor, mut written: usize) -> Cursor {
        while written > 0 && at.chunk < self.chunks.len() {
            let left = self.chunk_bytes(&self.chunks[at.chunk]).len() - at.offset;
            if written < left {
                at.offset += written;
                return at;
            }
            written -= left;
            at = Cursor {
                chunk: at.chunk + 1,
                offset: 0,
            };
        }
        at
    }

    /// The unwritten rest of the chunk at `at`.
    pub fn rest_of_chunk(&self, at: Cursor) -> &[u8] {
        match self.chunks.get(at.chunk) {
            Some(chunk) => &self.chunk_bytes(chunk)[at.offset..],
            None => &[],
        }
    }

    /// Whether everything before `at` is all there is.
    pub fn done(&self, at: Cursor) -> bool {
        at.chunk >= self.chunks.len()
    }
}

/// A position in an outbox being written: chunk index and bytes into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub chunk: usize,
    pub offset: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::AgentStateEvent;
    use crate::proto::Message;

    fn event(state: u16) -> ShardEvent {
        let v = Version::new(24).unwrap();
        let frame = Message::from(AgentStateEvent {
            agent_state: state,
            ..Default::default()
        })
        .to_frame(v)
        .unwrap();
        Rc::new(Arc::new(
            Event::new(1, v, frame.into_boxed_slice()).unwrap(),
        ))
    }

    /// Everything `fill`/`advance` hand out, written `step` bytes at a time.
    fn drain(out: &Outbox, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut at = Cursor::default();
        while !out.done(at) {
            let mut iov = [IoSlice::new(&[]); 3];
            let n = out.fill(at, &mut iov);
            let mut budget = step;
            let mut written = 0;
            for s in &iov[..n] {
                let take = s.len().min(budget);
                got.extend_from_slice(&s[..take]);
                budget -= take;
                written += take;
            }
            at = out.advance(at, written);
        }
        got
    }

    #[test]
    fn local_and_shared_bytes_keep_their_order() {
        let v = Version::new(24).unwrap();
        let (a, b) = (event(1), event(2));
        let mut out = Outbox::default();
        out.local.extend_from_slice(b"reply1");
        out.local.extend_from_slice(b"reply2");
        out.push_shared(&a, v, a.frame.len());
        out.local.extend_from_slice(b"patched");
        out.push_shared(&b, v, b.frame.len());
        out.push_shared(&a, v, a.frame.len());
        out.local.extend_from_slice(b"tail");
        out.seal_all();
        let mut want = b"reply1reply2".to_vec();
        want.extend_from_slice(&a.frame);
        want.extend_from_slice(b"patched");
        want.extend_from_slice(&b.frame);
        want.extend_from_slice(&a.frame);
        want.extend_from_slice(b"tail");
        assert_eq!(out.len(), want.len());
        for step in [1, 5, 7, 64, 10_000] {
            assert_eq!(drain(&out, step), want, "written {step} bytes at a time");
        }
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
        assert_eq!(Rc::strong_count(&a), 1);
    }

    #[test]
    fn adjacent_local_runs_share_one_chunk() {
        let mut out = Outbox::default();
        out.local.extend_from_slice(b"ab");
        out.seal_all();
        out.local.extend_from_slice(b"cd");
        out.seal_all();
        let mut iov = [IoSlice::new(&[]); 4];
        assert_eq!(out.fill(Cursor::default(), &mut iov), 1);
        assert_eq!(&*iov[0], b"abcd");
    }
}
