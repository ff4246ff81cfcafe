//! Upstream sockets: plain TCP on the runtime's native (io_uring) operations, TLS through rustls on
//! poll-based I/O.

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
    },
    Tls(Box<TlsStream<TcpStreamPoll>>),
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
    let tcp = monoio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    if !tls {
        let (r, w) = tcp.into_split();
        return Ok(Stream::Plain {
            reader: Reader::new(r),
            writer: w,
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
