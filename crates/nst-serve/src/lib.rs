//! `nst serve`: a style-transfer studio in the browser, as a library. A local web server (axum on
//! its own tokio runtime) in front of `nst-engine`: pick or upload images, set the parameters, start
//! runs that are queued and run one at a time, watch them live (iteration, costs, speed, a preview
//! image), pause, resume, stop or continue them, and browse the history kept in the output folder.
//!
//! - [`Server::start`]: binds, takes back the folder's history, starts the worker; [`Server::url`],
//!   [`Server::shutdown`].
//! - [`Config`]: the folder, the model, the samples, the token, the limits.
//! - [`settings::Settings`]: a run's settings as the page sends them.
//! - [`store`]: the folder's layout; every file name is server-chosen.
//!
//! What it does not do: print, parse command lines, download weights or open a browser (that is
//! `nst serve`'s job, in `nst-cli`). The page, its script and its style sheet are files in `assets/`,
//! embedded at build time: the binary serves everything, with no network access.
//!
//! ## Security
//! It binds where it is told (the front end defaults to loopback). With a token ([`Config::token`],
//! required by the front end for any other address) every request, the event stream included, must
//! carry it (`Authorization: Bearer`, a `token` query parameter once, then a cookie). Without one,
//! only loopback `Host` names are accepted (against DNS rebinding). Requests that change state must
//! come from the page's own origin; no CORS header is ever sent.
//!
//! ## Features
//! None.
//!
//! ## Example
//! ```no_run
//! # fn main() -> Result<(), nst_serve::Error> {
//! let config = nst_serve::Config::new("studio".into(), "pretrained-model/imagenet-vgg-verydeep-19.mat".into());
//! let server = nst_serve::Server::start(config, "127.0.0.1:8080".parse().expect("an address"))?;
//! assert!(server.url().starts_with("http://127.0.0.1:8080/"));
//! server.shutdown()?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod assets;
mod auth;
mod http;
pub mod settings;
mod sink;
pub mod store;
mod studio;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

pub use settings::Settings;

/// The largest upload accepted, in bytes (checked before anything is decoded).
pub const UPLOAD_LIMIT: usize = 32 * 1024 * 1024;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder of runs, uploads and history.
    pub out_dir: PathBuf,
    /// The VGG `.mat` model.
    pub weights: PathBuf,
    /// A folder of sample images offered on the page (`images/`), if any.
    pub samples: Option<PathBuf>,
    /// The token every request must carry; `None`: none (loopback only).
    pub token: Option<String>,
    /// The most runs waiting in the queue.
    pub queue_limit: usize,
    /// The least time between two preview images.
    pub preview_every: Duration,
    /// Checkpoint interval in iterations: a killed server loses at most this many.
    pub checkpoint_every: usize,
    /// Interval of the logged images (the frames of the GIF).
    pub print_every: usize,
    /// The settings the page starts from.
    pub defaults: Settings,
    /// The size of the rayon pool the front end set up (for the run records; 0: rayon's).
    pub threads: usize,
    /// How long a connection may take to send a request's headers before it is closed.
    pub header_timeout: Duration,
}

impl Config {
    /// The defaults: 16 queued runs, a preview at most every 250 ms, a checkpoint every 10
    /// iterations, a GIF frame every 10, the seed program's settings, no samples, no token, 30 s
    /// for a request's headers.
    pub fn new(out_dir: PathBuf, weights: PathBuf) -> Config {
        Config {
            out_dir,
            weights,
            samples: None,
            token: None,
            queue_limit: 16,
            preview_every: Duration::from_millis(250),
            checkpoint_every: 10,
            print_every: 10,
            defaults: Settings::default(),
            threads: 0,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder of the studio cannot be used.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A thread or the async runtime cannot be started, or the server failed.
    #[error("the server")]
    Runtime(#[source] std::io::Error),
    /// A request is malformed or asks for something impossible (400).
    #[error("{0}")]
    BadRequest(String),
    /// An upload is not a PNG, JPEG or GIF image, or one over the limits (415).
    #[error("{0}")]
    Unsupported(String),
    /// No such run, image or file (404).
    #[error("not found")]
    NotFound,
    /// The request does not fit the run's state (409).
    #[error("{0}")]
    Conflict(String),
    /// A body is over its size limit, or was not sent in time (413).
    #[error("{0}")]
    TooLarge(String),
    /// The queue is full (429).
    #[error("the queue is full ({0} runs wait): wait for one to finish, or remove one")]
    QueueFull(usize),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running studio: the HTTP server on its own thread and runtime, the worker on another.
pub struct Server {
    addr: SocketAddr,
    token: Option<String>,
    studio: Arc<studio::Studio>,
    stop: Option<oneshot::Sender<()>>,
    http: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr` (port 0: any free port), opens the folder (queuing again the runs a previous
    /// server left unfinished) and starts serving.
    ///
    /// # Errors
    /// [`Error::Bind`], [`Error::Io`] for the folder, [`Error::Runtime`].
    pub fn start(config: Config, addr: SocketAddr) -> Result<Server> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        listener.set_nonblocking(true).map_err(Error::Runtime)?;
        let token = config.token.clone();
        let header_timeout = config.header_timeout;
        let (studio, worker) = studio::Studio::start(config)?;
        let app = http::router(Arc::clone(&studio));
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nst-serve-http")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let http = std::thread::Builder::new()
            .name("nst-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    http::serve(listener, app, header_timeout, stopped).await;
                    Ok(())
                })
            })
            .map_err(Error::Runtime)?;
        Ok(Server {
            addr,
            token,
            studio,
            stop: Some(stop),
            http: Some(http),
            worker: Some(worker),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's URL, with the token when there is one.
    pub fn url(&self) -> String {
        match &self.token {
            Some(t) => format!("http://{}/?token={t}", self.addr),
            None => format!("http://{}/", self.addr),
        }
    }

    /// Stops: the run in progress is cancelled (it writes a checkpoint and is resumed by the next
    /// server on the folder), the worker and the HTTP server end. Open event streams end with it.
    ///
    /// # Errors
    /// [`Error::Runtime`] when the HTTP server had failed.
    pub fn shutdown(mut self) -> Result<()> {
        self.studio.close();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.http.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Err(e))) => Err(Error::Runtime(e)),
            _ => Ok(()),
        }
    }

    /// Whether the HTTP server stopped by itself (it failed).
    pub fn has_failed(&self) -> bool {
        self.http.as_ref().is_some_and(|h| h.is_finished())
    }
}

/// A fresh random token of 128 bits, as 32 hex digits, from the operating system's generator.
pub fn new_token() -> String {
    use rand::TryRngCore as _;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system has a random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
