//! A bounded, lock-free single-producer single-consumer queue with batch push
//! and pop. Each end caches the other end's index so the common case touches
//! no shared cache line (rtrb's design); one release store publishes a whole
//! batch. No waking, no I/O: see `ring/mod.rs` for the doorbell.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam::utils::CachePadded;

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// Next slot the consumer reads (written only by the consumer).
    head: CachePadded<AtomicUsize>,
    /// Next slot the producer writes (written only by the producer).
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: slots are handed from the one producer to the one consumer through
// the head/tail protocol (release on publish, acquire on observe), so a slot is
// never accessed by both ends at once. Items cross threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: as above; the shared state only moves `T`s between threads.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let head = *self.head.get_mut();
        let tail = *self.tail.get_mut();
        for i in head..tail {
            // SAFETY: slots in head..tail hold initialised items nobody popped;
            // we have `&mut self`, so no end is still using them.
            unsafe { (*self.slots[i & self.mask].get()).assume_init_drop() };
        }
    }
}

/// The producing end. `Send`, not `Clone`: there is exactly one.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
}

/// The consuming end. `Send`, not `Clone`: there is exactly one.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
}

/// A queue of `capacity` slots (rounded up to a power of two, at least 2).
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(2).next_power_of_two();
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        slots,
        mask: capacity - 1,
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
        },
    )
}

impl<T> Producer<T> {
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Free slots, refreshing the cached head only when the cache says full.
    fn free(&mut self, wanted: usize) -> usize {
        let cap = self.capacity();
        let mut free = cap - (self.tail - self.cached_head);
        if free < wanted {
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            free = cap - (self.tail - self.cached_head);
        }
        free
    }

    /// Push one item, or hand it back when the queue is full.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        if self.free(1) == 0 {
            return Err(item);
        }
        // SAFETY: the slot at `tail` is free (tail - head < capacity) and only
        // the producer writes slots past the published tail.
        unsafe { (*self.shared.slots[self.tail & self.shared.mask].get()).write(item) };
        self.tail += 1;
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Move as many items as fit from the front of `items`, publishing them
    /// with one release store. Returns how many moved.
    pub fn push_batch(&mut self, items: &mut Vec<T>) -> usize {
        let n = self.free(items.len()).min(items.len());
        if n == 0 {
            return 0;
        }
        for (i, item) in items.drain(..n).enumerate() {
            let slot = (self.tail + i) & self.shared.mask;
            // SAFETY: slots tail..tail+n are free (n ≤ free) and unpublished.
            unsafe { (*self.shared.slots[slot].get()).write(item) };
        }
        self.tail += n;
        self.shared.tail.store(self.tail, Ordering::Release);
        n
    }

    /// Whether the consumer has taken everything pushed so far.
    pub fn is_drained(&self) -> bool {
        self.shared.head.load(Ordering::Acquire) == self.tail
    }
}

impl<T> Consumer<T> {
    /// Items ready (up to `wanted` matters), refreshing the cached tail when
    /// the cache holds fewer than wanted.
    fn ready_for(&mut self, wanted: usize) -> usize {
        let mut ready = self.cached_tail - self.head;
        if ready < wanted {
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            ready = self.cached_tail - self.head;
        }
        ready
    }

    pub fn is_empty(&mut self) -> bool {
        self.ready_for(1) == 0
    }

    pub fn pop(&mut self) -> Option<T> {
        let mut out = None;
        self.pop_batch(1, |item| out = Some(item));
        out
    }

    /// Pop up to `max` items into `f`, releasing their slots with one store.
    /// Returns how many were popped.
    ///
    /// Panic-safe: if `f` unwinds, the slots of the items already handed to
    /// it (the one it held included) are released all the same, and the
    /// items not yet handed out stay in the queue for a later pop or for the
    /// queue's drop. Each item is dropped exactly once.
    pub fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let n = self.ready_for(max).min(max);
        if n == 0 {
            return 0;
        }
        let mut popped = Popped {
            consumer: self,
            taken: 0,
        };
        while popped.taken < n {
            let consumer = &*popped.consumer;
            let slot = (consumer.head + popped.taken) & consumer.shared.mask;
            // SAFETY: slots head..head+n were published by the producer's
            // release store (observed by our acquire load in `ready_for`) and
            // not yet popped: `taken < n` and `popped` publishes `head` past
            // this slot before anything else can read or drop it again.
            let item = unsafe { (*consumer.shared.slots[slot].get()).assume_init_read() };
            // The item is `f`'s from here on, even if `f` unwinds.
            popped.taken += 1;
            f(item);
        }
        n
    }
}

/// Publishes `head` past the items a [`Consumer::pop_batch`] moved out, when
/// the pop returns or when its closure unwinds: a slot whose item was read
/// out is never read or dropped again (by a later pop or by the queue's
/// drop). On the path that does not unwind this is the one release store
/// per batch.
struct Popped<'a, T> {
    consumer: &'a mut Consumer<T>,
    /// Items read out of their slots (and handed to the closure) so far.
    taken: usize,
}

