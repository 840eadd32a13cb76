//! Frames queued for one connection go out together: a writer that wakes
//! to one frame takes the others already waiting and writes them with one
//! vectored write. Under load a chunkserver's group commit sends a batch's
//! `Apply`s, replies and forwards back to back, and each used to cost its
//! own `sendto` (and, on a connection we only write to, its own probe for
//! a closed peer): about 10 `sendto` and 16 `recvfrom` per 1 KiB append at
//! 16 clients (docs/performance.md).

use crate::frame::Encoded;
use crate::host::WRITE_BATCH_BYTES_MAX;
use std::io::IoSlice;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// `first`, then what `more` has waiting, in order, up to
/// [`WRITE_BATCH_BYTES_MAX`] (a frame that starts under it is taken
/// whole). `more` must not wait: it returns `None` when nothing is queued.
pub(super) fn gather(first: Encoded, mut more: impl FnMut() -> Option<Encoded>) -> Vec<Encoded> {
    let mut bytes = first.len();
    let mut batch = vec![first];
    while bytes < WRITE_BATCH_BYTES_MAX {
        let Some(frame) = more() else { break };
        bytes += frame.len();
        batch.push(frame);
    }
    batch
}

/// Writes every frame of `batch`, each piece of it in order, in as few
/// system calls as the socket takes.
pub(super) async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut W,
    batch: &[Encoded],
) -> std::io::Result<()> {
    if let [one] = batch {
        if let [piece] = one.pieces() {
            return w.write_all(piece).await;
        }
    }
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .flat_map(|f| f.pieces())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `step` bytes a call, as a full socket
    /// buffer does, so a batch is written across many partial writes.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            self.calls += 1;
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.step - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.step {
                    break;
                }
            }
            self.calls += 1;
            std::task::Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_batch_is_written_whole_and_in_order_across_partial_writes() {
        let frames: Vec<Vec<u8>> = vec![vec![1; 5], vec![], vec![2; 7], vec![3; 1]];
        let batch: Vec<Encoded> = frames.iter().cloned().map(Encoded::from).collect();
        let mut w = Trickle {
            got: vec![],
            step: 3,
            calls: 0,
        };
        write_batch(&mut w, &batch).await.unwrap();
        assert_eq!(w.got, frames.concat());
        // 13 bytes, 3 a call: five calls, not one per frame and a rest.
        assert_eq!(w.calls, 5);
    }

    #[test]
    fn gather_takes_what_waits_up_to_the_byte_budget() {
        let mut queue: std::collections::VecDeque<Encoded> =
            [vec![0; 10], vec![0; WRITE_BATCH_BYTES_MAX], vec![0; 1]]
                .map(Encoded::from)
                .into();
        let batch = gather(vec![0; 1].into(), || queue.pop_front());
        // The large frame starts under the budget and is taken whole; the
        // one after it waits for the next batch.
        assert_eq!(batch.len(), 3);
        assert_eq!(queue.len(), 1);
        let batch = gather(vec![0; 1].into(), || queue.pop_front());
        assert_eq!(batch.len(), 2);
        assert!(queue.is_empty());
    }
}
