//! Reads: of one chunk from an up-to-date replica, naming what the replicas
//! answered when none served it, and of a file range split at chunk
//! boundaries, with a middle chunk's unwritten tail read as zeros. Apart
//! from the mutations because a read's failures are the replicas' own,
//! which the error has to name.

use leasehold_model::msg::{ClientOp, Failure, OpResult};
use leasehold_model::types::{Offset, Payload};

use super::{Client, ClientError, Result};
use crate::payload::Bytes;

/// Largest read asked of a replica at once; well inside the frame limit.
pub const READ_PIECE_BYTES_MAX: u64 = 4 * 1024 * 1024;

const _: () = assert!(READ_PIECE_BYTES_MAX < crate::frame::FRAME_PAYLOAD_BYTES_MAX as u64);

impl Client {
    /// Reads up to `len` bytes of chunk `index` at `offset` from an
    /// up-to-date replica (the actor tries the others if one fails). Short
    /// at the end of that replica's data; empty for a chunk never written.
    pub async fn read_chunk(
        &self,
        path: &str,
        index: u32,
        offset: Offset,
        len: u64,
    ) -> Result<Bytes> {
        let file = self.file_id(path).await?;
        let op = ClientOp::Read {
            file,
            index,
            offset,
            len,
        };
        let (result, reports) = self.run_reporting("read", path, op).await;
        match result {
            Ok(OpResult::Read { data }) => Ok(data),
            Ok(other) => unreachable!("read answered with {other:?}"),
            // A replica answered with a failure and none served the read:
            // say what the replicas said (a corrupt block, a stale
            // replica), which a timeout alone would hide.
            Err(ClientError::Timeout { ms, .. }) if !reports.is_empty() => {
                Err(ClientError::ReplicasFailed {
                    op: "read",
                    path: path.into(),
                    index,
                    reports,
                    timed_out_ms: Some(ms),
                })
            }
            Err(
                e @ ClientError::Failed {
                    reason: Failure::NotFound,
                    ..
                },
            ) => {
                // A chunk allocated but never leased has version 0 at the
                // master and on every replica, which refuse to serve it:
                // it holds nothing.
                match self.stat_chunk(path, index).await {
                    Ok(s) if s.version == 0 => Ok(Bytes::default()),
                    _ if !reports.is_empty() => Err(ClientError::ReplicasFailed {
                        op: "read",
                        path: path.into(),
                        index,
                        reports,
                        timed_out_ms: None,
                    }),
                    _ => Err(e),
                }
            }
            Err(ClientError::Failed { .. }) if !reports.is_empty() => {
                Err(ClientError::ReplicasFailed {
                    op: "read",
                    path: path.into(),
                    index,
                    reports,
                    timed_out_ms: None,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Reads up to `len` bytes at file offset `offset`. Within a chunk that
    /// is not the file's last, bytes past a replica's data read as zeros
    /// (like padding); the result is short at the end of the last chunk's
    /// data.
    pub async fn read(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let info = self.open(path).await?;
        let cb = self.inner.chunk_bytes;
        let size_max = u64::from(info.chunks) * cb;
        let end = offset.saturating_add(len).min(size_max);
        let mut out =
            Vec::with_capacity(end.saturating_sub(offset).min(READ_PIECE_BYTES_MAX) as usize);
        let mut pos = offset;
        while pos < end {
            let index = (pos / cb) as u32;
            let in_chunk = pos % cb;
            let want = (end - pos).min(cb - in_chunk).min(READ_PIECE_BYTES_MAX);
            let got = self.read_chunk(path, index, in_chunk, want).await?;
            out.extend_from_slice(&got);
            pos += got.len() as u64;
            if got.len() as u64 == want {
                continue;
            }
            if index + 1 >= info.chunks {
                break;
            }
            // Past this replica's data in a middle chunk: zeros to its end.
            let chunk_end = (u64::from(index) + 1) * cb;
            let fill = chunk_end.min(end) - pos;
            out.resize(out.len() + fill as usize, 0);
            pos += fill;
        }
        Ok(out)
    }

    /// All of chunk `index` as one up-to-date replica holds it.
    pub(super) async fn read_whole_chunk(&self, path: &str, index: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let got = self
                .read_chunk(path, index, out.len() as u64, READ_PIECE_BYTES_MAX)
                .await?;
            out.extend_from_slice(&got);
            if (got.len() as u64) < READ_PIECE_BYTES_MAX {
                return Ok(out);
            }
        }
    }
}
