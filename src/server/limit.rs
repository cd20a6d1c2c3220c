//! Bounds on what one client can take: a listener that holds at most N connections
//! open at once (past that it stops accepting, so further clients wait in the
//! kernel's backlog instead of each costing the server a task and buffers), the
//! per-token rate limits, and the request deadline on bodies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A Unix listener with a cap on open connections.
pub(crate) struct LimitedListener {
    inner: tokio::net::UnixListener,
    slots: Arc<Semaphore>,
}

impl LimitedListener {
    pub(crate) fn new(inner: tokio::net::UnixListener, max: usize) -> Self {
        LimitedListener {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

/// A connection holding one of the listener's slots until it is dropped.
pub(crate) struct LimitedStream {
    pub(crate) inner: UnixStream,
    _slot: OwnedSemaphorePermit,
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only waits.
        let slot = loop {
            if let Ok(s) = self.slots.clone().acquire_owned().await {
                break s;
            }
        };
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            LimitedStream {
                inner: io,
                _slot: slot,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Per-token token buckets: every route that takes a number is an oracle over ~10^10
/// possible numbers, so each token gets a bounded rate.
///
/// A bucket holds at most `burst` units and refills at `rate` per second. A request
/// is let through while the bucket holds at least one unit, and is then charged what
/// it cost (one per number looked up or written, one per record a last-4 search
/// returned), which may leave the bucket in debt: a batch of 10,000 numbers passes
/// at once, and the token waits until the debt is paid. The long-run rate is bounded
/// either way.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    what: &'static str,
    flag: &'static str,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// `rate` units per second, bursts of `burst`; a rate of 0 means no limit. `what`
    /// names the limit in the refusal.
    pub(crate) fn new(rate: f64, burst: f64, what: &'static str, flag: &'static str) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            what,
            flag,
            buckets: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn refill(&self, token_id: &str) -> f64 {
        let now = std::time::Instant::now();
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (level, at) = map.entry(token_id.to_owned()).or_insert((self.burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        *level
    }

    /// Whether the token may make a request now (its bucket holds a unit); charges
    /// nothing.
    pub(crate) fn check(&self, token_id: &str) -> Result<(), super::ApiError> {
        if self.rate <= 0.0 || self.refill(token_id) >= 1.0 {
            Ok(())
        } else {
            Err(self.refusal())
        }
    }

    /// Charges `n` units to the token's bucket (after [`RateLimiter::check`]).
    pub(crate) fn charge(&self, token_id: &str, n: usize) {
        if self.rate <= 0.0 {
            return;
        }
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((level, _)) = map.get_mut(token_id) {
            *level -= n as f64;
        }
    }

    /// [`RateLimiter::check`], then [`RateLimiter::charge`] of `n`.
    pub(crate) fn take(&self, token_id: &str, n: usize) -> Result<(), super::ApiError> {
        self.check(token_id)?;
        self.charge(token_id, n);
        Ok(())
    }

    fn refusal(&self) -> super::ApiError {
        super::ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            crate::api::code::RATE_LIMITED,
            format!(
                "{} rate limit of this token reached: slow down and retry (the limit is {} of `phonevault serve`)",
                self.what, self.flag
            ),
        )
    }
}

/// A request body that fails once the request's deadline has passed: a client that
/// sends its body a byte at a time no longer holds a connection (and its slot) for
/// longer than the deadline. `fired` tells the handler why the body failed.
pub(crate) struct DeadlineBody {
    inner: axum::body::Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<std::sync::atomic::AtomicBool>,
}

impl DeadlineBody {
    pub(crate) fn new(
        inner: axum::body::Body,
        deadline: tokio::time::Instant,
        fired: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            fired,
        }
    }
}

/// The body error of a request past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request's deadline passed before its body arrived")]
pub(crate) struct DeadlinePassed;

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(f) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(f.map(|r| r.map_err(Into::into)));
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.fired.store(true, std::sync::atomic::Ordering::SeqCst);
            return Poll::Ready(Some(Err(Box::new(DeadlinePassed))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
