//! HTTPS without a reverse proxy (`serve --tls-cert --tls-key`): rustls with the ring provider
//! (docs/decisions/tls.md). Handshakes run in their own tasks with a deadline, so a slow or
//! silent client never holds up the others; a plain-HTTP request gets a plain-HTTP 400 saying to
//! use https, rather than a connection closed without a word.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use axum::serve::{IncomingStream, Listener};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const READY_BACKLOG: usize = 128;

/// The first byte of a TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {} as PEM: {error}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: tokio_rustls::rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no certificate (expected -----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificate(PathBuf),
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("the certificate and key cannot be used together: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

fn pem_error(path: &Path) -> impl Fn(tokio_rustls::rustls::pki_types::pem::Error) -> TlsError {
    move |error| TlsError::Pem {
        path: path.to_owned(),
        error,
    }
}

/// A rustls server configuration from a PEM certificate chain (leaf first) and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(pem_error(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_error(key))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that hands out TLS connections once their handshake is done.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accept on `tcp`, handshaking with `config`. Call inside a tokio runtime.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_BACKLOG);
        let acceptor_task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), sender));
        Ok(TlsListener {
            ready,
            local,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends with the listener, so this is never reached in use.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait for some to close.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = async {
                if !starts_with_tls(&stream).await? {
                    refuse_plain_http(stream).await;
                    return Ok(None);
                }
                acceptor.accept(stream).await.map(Some)
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(Some(tls))) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP on the TLS port refused"),
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn starts_with_tls(stream: &TcpStream) -> io::Result<bool> {
    let mut first = [0u8; 1];
    let read = stream.peek(&mut first).await?;
    Ok(read == 1 && first[0] == TLS_HANDSHAKE_RECORD)
}

async fn refuse_plain_http(mut stream: TcpStream) {
    let body = r#"{"error":"tls_required","message":"this server speaks HTTPS only: use an https:// URL"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Makes one service per TLS connection that tells handlers the peer address, as
/// `into_make_service_with_connect_info` does for plain TCP.
#[derive(Clone)]
pub struct WithPeerAddress(pub Router);

impl tower::Service<IncomingStream<'_, TlsListener>> for WithPeerAddress {
    type Response = AddExtension<Router, ConnectInfo<SocketAddr>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TlsListener>) -> Self::Future {
        let peer = ConnectInfo(*stream.remote_addr());
        std::future::ready(Ok(tower::Layer::layer(
            &axum::Extension(peer),
            self.0.clone(),
        )))
    }
}
