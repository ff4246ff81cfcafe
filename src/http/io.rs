//! Upstream sockets: plain TCP on the runtime's native (io_uring) operations, TLS through rustls on
//! poll-based I/O.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, OnceLock};

use monoio::io::{IntoPollIo, Splitable};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use monoio::net::tcp::TcpOwnedWriteHalf;
use tokio_rustls::client::TlsStream;

use super::reader::Reader;

pub enum Stream {
    Plain {
        reader: Reader,
        writer: TcpOwnedWriteHalf,
        /// The socket both halves share.
        fd: RawFd,
    },
    Tls(Box<TlsStream<TcpStreamPoll>>),
}

impl Stream {
    /// Whether an idle connection can carry another request: the peer has not closed or reset it
    /// and has sent nothing unasked. One non-blocking peek on the socket; nothing is consumed.
    pub fn still_open(&self) -> bool {
        let fd = match self {
            Stream::Plain { fd, .. } => *fd,
            Stream::Tls(tls) => tls.get_ref().0.as_raw_fd(),
        };
        let mut byte = 0u8;
        // SAFETY: `fd` is this connection's open socket, and one byte of writable memory is given.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        // Any byte means the connection is not reusable. Plain HTTP: bytes before a request are
        // not an answer to it. TLS: a compliant server sends nothing unasked on an idle connection
        // (session tickets come before the first answer, which was read whole), so it is a
        // close_notify, an alert, or an unasked answer (such as a 408) inside a record.
        match n {
            n if n >= 0 => false,
            _ => std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = super::tls_roots::root_store();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Connects to `host:port` (with TLS when asked), with TCP_NODELAY set.
pub async fn connect(host: &str, port: u16, tls: bool) -> std::io::Result<Stream> {
    let tcp = connect_first(&super::resolve::addresses(host, port)?).await?;
    tcp.set_nodelay(true)?;
    if !tls {
        let fd = tcp.as_raw_fd();
        let (r, w) = tcp.into_split();
        return Ok(Stream::Plain {
            reader: Reader::new(r),
            writer: w,
            fd,
        });
    }
    let tcp = tcp.into_poll_io()?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config())
        .connect(name, tcp)
        .await?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// Tries the addresses in order and keeps the first that accepts: a name such as `localhost` often
/// resolves to `::1` first while the backend listens on 127.0.0.1 only.
async fn connect_first(addrs: &[SocketAddr]) -> std::io::Result<monoio::net::TcpStream> {
    let mut last = None;
    for addr in addrs {
        match monoio::net::TcpStream::connect_addr(*addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_address_falls_through_to_the_next() {
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open_addr = open.local_addr().unwrap();
        let closed_addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // dropped at once: nothing listens there
        crate::rt::block_on(crate::config::IoDriver::Auto, async move {
            let tcp = connect_first(&[closed_addr, open_addr]).await.unwrap();
            assert_eq!(tcp.peer_addr().unwrap(), open_addr);
            let refused = connect_first(&[closed_addr]).await.unwrap_err();
            assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
            assert!(connect_first(&[]).await.is_err());
        });
    }
}
