//! A bell one task waits on and others ring, on one executor (plain cells,
//! no atomics): the upstream task when requests are staged for it, a
//! supervisor's session task when its requests are staged or it must close.

use std::cell::Cell;
use std::task::{Poll, Waker};

/// Wakes the one task that waits on it.
#[derive(Default)]
pub struct Bell {
    rung: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Bell {
    pub fn ring(&self) {
        self.rung.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Until the bell is rung (at once if it was since the last wait).
    pub async fn wait(&self) {
        futures_lite::future::poll_fn(|cx| {
            if self.rung.replace(false) {
                Poll::Ready(())
            } else {
                // Polled on every turn of its task's loop: keep the waker
                // it already holds when it is the same task's.
                let waker = match self.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                self.waker.set(Some(waker));
                Poll::Pending
            }
        })
        .await
    }
}
