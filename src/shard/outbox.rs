//! A session's output queue, and the per-batch arenas it points into.
//!
//! An event a session gets unchanged (an All Events copy, a SYSTEM_EVENT, a
//! Client Monitor notice) is not copied for it. The shard copies each event
//! once per batch and version into that batch's [`Arena`]; a session's outbox
//! holds ranges of it, and a session taking a run of consecutive events of a
//! batch holds one range for the whole run — one iovec per session per batch
//! for an All Events client, whatever the batch size. The kernel copies
//! straight from the arena with one vectored write. Bytes only this session
//! sends (its replies, monitor copies with the MonitorID patched in) are
//! appended to `local`, and every run of them becomes one chunk.
//!
//! Order: whatever is appended to `local` goes out after every chunk queued
//! before it ([`Outbox::push_run`] seals the pending local bytes first).
//!
//! Memory: a queued range keeps its whole arena alive. So that the output
//! bound (docs/design.md §4.13) bounds memory, not just bytes owed, a session is
//! charged at the end of each batch for the whole arena it references
//! ([`Outbox::settle_batch`]): an All Events client owes about what it holds,
//! a client whose masks pass one event in a hundred pays for the hundred.

use std::cell::OnceCell;
use std::io::IoSlice;
use std::rc::Rc;

use crate::proto::Version;

/// Most iovecs handed to one `sendmsg`.
pub const MAX_IOV: usize = 256;

/// Above this much spare capacity, a written-out outbox gives its memory back
/// (an idle session after a burst should not keep the burst's buffers).
const KEEP_LOCAL_BYTES: usize = 64 * 1024;
const KEEP_CHUNKS: usize = 1024;

/// One batch's events at one version, back to back. Filled while the batch
/// is dispatched, frozen at its end, before any writer can run.
#[derive(Default)]
pub struct Arena {
    bytes: OnceCell<Box<[u8]>>,
}

impl Arena {
    /// The frozen bytes (empty before the freeze, which never reaches a writer).
    fn bytes(&self) -> &[u8] {
        debug_assert!(
            self.bytes.get().is_some(),
            "arena read before its batch ended"
        );
        self.bytes.get().map_or(&[], |b| b)
    }
}

/// The arenas of the batch being dispatched, one per version in use.
#[derive(Default)]
pub struct Arenas {
    building: [Option<Building>; Version::COUNT],
    /// Which event `place` is called for (see [`Arenas::next_event`]).
    event: u64,
}

struct Building {
    arena: Rc<Arena>,
    bytes: Vec<u8>,
    /// The last event placed, and where.
    event: u64,
    at: (u32, u32),
}

impl Arenas {
    /// The next `place` calls are for another event.
    pub fn next_event(&mut self) {
        self.event += 1;
    }

    /// The current event's `bytes` at `version` in this batch's arena:
    /// copied there the first time a session asks for it.
    pub fn place(&mut self, version: Version, bytes: &[u8]) -> (&Rc<Arena>, u32, u32) {
        let event = self.event;
        let building = self.building[version.index()].get_or_insert_with(|| Building {
            arena: Rc::default(),
            bytes: Vec::new(),
            event: u64::MAX,
            at: (0, 0),
        });
        if building.event != event {
            let start = building.bytes.len();
            building.bytes.extend_from_slice(bytes);
            building.event = event;
            // A batch holds at most MAX_BATCH frames of at most 12.5 KB.
            building.at = (start as u32, building.bytes.len() as u32);
        }
        (&building.arena, building.at.0, building.at.1)
    }

    /// End the batch: freeze every arena filled in it; returns each
    /// version's arena length (0 where none) for [`Outbox::settle_batch`].
    pub fn freeze(&mut self) -> [usize; Version::COUNT] {
        let mut lens = [0; Version::COUNT];
        for (len, slot) in lens.iter_mut().zip(&mut self.building) {
            if let Some(building) = slot.take() {
                *len = building.bytes.len();
                let _ = building.arena.bytes.set(building.bytes.into_boxed_slice());
            }
        }
        lens
    }
}

enum Chunk {
    /// `local[start..end]`.
    Local { start: usize, end: usize },
    /// `arena[start..end]`.
    Arena {
        arena: Rc<Arena>,
        start: u32,
        end: u32,
    },
}

/// Queued output of one session.
#[derive(Default)]
pub struct Outbox {
    /// Bytes only this session sends; append freely, order is kept.
    pub local: Vec<u8>,
    chunks: Vec<Chunk>,
    /// `local[..sealed]` is covered by chunks.
    sealed: usize,
    /// What the arena chunks are charged (see the module docs).
    arena_charge: usize,
    /// Bytes taken from the batch being dispatched (charged as they come,
    /// settled to the arena's length at the batch's end).
    batch_bytes: usize,
}

impl Outbox {
    /// Bytes queued, counting every referenced arena whole.
    pub fn len(&self) -> usize {
        self.local.len() + self.arena_charge
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.chunks.is_empty()
    }

