//! HTTPS on the broker's own port, with rustls.
//!
//! The certificate and key (and, for mutual TLS, the CAs of client
//! certificates) are PEM files named by `TLS_CERT`, `TLS_KEY` and
//! `TLS_CLIENT_CA`. A task reads them again every `TLS_RELOAD_INTERVAL_MS`:
//! when their bytes changed and they make a valid configuration, new
//! handshakes use it at once and connections already open keep theirs; when
//! they do not (a half-written file, a key that does not match), the old
//! configuration stays and the log says why, once per version of the
//! files. Reading the bytes rather than watching for events works the same
//! for a file replaced by a rename, a Kubernetes secret's symlink swap and
//! an edit in place.
//!
//! Handshakes run in tasks of their own, at most [`HANDSHAKE_TIMEOUT`]
//! each, so a client that connects and sends nothing holds up no other
//! connection; [`TlsListener`] hands the finished ones to `axum::serve`.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFiles;

/// The longest a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS files make no configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{var} {path}: {source}")]
    Read {
        /// Its variable.
        var: &'static str,
        /// Its path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// A file holds no PEM item of the kind wanted, or a bad one.
    #[error("{var} {path}: {what}")]
    Pem {
        /// Its variable.
        var: &'static str,
        /// Its path.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the certificate, the key or the pair.
    #[error("TLS_CERT and TLS_KEY do not make a configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CAs make no verifier.
    #[error("TLS_CLIENT_CA: {0}")]
    ClientCa(String),
}

/// The bytes of the TLS files, as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pems {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        var,
        path: path.display().to_string(),
        source,
    })
}

impl Pems {
    fn read(files: &TlsFiles) -> Result<Pems, TlsError> {
        Ok(Pems {
            cert: read("TLS_CERT", &files.cert)?,
            key: read("TLS_KEY", &files.key)?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|p| read("TLS_CLIENT_CA", p))
                .transpose()?,
        })
    }

    /// The server configuration these files make.
    fn config(&self, files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
        let pem = |var, path: &Path, what: String| TlsError::Pem {
            var,
            path: path.display().to_string(),
            what,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                pem(
                    "TLS_CERT",
                    &files.cert,
                    format!("not PEM certificates: {e}"),
                )
            })?;
        if chain.is_empty() {
            return Err(pem("TLS_CERT", &files.cert, "holds no CERTIFICATE".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| pem("TLS_KEY", &files.key, format!("holds no private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match (&self.client_ca, &files.client_ca) {
            (Some(ca), Some(path)) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    let cert = cert.map_err(|e| {
                        pem("TLS_CLIENT_CA", path, format!("not PEM certificates: {e}"))
                    })?;
                    roots.add(cert)?;
                }
                if roots.is_empty() {
                    return Err(pem("TLS_CLIENT_CA", path, "holds no CERTIFICATE".into()));
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key)?;
        // The API speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The configuration new handshakes use, swapped when the files change.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    files: TlsFiles,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    loaded: Arc<RwLock<Pems>>,
}

impl TlsConfig {
    /// Reads the files; an error names the variable and what is wrong, and
    /// stops startup.
    pub fn load(files: &TlsFiles) -> Result<TlsConfig, TlsError> {
        let pems = Pems::read(files)?;
        let config = pems.config(files)?;
        Ok(TlsConfig {
            files: files.clone(),
            current: Arc::new(RwLock::new(config)),
            loaded: Arc::new(RwLock::new(pems)),
        })
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }

    /// Reads the files once more and takes them if they changed and make a
    /// configuration. `Ok(true)`: reloaded; `Ok(false)`: unchanged.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let pems = Pems::read(&self.files)?;
        if *self.loaded.read().unwrap_or_else(|e| e.into_inner()) == pems {
            return Ok(false);
        }
        let config = pems.config(&self.files);
        // Whatever the outcome, this version of the files is not tried again.
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = pems;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config?;
        Ok(true)
    }

    /// Reloads every `TLS_RELOAD_INTERVAL_MS` until `stop`.
    pub async fn reload_until(self, stop: CancellationToken) {
        let mut every = tokio::time::interval(self.files.reload_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.reset();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let this = self.clone();
            let outcome = tokio::task::spawn_blocking(move || this.reload()).await;
            match outcome {
                Ok(Ok(true)) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the TLS files changed but cannot be used; serving the previous certificate")
                }
                Err(e) => tracing::warn!(error = %e, "the TLS reload task failed"),
            }
        }
    }

    /// A listener that serves TLS on `listener`.
    pub fn listen(&self, listener: TcpListener) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let config = self.clone();
        let accepting = tokio::spawn(accept(listener, config, tx));
        Ok(TlsListener {
            rx,
            local,
            accepting,
        })
    }
}

/// Accepts TCP connections and runs each handshake in a task of its own.
async fn accept(
    listener: TcpListener,
    config: TlsConfig,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, as axum::serve does.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = config.acceptor();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
            }
        });
    }
}

/// The connections whose handshake succeeded, for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended: nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
