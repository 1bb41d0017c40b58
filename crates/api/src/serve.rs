//! [`ApiServer`]: the router on a small tokio runtime of its own, on a
//! background thread, so that a synchronous caller can run it.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use crate::{ApiError, ApiState, router};

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Time a client gets to send its request headers (slow-loris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the API server.
pub struct ApiServer;

impl ApiServer {
    /// Binds `state.config().listen` and serves there; see [`ApiServer::spawn`].
    pub fn bind(state: ApiState) -> Result<ApiHandle, ApiError> {
        let listener = std::net::TcpListener::bind(state.config().listen)?;
        ApiServer::spawn(state, listener)
    }

    /// Serves the API on `listener` from a background thread running a tokio
    /// runtime with `config.worker_threads` workers (default 2); the caller
    /// needs no runtime. Refreshes the decision index at once and then every
    /// `config.refresh_interval`. Returns when the server accepts connections.
    pub fn spawn(state: ApiState, listener: std::net::TcpListener) -> Result<ApiHandle, ApiError> {
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(state.config().worker_threads.max(1))
            .max_blocking_threads(4)
            .thread_name("stadtwache-api")
            .enable_all()
            .build()?;
        let (tx, rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), std::io::Error>>();
        let thread = std::thread::Builder::new().name("stadtwache-api-main".into()).spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                serve(state, listener, rx).await;
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(ApiHandle { local_addr, shutdown: Some(tx), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(ApiError::Io(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(ApiError::Panicked)
            }
        }
    }
}

async fn refresh_loop(state: ApiState) {
    let every = Duration::from_micros(state.config().refresh_interval.0.max(1000) as u64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = state.clone();
        let _ = tokio::task::spawn_blocking(move || st.refresh_index()).await;
    }
}

async fn serve(state: ApiState, listener: tokio::net::TcpListener, mut shutdown: oneshot::Receiver<()>) {
    let app = router(state.clone());
    let graceful = GracefulShutdown::new();
    let refresher = tokio::spawn(refresh_loop(state.clone()));
    let cfg = state.config();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        // hyper's own limits are a backstop at twice ours: between the two,
        // the router answers 431 with a JSON body and counts it.
        .max_buf_size((cfg.max_header_bytes * 2).max(8192))
        .max_headers(cfg.max_headers * 2);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(v) => v,
                    Err(_) => {
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = app.clone().map_request(move |mut req: axum::http::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req
                });
                let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        }
    }
    refresher.abort();
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
}

/// A running server. Dropping it shuts the server down too (gracefully).
#[derive(Debug)]
pub struct ApiHandle {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish (at most
    /// [`SHUTDOWN_GRACE`]), stops the runtime and joins its thread.
    pub fn shutdown(mut self) -> Result<(), ApiError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ApiError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ApiError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for ApiHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
