//! One SO_REUSEPORT listening socket per worker, so the kernel spreads connections across cores.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Fails when another process listens on `addr`. SO_REUSEPORT would let a second router (same
/// user) share the port and quietly take half the connections; a socket bound without it cannot
/// share, so its bind fails exactly then.
fn nobody_listens(addr: SocketAddr) -> std::io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr}: {e} (is another router running on this port?)"),
        )
    })
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Binds `count` listeners on `host:port` (port 0: the first picks a port, the others share it).
/// `exclusive`: fail when another process listens there (the router; a test backend restarted on
/// its port while the killed one is still going away may share it).
pub fn bind_all(
    host: &str,
    port: u16,
    count: usize,
    exclusive: bool,
) -> std::io::Result<Vec<TcpListener>> {
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot resolve listen host '{host}'"),
        )
    })?;
    if exclusive && addr.port() != 0 {
        nobody_listens(addr)?;
    }
    let first = bind_one(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let actual = first.local_addr()?;
    let mut out = vec![first];
    for _ in 1..count.max(1) {
        out.push(bind_one(actual)?);
    }
    Ok(out)
}
