//! A single-threaded, single-waiter notification: `notify` sets a flag and
//! wakes the waiter; `wait` resolves once the flag is set and clears it.
//! Several notifies before a wait collapse into one (a dirty bit). Lives on
//! one executor; never crosses cores.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves when notified (at once if a notify is pending).
    pub fn wait(&self) -> Wait<'_> {
        Wait { notify: self }
    }
}

pub struct Wait<'a> {
    notify: &'a Notify,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.set.replace(false) {
            return Poll::Ready(());
        }
        *self.notify.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_notify_resolves_the_next_wait_once() {
        let n = Notify::default();
        n.notify();
        n.notify();
        futures_lite::future::block_on(n.wait());
        assert!(!n.is_set());
        let polled = futures_lite::future::block_on(futures_lite::future::poll_once(n.wait()));
        assert!(polled.is_none());
    }
}
