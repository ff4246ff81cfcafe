//! A deadline that moves often but rarely passes (keep-alive idle, a stream's idle limit, the wait for
//! an upstream's response head).
//!
//! Registering and removing a timer in the runtime's wheel for every request or every chunk costs
//! more than the rest of the bookkeeping. Here one timer stays registered; moving the deadline later
//! only stores it, and when the timer fires before the real deadline it is pushed back then. Moving
//! the deadline earlier re-arms it at once.
//!
//! A timer belongs to one task: monoio keeps the first waker registered with a timer until it fires,
//! so a timer polled by a second task would still wake the first.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use std::time::Instant;

use monoio::time::Sleep;

pub struct LazyTimer {
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl LazyTimer {
    pub fn new(deadline: Instant) -> Self {
        LazyTimer {
            deadline,
            timer: None,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn set(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if let Some(timer) = self.timer.as_mut() {
            if timer.deadline().into_std() > deadline {
                timer.as_mut().reset(deadline.into());
            }
        }
    }

    /// True once the deadline has passed; otherwise the task is woken by then (or a little earlier,
    /// after which this is asked again).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if Instant::now() >= self.deadline {
                return true;
            }
            let deadline = self.deadline;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(monoio::time::sleep_until(deadline.into())));
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            // Fired for an older, earlier deadline: wait for the current one.
            timer.as_mut().reset(deadline.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    fn run<F: Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    async fn wait(t: &mut LazyTimer) {
        poll_fn(|cx| {
            if t.poll_expired(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// A timer for `deadline`, polled once so that its wheel entry exists.
    async fn armed(deadline: Instant) -> LazyTimer {
        let mut t = LazyTimer::new(deadline);
        assert!(!poll_fn(|cx| Poll::Ready(t.poll_expired(cx))).await);
        t
    }

    #[test]
    fn fires_at_the_latest_deadline_not_the_first() {
        run(async {
            let start = Instant::now();
            // Armed at 20 ms, then moved to 60 ms: it must not end at 20 ms.
            let mut t = armed(start + Duration::from_millis(20)).await;
            t.set(start + Duration::from_millis(60));
            wait(&mut t).await;
            assert!(start.elapsed() >= Duration::from_millis(60));
        });
    }

    #[test]
    fn an_earlier_deadline_takes_effect() {
        run(async {
            let start = Instant::now();
            let mut t = armed(start + Duration::from_secs(60)).await;
            t.set(start + Duration::from_millis(10));
            let waited = monoio::time::timeout(Duration::from_secs(5), wait(&mut t)).await;
            assert!(waited.is_ok(), "the earlier deadline woke the task");
            assert!(start.elapsed() >= Duration::from_millis(10));
        });
    }
}
