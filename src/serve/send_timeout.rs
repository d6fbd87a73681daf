//! A connection whose writes make no progress for the send timeout is closed, as nginx's
//! `send_timeout` does: the limit runs only between two successive writes, not over a whole
//! response, so a slow but reading client keeps its download while a client that stops
//! reading gives its connection back. Without it, clients that request the large ZAL and
//! never read hold their places under `--max-connections` for ever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Told once when a connection is closed for want of send progress.
pub trait OnTimeout: Send + Sync {
    fn send_timed_out(&self);
}

/// `inner` with the send timeout on every write, flush and shutdown.
pub struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits; made on the first wait (most connections never wait).
    stalled: Option<Pin<Box<Sleep>>>,
    armed: bool,
    on_timeout: Option<std::sync::Arc<dyn OnTimeout>>,
    peer: std::net::SocketAddr,
}

impl<S> SendTimeout<S> {
    pub fn new(
        inner: S,
        limit: Duration,
        peer: std::net::SocketAddr,
        on_timeout: Option<std::sync::Arc<dyn OnTimeout>>,
    ) -> SendTimeout<S> {
        SendTimeout {
            inner,
            limit,
            stalled: None,
            armed: false,
            on_timeout,
            peer,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A write's outcome: progress disarms the timer; a wait arms it, and a wait past the
    /// limit is an error that ends the connection.
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.armed = false;
            return r;
        }
        let deadline = Instant::now() + self.limit;
        let sleep = match &mut self.stalled {
            Some(s) => {
                if !self.armed {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .stalled
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::info!(
            "closing the connection from {}: the client read nothing for {} s (--send-timeout)",
            self.peer,
            self.limit.as_secs()
        );
        if let Some(t) = &self.on_timeout {
            t.send_timed_out();
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no send progress within the send timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl OnTimeout for Count {
        fn send_timed_out(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const PEER: &str = "127.0.0.1:1";

    #[test]
    fn a_reader_that_stops_reading_is_cut_off_after_the_limit() {
        rt().block_on(async {
            let (a, _b) = tokio::io::duplex(1024);
            let count = Arc::new(Count::default());
            let mut w = SendTimeout::new(
                a,
                Duration::from_millis(150),
                PEER.parse().unwrap(),
                Some(count.clone()),
            );
            let t = std::time::Instant::now();
            let e = w.write_all(&[b'x'; 64 * 1024]).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            assert!(
                t.elapsed() >= Duration::from_millis(150),
                "{:?}",
                t.elapsed()
            );
            assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_slow_reader_that_keeps_reading_is_not() {
        rt().block_on(async {
            let (a, mut b) = tokio::io::duplex(1024);
            let count = Arc::new(Count::default());
            let mut w = SendTimeout::new(
                a,
                Duration::from_millis(150),
                PEER.parse().unwrap(),
                Some(count.clone()),
            );
            // Reads a little every 50 ms: the whole 16 KiB takes about 800 ms, far more
            // than the limit, but no single wait between writes reaches it.
            let reader = tokio::spawn(async move {
                let mut got = 0;
                let mut buf = [0u8; 1024];
                while got < 16 * 1024 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    got += b.read(&mut buf).await.unwrap();
                }
                got
            });
            let t = std::time::Instant::now();
            w.write_all(&[b'x'; 16 * 1024]).await.unwrap();
            w.flush().await.unwrap();
            assert!(
                t.elapsed() > Duration::from_millis(300),
                "{:?}",
                t.elapsed()
            );
            assert_eq!(reader.await.unwrap(), 16 * 1024);
            assert_eq!(count.0.load(Ordering::SeqCst), 0);
        });
    }
}
