//! Writes at a file offset ([0093]–[00101]): split at chunk boundaries and
//! into pieces, each one mutation under one deadline for the whole write,
//! with the chunks before the one written allocated first. Apart from
//! record append because here the caller chooses the offset, so the
//! library has to split the data and allocate chunks; an append's offset is
//! the primary's.

use leasehold_model::msg::{ClientOp, OpResult};
use leasehold_model::types::{FileId, Offset};
use tokio::time::Instant;

use super::{Client, ClientError, Result};
use crate::payload::Bytes;

/// Largest single write mutation; longer writes are split (a write that
/// spans chunks is split at chunk boundaries anyway, [0093]).
pub const WRITE_PIECE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Chunks one write may allocate past the file's end (the master allocates
/// only a file's next chunk, [00105], so a write far past the end would
/// allocate every chunk before it: a 1 TiB offset was 16,384 chunks).
/// 64 chunks are 4 GiB at the default chunk size.
pub const WRITE_NEW_CHUNKS_MAX: u64 = 64;

impl Client {
    /// Writes `data` at file offset `offset` ([0093]–[00101]), split at chunk
    /// boundaries (and into pieces of at most [`WRITE_PIECE_BYTES_MAX`]).
    /// Chunks before the one written are allocated (empty) as needed. Each
    /// piece is one mutation: a failure may leave the range undefined.
    ///
    /// One deadline (the operation timeout) covers the whole write, every
    /// piece included, and a write that would allocate more than
    /// [`WRITE_NEW_CHUNKS_MAX`] chunks past the file's end is refused
    /// before anything is sent.
    pub async fn write(&self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        let started = Instant::now();
        let deadline = started + self.inner.op_timeout;
        let info = self.open(path).await?;
        let cb = self.inner.chunk_bytes;
        let out_of_range = || ClientError::OutOfRange {
            path: path.into(),
            offset,
            len: data.len() as u64,
        };
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(out_of_range)?;
        if end.div_ceil(cb) > u64::from(u32::MAX) {
            return Err(out_of_range());
        }
        let new_chunks = end.div_ceil(cb).saturating_sub(u64::from(info.chunks));
        if new_chunks > WRITE_NEW_CHUNKS_MAX {
            return Err(ClientError::TooFarPastEnd {
                path: path.into(),
                offset,
                chunks: new_chunks,
                most: WRITE_NEW_CHUNKS_MAX,
            });
        }
        let piece = |index, in_chunk, bytes| {
            self.write_piece(path, info.file, index, in_chunk, bytes, started, deadline)
        };
        let mut chunks = info.chunks;
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = (pos / cb) as u32;
            let in_chunk = pos % cb;
            let n = (rest.len() as u64)
                .min(cb - in_chunk)
                .min(WRITE_PIECE_BYTES_MAX) as usize;
            // The master allocates only the next chunk of a file ([00105]);
            // an empty write allocates each chunk before `index`.
            while chunks < index {
                piece(chunks, 0, Bytes::default()).await?;
                chunks += 1;
            }
            piece(index, in_chunk, Bytes::from(&rest[..n])).await?;
            chunks = chunks.max(index + 1);
            pos += n as u64;
            rest = &rest[n..];
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // a piece and its operation's deadline
    async fn write_piece(
        &self,
        path: &str,
        file: FileId,
        index: u32,
        offset: Offset,
        data: Bytes,
        started: Instant,
        deadline: Instant,
    ) -> Result<()> {
        let op = ClientOp::Write {
            file,
            index,
            offset,
            data,
        };
        match self.run_until("write", path, op, started, deadline).await? {
            OpResult::Mutated { .. } => Ok(()),
            other => unreachable!("write answered with {other:?}"),
        }
    }
}
