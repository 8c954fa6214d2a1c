//! Response bodies of the agent server: a whole message, or chunks from a channel as the log
//! reader produces them; and [`ChannelWriter`], the reader's `AsyncWrite` end of that channel.
//! When hyper drops a body (the client went away) the channel closes: the writer's next write
//! fails and [`ChannelWriter::closed`] wakes an idle follower.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Chunks in flight between the reader and the connection: a slow client slows the reader.
pub const CHANNEL_DEPTH: usize = 16;

pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    pub fn text(s: impl Into<String>) -> ResponseBody {
        ResponseBody::Full(Some(Bytes::from(s.into())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Writes become chunks of a [`ResponseBody::Stream`].
pub struct ChannelWriter {
    tx: PollSender<Bytes>,
    /// A second handle, to wait for the receiver's end without a write.
    watch: mpsc::Sender<Bytes>,
}

impl ChannelWriter {
    pub fn new() -> (ChannelWriter, ResponseBody) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        (
            ChannelWriter {
                tx: PollSender::new(tx.clone()),
                watch: tx,
            },
            ResponseBody::Stream(rx),
        )
    }

    /// Completes when the body was dropped (the client is gone).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let watch = self.watch.clone();
        async move { watch.closed().await }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.tx.poll_reserve(cx)).map_err(|_| gone())?;
        this.tx.send_item(Bytes::copy_from_slice(buf)).map_err(|_| gone())?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn writes_arrive_as_chunks_and_a_dropped_body_is_noticed() {
        let (mut w, mut body) = ChannelWriter::new();
        w.write_all(b"one\n").await.unwrap();
        let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await.unwrap().unwrap();
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"one\n")));
        let closed = w.closed();
        drop(body);
        closed.await;
        assert_eq!(
            w.write_all(b"two\n").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
