//! The local HTTP server behind `strata view`: the built web viewer's static
//! files and one `.strata` archive, on one address, for one user.
//!
//! - `/archive/NAME` — the archive (`NAME` is its file name), with Range
//!   requests (206, 416, `Accept-Ranges: bytes`) so the viewer can stream it.
//! - every other path — a file under the web directory (`/` is
//!   `index.html`); `..` and anything outside the directory are refused.
//!
//! Every response carries `Cache-Control: no-cache`, so a rebuilt viewer or
//! re-encoded archive is picked up on reload. The files themselves are served
//! by tower-http's `ServeDir` / `ServeFile` (ranges, HEAD, conditional
//! requests, content types: `application/wasm`, `text/javascript`, ...).
//!
//! ```no_run
//! # fn main() -> Result<(), strata_server::ServeError> {
//! use std::path::Path;
//! let server = strata_server::ViewServer::bind(
//!     "127.0.0.1",
//!     0,
//!     Path::new("web/dist"),
//!     Path::new("phantom.strata"),
//! )?;
//! println!("{}", server.url());
//! server.run_until_ctrl_c()?;
//! # Ok(())
//! # }
//! ```

use std::future::{Future, IntoFuture};
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the viewer is not built ({0} missing): run `npm ci && npm run build`")]
    ViewerNotBuilt(PathBuf),
    #[error("cannot read {0}: {1}")]
    Archive(PathBuf, io::Error),
    #[error("{0} is not a file")]
    ArchiveNotFile(PathBuf),
    #[error("{0} has no file name")]
    ArchiveNoName(PathBuf),
    #[error("cannot resolve host {host:?}: {source}")]
    Host { host: String, source: io::Error },
    #[error("port {port} is in use; pass --port 0 for a free one")]
    PortInUse { port: u16 },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("server: {0}")]
    Io(#[from] io::Error),
}

/// Characters kept as they are in a URL path segment: RFC 3986's
/// unreserved set.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters kept as they are in a parameter value of the viewer's hash,
/// which the page reads with `URLSearchParams` (one percent-decoding, `+`
/// as space): the unreserved set and `/`.
const HASH_VALUE: &AsciiSet = &SEGMENT.remove(b'/');

/// How long [`ViewServer::run`] lets requests in flight finish once told to
/// stop.
pub const DRAIN: Duration = Duration::from_secs(2);

/// A bound, not yet running, viewer server. [`ViewServer::bind`] does every
/// check that can fail (web directory, archive, address), so a caller can
/// print the URL knowing the server will answer it.
pub struct ViewServer {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    archive_path: String,
}

#[derive(Clone)]
struct ArchiveFile {
    name: String,
    path: PathBuf,
}

impl ViewServer {
    /// Checks `web_dir` (it must hold `index.html`) and `archive` (a readable
    /// file), and binds `host:port`; port 0 picks a free port.
    pub fn bind(
        host: &str,
        port: u16,
        web_dir: &Path,
        archive: &Path,
    ) -> Result<ViewServer, ServeError> {
        let index = web_dir.join("index.html");
        if !index.is_file() {
            return Err(ServeError::ViewerNotBuilt(index));
        }
        let meta =
            std::fs::metadata(archive).map_err(|e| ServeError::Archive(archive.into(), e))?;
        if !meta.is_file() {
            return Err(ServeError::ArchiveNotFile(archive.into()));
        }
        let name = archive
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ServeError::ArchiveNoName(archive.into()))?
            .to_string();

        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|source| ServeError::Host {
                host: host.into(),
                source,
            })?
            .collect();
        let listener = match TcpListener::bind(&addrs[..]) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(ServeError::PortInUse { port })
            }
            Err(source) => {
                return Err(ServeError::Bind {
                    addr: format!("{host}:{port}"),
                    source,
                })
            }
        };
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;

        let archive_path = format!("archive/{}", utf8_percent_encode(&name, SEGMENT));
        let file = ArchiveFile {
            name,
            path: archive.to_path_buf(),
        };
        let router = Router::new()
            .route("/archive/{name}", get(serve_archive).head(serve_archive))
            .with_state(file)
            .fallback_service(ServeDir::new(web_dir))
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ));
        Ok(ViewServer {
            listener,
            addr,
            router,
            archive_path,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The archive's path on the server, relative and percent-encoded:
    /// `archive/NAME`.
    pub fn archive_path(&self) -> &str {
        &self.archive_path
    }

    /// The page to open: the viewer, told in its URL hash where the archive
    /// is (`http://127.0.0.1:7878/#src=archive/NAME`). The hash parameter is
    /// [`archive_path`](Self::archive_path) encoded once more, so that after
    /// the page's decoding it is that URL path again: `my file.strata` is
    /// `#src=archive/my%2520file.strata`.
    pub fn url(&self) -> String {
        format!(
            "http://{}/#src={}",
            self.addr,
            utf8_percent_encode(&self.archive_path, HASH_VALUE)
        )
    }

    /// Serves on a single-threaded runtime until `shutdown` completes, then
    /// finishes the requests in flight (for at most [`DRAIN`]) and returns.
    pub fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
            let serve = axum::serve(listener, self.router).with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stopping.send(());
            });
            // A slow or stuck client must not keep the command from exiting.
            let drain_limit = async move {
                match stopped.await {
                    Ok(()) => tokio::time::sleep(DRAIN).await,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                served = serve.into_future() => served,
                () = drain_limit => Ok(()),
            }
        })?;
        Ok(())
    }

    /// Serves until Ctrl-C (SIGINT).
    pub fn run_until_ctrl_c(self) -> Result<(), ServeError> {
        self.run(async {
            // If the handler cannot be installed, serve until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// `/archive/{name}`: the archive if `name` is its file name, else 404.
async fn serve_archive(
    State(file): State<ArchiveFile>,
    UrlPath(name): UrlPath<String>,
    request: Request,
) -> Response {
    if name != file.name {
        return StatusCode::NOT_FOUND.into_response();
    }
    match ServeFile::new(&file.path).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(infallible) => match infallible {},
    }
}