    /// Queue `arena[start..end]` (from the batch being dispatched) without
    /// copying; a run continuing the last chunk extends it.
    pub fn push_run(&mut self, arena: &Rc<Arena>, start: u32, end: u32) {
        self.seal();
        let len = (end - start) as usize;
        self.arena_charge += len;
        self.batch_bytes += len;
        if let Some(Chunk::Arena {
            arena: last,
            end: last_end,
            ..
        }) = self.chunks.last_mut()
        {
            if *last_end == start && Rc::ptr_eq(last, arena) {
                *last_end = end;
                return;
            }
        }
        self.chunks.push(Chunk::Arena {
            arena: arena.clone(),
            start,
            end,
        });
    }

    /// The batch ended and its arena at this session's version is
    /// `arena_len` bytes: charge the whole of it if any of it is queued.
    pub fn settle_batch(&mut self, arena_len: usize) {
        if self.batch_bytes > 0 {
            self.arena_charge += arena_len.saturating_sub(self.batch_bytes);
            self.batch_bytes = 0;
        }
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
        self.arena_charge = 0;
        self.batch_bytes = 0;
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
            Chunk::Arena { arena, start, end } => arena
                .bytes()
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
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

    fn v24() -> Version {
        Version::new(24).unwrap()
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

    fn slices(out: &Outbox) -> usize {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        out.fill(Cursor::default(), &mut iov)
    }

    /// Place the next event's bytes and queue them for `out`.
    fn take(arenas: &mut Arenas, out: &mut Outbox, bytes: &[u8]) {
        arenas.next_event();
        let (arena, start, end) = arenas.place(v24(), bytes);
        let arena = arena.clone();
        out.push_run(&arena, start, end);
    }

    #[test]
    fn local_and_arena_bytes_keep_their_order() {
        let mut arenas = Arenas::default();
        let mut out = Outbox::default();
        out.local.extend_from_slice(b"reply1");
        out.local.extend_from_slice(b"reply2");
        take(&mut arenas, &mut out, b"<event a>");
        out.local.extend_from_slice(b"patched");
        take(&mut arenas, &mut out, b"<event b>");
        take(&mut arenas, &mut out, b"<event c>");
        out.local.extend_from_slice(b"tail");
        let lens = arenas.freeze();
        out.settle_batch(lens[v24().index()]);
        out.seal_all();
        let want = b"reply1reply2<event a>patched<event b><event c>tail".to_vec();
        assert_eq!(out.len(), want.len());
        // reply, a, patched, b+c in one slice, tail.
        assert_eq!(slices(&out), 5);
        for step in [1, 5, 7, 64, 10_000] {
            assert_eq!(drain(&out, step), want, "written {step} bytes at a time");
        }
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn a_batch_taken_whole_is_one_slice() {
        let mut arenas = Arenas::default();
        let mut out = Outbox::default();
        let mut want = Vec::new();
        for i in 0..100u8 {
            let event = [i; 40];
            take(&mut arenas, &mut out, &event);
            want.extend_from_slice(&event);
        }
        arenas.freeze();
        out.seal_all();
        assert_eq!(slices(&out), 1);
        assert_eq!(drain(&out, 333), want);
    }

    #[test]
    fn an_event_is_copied_once_per_version_and_runs_skip_nothing() {
        let mut arenas = Arenas::default();
        let (mut all, mut some) = (Outbox::default(), Outbox::default());
        for (i, event) in [b"<1>", b"<2>", b"<3>"].iter().enumerate() {
            arenas.next_event();
            let (arena, start, end) = arenas.place(v24(), *event);
            let arena = arena.clone();
            all.push_run(&arena, start, end);
            // A second session asking for the same event gets the same bytes.
            let (again, start2, end2) = arenas.place(v24(), *event);
            assert!(Rc::ptr_eq(&arena, again) && (start, end) == (start2, end2));
            if i != 1 {
                some.push_run(&arena, start, end);
            }
        }
        let lens = arenas.freeze();
        assert_eq!(lens[v24().index()], 9, "each event copied once");
        for out in [&mut all, &mut some] {
            out.settle_batch(lens[v24().index()]);
            out.seal_all();
        }
        assert_eq!(drain(&all, 4), b"<1><2><3>");
        assert_eq!(slices(&all), 1);
        // Skipping <2> starts a new slice.
        assert_eq!(drain(&some, 4), b"<1><3>");
        assert_eq!(slices(&some), 2);
        // But the session keeps the whole arena alive, and pays for it.
        assert_eq!(some.len(), 9);
    }

    #[test]
    fn versions_get_their_own_arenas() {
        let mut arenas = Arenas::default();
        arenas.next_event();
        let v19 = Version::new(19).unwrap();
        let (a, ..) = arenas.place(v24(), b"wide");
        let a = a.clone();
        let (b, start, end) = arenas.place(v19, b"narrow");
        assert!(!Rc::ptr_eq(&a, b));
        assert_eq!((start, end), (0, 6));
        let lens = arenas.freeze();
        assert_eq!((lens[v24().index()], lens[v19.index()]), (4, 6));
        assert_eq!(a.bytes(), b"wide");
        // The next batch starts new arenas; the frozen one is untouched.
        arenas.next_event();
        let (c, start, _) = arenas.place(v24(), b"next");
        assert!(!Rc::ptr_eq(&a, c) && start == 0);
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
