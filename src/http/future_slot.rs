//! A slot for one future at a time, allocated once and reused. A connection's reads (and a
//! stream's sends) are each a new future of the same unnameable type; boxing every one of them cost
//! an allocation and a free per read, that is per request and per relayed chunk.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// Holds at most one future, made from its arguments by the function given to `new`.
pub struct FutureSlot<A, O> {
    inner: Pin<Box<dyn Slot<A, O>>>,
}

trait Slot<A, O> {
    fn start(self: Pin<&mut Self>, args: A);
    fn poll_out(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O>;
    fn is_busy(&self) -> bool;
}

pin_project_lite::pin_project! {
    struct Inner<M, F> {
        make: M,
        #[pin]
        fut: Option<F>,
    }
}

impl<A, O, M, F> Slot<A, O> for Inner<M, F>
where
    M: Fn(A) -> F,
    F: Future<Output = O>,
{
    fn start(self: Pin<&mut Self>, args: A) {
        let mut this = self.project();
        let fut = (this.make)(args);
        this.fut.set(Some(fut));
    }

    fn poll_out(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let mut this = self.project();
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("an empty slot is never polled");
        let out = ready!(fut.poll(cx));
        this.fut.set(None);
        Poll::Ready(out)
    }

    fn is_busy(&self) -> bool {
        self.fut.is_some()
    }
}

impl<A: 'static, O: 'static> FutureSlot<A, O> {
    /// An empty slot whose futures `make` builds.
    pub fn new<M, F>(make: M) -> Self
    where
        M: Fn(A) -> F + 'static,
        F: Future<Output = O> + 'static,
    {
        FutureSlot {
            inner: Box::pin(Inner { make, fut: None }),
        }
    }

    /// Puts a new future in the slot. The slot must be empty.
    pub fn start(&mut self, args: A) {
        debug_assert!(!self.is_busy(), "a future is already in the slot");
        self.inner.as_mut().start(args);
    }

    /// Polls the future in the slot; the slot is empty again once it is ready.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<O> {
        self.inner.as_mut().poll_out(cx)
    }

    pub fn is_busy(&self) -> bool {
        self.inner.is_busy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Waker;

    /// Ready on its second poll, with its input doubled; counts drops.
    struct Twice {
        n: u32,
        polled: bool,
        drops: Rc<Cell<u32>>,
    }

    impl Future for Twice {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
            if std::mem::replace(&mut self.polled, true) {
                Poll::Ready(self.n * 2)
            } else {
                Poll::Pending
            }
        }
    }

    impl Drop for Twice {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    #[test]
    fn runs_one_future_after_another_and_drops_each() {
        let drops = Rc::new(Cell::new(0));
        let mut slot = FutureSlot::new(|(n, drops)| Twice {
            n,
            polled: false,
            drops,
        });
        let mut cx = Context::from_waker(Waker::noop());
        for n in 1..=3 {
            assert!(!slot.is_busy());
            slot.start((n, drops.clone()));
            assert!(slot.is_busy());
            assert_eq!(slot.poll(&mut cx), Poll::Pending);
            assert_eq!(slot.poll(&mut cx), Poll::Ready(n * 2));
            assert_eq!(drops.get(), n, "a finished future is dropped at once");
        }
        // A future still in the slot is dropped with it.
        slot.start((9, drops.clone()));
        drop(slot);
        assert_eq!(drops.get(), 4);
    }
}
