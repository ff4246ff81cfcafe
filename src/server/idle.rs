//! A worker's idle client connections, so that at its connection cap it can close some to make
//! room instead of leaving every new client in the backlog. Without this, clients that open
//! connections and send nothing (or go quiet between requests) could hold every place for the whole
//! idle timeout. Connections that never sent a request go first, then those idle between requests.
//!
//! A connection is closed by `shutdown(2)` on its socket: its pending read ends at once as if the
//! client had closed, and the connection ends itself the usual way. No waker or timer is involved,
//! and marking a connection busy or idle is two stores per request.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};

use crate::http::clock::coarse_ms;

/// A connection is closed to make room only after this long without a request: one just accepted,
/// or whose next request is on its way, has its bytes in flight, not its client gone.
const MIN_IDLE_MS: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleState {
    /// Reading a request, or serving one.
    Busy,
    /// Waiting for the next request of a keep-alive connection.
    BetweenRequests,
    /// Open, and no request began yet.
    NeverServed,
}

/// One connection's entry: its socket and what it is doing. Owned by the connection, so the
/// socket is open for as long as the registry can reach the entry.
pub struct Ticket {
    fd: RawFd,
    state: Cell<IdleState>,
    /// When it last became idle (`coarse_ms`).
    since: Cell<u64>,
}

impl Ticket {
    pub fn set_busy(&self) {
        self.state.set(IdleState::Busy);
    }

    /// Idle from now on: waiting for a request (`state` says whether one came before).
    pub fn set_idle(&self, state: IdleState) {
        self.state.set(state);
        self.since.set(coarse_ms());
    }

    /// Idle for at least `MIN_IDLE_MS` in `state`, at `now`.
    fn evictable(&self, state: IdleState, now: u64) -> bool {
        self.state.get() == state && now.saturating_sub(self.since.get()) >= MIN_IDLE_MS
    }
}

#[derive(Default)]
pub struct IdleRegistry {
    tickets: RefCell<Vec<Weak<Ticket>>>,
    /// Entries after the last pruning of closed connections.
    pruned_len: Cell<usize>,
}

impl IdleRegistry {
    /// Registers a new connection on `fd`, which has not sent a request yet.
    pub fn register(&self, fd: RawFd) -> Rc<Ticket> {
        let ticket = Rc::new(Ticket {
            fd,
            state: Cell::new(IdleState::NeverServed),
            since: Cell::new(coarse_ms()),
        });
        let mut tickets = self.tickets.borrow_mut();
        // Closed connections leave dead entries: drop them whenever the list doubled.
        if tickets.len() >= 2 * self.pruned_len.get().max(32) {
            tickets.retain(|t| t.strong_count() > 0);
            self.pruned_len.set(tickets.len());
        }
        tickets.push(Rc::downgrade(&ticket));
        ticket
    }

    /// Closes up to `n` connections idle for `MIN_IDLE_MS` or more, those that never sent a request
    /// first; returns how many.
    pub fn evict(&self, n: usize) -> usize {
        let tickets = self.tickets.borrow();
        let now = coarse_ms();
        let mut closed = 0;
        for wanted in [IdleState::NeverServed, IdleState::BetweenRequests] {
            for ticket in tickets.iter().filter_map(Weak::upgrade) {
                if closed == n {
                    return closed;
                }
                if ticket.evictable(wanted, now) {
                    // Marked busy so that it is not picked twice before it has ended.
                    ticket.set_busy();
                    // SAFETY: the ticket is alive, so its connection and socket are open.
                    unsafe { libc::shutdown(ticket.fd, libc::SHUT_RDWR) };
                    closed += 1;
                }
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use super::*;

    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        (client, server)
    }

    #[test]
    fn never_served_connections_go_first_then_idle_ones_and_busy_ones_never() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let reg = IdleRegistry::default();
        let (mut busy_client, busy) = pair(&l);
        let (mut idle_client, idle) = pair(&l);
        let (mut fresh_client, fresh) = pair(&l);
        let t_busy = reg.register(busy.as_raw_fd());
        let t_idle = reg.register(idle.as_raw_fd());
        let t_fresh = reg.register(fresh.as_raw_fd());
        t_busy.set_busy();
        t_idle.set_idle(IdleState::BetweenRequests);
        assert_eq!(reg.evict(3), 0, "none has been idle long enough");
        for t in [&t_idle, &t_fresh] {
            t.since.set(t.since.get() - MIN_IDLE_MS);
        }

        assert_eq!(reg.evict(1), 1);
        let mut b = [0u8; 1];
        assert_eq!(
            fresh_client.read(&mut b).unwrap(),
            0,
            "the fresh one is closed first"
        );
        assert_eq!(
            reg.evict(5),
            1,
            "then only the idle one: the busy one stays"
        );
        assert_eq!(idle_client.read(&mut b).unwrap(), 0);
        busy_client
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        assert!(
            busy_client.read(&mut b).is_err(),
            "the busy one is still open"
        );
        drop(t_busy);
    }

    #[test]
    fn closed_connections_are_pruned() {
        let reg = IdleRegistry::default();
        for _ in 0..1000 {
            drop(reg.register(-1));
        }
        assert!(reg.tickets.borrow().len() < 100);
        assert_eq!(reg.evict(10), 0);
    }
}