impl<T> Drop for Popped<'_, T> {
    fn drop(&mut self) {
        let consumer = &mut *self.consumer;
        consumer.head += self.taken;
        consumer.shared.head.store(consumer.head, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    use super::*;

    #[test]
    fn fills_to_capacity_then_refuses() {
        let (mut p, mut c) = channel(4);
        for i in 0..4 {
            p.try_push(i).unwrap();
        }
        assert_eq!(p.try_push(9), Err(9));
        assert_eq!(c.pop(), Some(0));
        p.try_push(4).unwrap();
        let mut got = Vec::new();
        c.pop_batch(10, |x| got.push(x));
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert!(c.is_empty());
    }

    #[test]
    fn batch_push_moves_what_fits() {
        let (mut p, mut c) = channel(2);
        let mut items = vec![1, 2, 3];
        assert_eq!(p.push_batch(&mut items), 2);
        assert_eq!(items, vec![3]);
        assert_eq!(c.pop(), Some(1));
        assert_eq!(p.push_batch(&mut items), 1);
        assert!(items.is_empty());
    }

    #[test]
    fn unpopped_items_are_dropped_with_the_queue() {
        let item = Arc::new(());
        let (mut p, c) = channel(4);
        p.try_push(item.clone()).unwrap();
        p.try_push(item.clone()).unwrap();
        drop((p, c));
        assert_eq!(Arc::strong_count(&item), 1);
    }

    /// Items that count their drops, one counter per item id.
    struct Tracker(Rc<[Cell<u32>]>);

    #[derive(Debug)]
    struct Counted {
        id: usize,
        drops: Rc<[Cell<u32>]>,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            let n = &self.drops[self.id];
            n.set(n.get() + 1);
        }
    }

    impl Tracker {
        fn new(nr_items: usize) -> Tracker {
            Tracker((0..nr_items).map(|_| Cell::new(0)).collect())
        }

        fn item(&self, id: usize) -> Counted {
            Counted {
                id,
                drops: self.0.clone(),
            }
        }

        fn drops(&self, ids: std::ops::Range<usize>) -> Vec<u32> {
            self.0[ids].iter().map(Cell::get).collect()
        }
    }

    /// `pop_batch(max)` whose closure keeps what it gets in `kept` and
    /// panics, holding the item, when it gets `panic_at`. Returns whether it
    /// panicked.
    fn pop_until_panic(
        c: &mut Consumer<Counted>,
        max: usize,
        panic_at: usize,
        kept: &mut Vec<Counted>,
    ) -> bool {
        catch_unwind(AssertUnwindSafe(|| {
            c.pop_batch(max, |item| {
                if item.id == panic_at {
                    panic!("consumer closure panics holding item {panic_at} (expected)");
                }
                kept.push(item);
            })
        }))
        .is_err()
    }

    #[test]
    fn pop_batch_closure_panic_drops_each_item_once_and_ring_still_works() {
        let items = Tracker::new(18);
        // Capacity 8, head starts at 5: the batch wraps around the slots.
        let (mut p, mut c) = channel(8);
        for id in 0..5 {
            p.try_push(items.item(id)).unwrap();
        }
        assert_eq!(c.pop_batch(5, drop), 5);
        let mut batch: Vec<_> = (5..13).map(|id| items.item(id)).collect();
        assert_eq!(p.push_batch(&mut batch), 8);

        let mut kept = Vec::new();
        assert!(pop_until_panic(&mut c, 8, 8, &mut kept));
        let kept_ids: Vec<_> = kept.iter().map(|item| item.id).collect();
        assert_eq!(kept_ids, [5, 6, 7], "handed out before the panic");
        // 0..5 popped and dropped, 8 dropped by the unwinding closure,
        // 9..13 still queued.
        assert_eq!(items.drops(0..13), [1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        drop(kept);
        assert_eq!(items.drops(5..8), [1; 3]);

        // The four slots handed out are free again (and only those).
        let mut batch: Vec<_> = (13..17).map(|id| items.item(id)).collect();
        assert_eq!(p.push_batch(&mut batch), 4);
        assert_eq!(p.try_push(items.item(17)).map_err(|item| item.id), Err(17));
        let mut ids = Vec::new();
        assert_eq!(c.pop_batch(16, |item| ids.push(item.id)), 8);
        assert_eq!(ids, [9, 10, 11, 12, 13, 14, 15, 16]);
        assert!(c.is_empty());
        assert!(p.is_drained());
        drop((p, c));
        assert_eq!(items.drops(0..18), [1; 18]);
    }

    #[test]
    fn pop_batch_closure_panic_leaves_the_rest_to_the_queue_drop() {
        for panic_at in 0..4 {
            let items = Tracker::new(4);
            let (mut p, mut c) = channel(4);
            for id in 0..4 {
                p.try_push(items.item(id)).unwrap();
            }
            let mut kept = Vec::new();
            assert!(pop_until_panic(&mut c, 4, panic_at, &mut kept));
            assert_eq!(kept.len(), panic_at);
            drop(kept);
            drop((p, c));
            assert_eq!(items.drops(0..4), [1; 4], "panic at item {panic_at}");
        }
    }

    #[test]
    fn threads_pass_a_million_items_in_order() {
        let (mut p, mut c) = channel(64);
        let producer = std::thread::spawn(move || {
            let mut batch = Vec::new();
            let mut next = 0u64;
            while next < 1_000_000 {
                while batch.len() < 16 {
                    batch.push(next);
                    next += 1;
                }
                while !batch.is_empty() {
                    if p.push_batch(&mut batch) == 0 {
                        std::thread::yield_now();
                    }
                }
            }
        });
        let mut expect = 0u64;
        while expect < 1_000_000 {
            if c.pop_batch(32, |x| {
                assert_eq!(x, expect);
                expect += 1;
            }) == 0
            {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
    }
}
