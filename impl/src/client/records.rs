//! Records: framing on the way in (a unique record id, the framing of
//! [`crate::record`], the quarter-chunk limit) for record append
//! ([00103]–[00109]), and reading them back, skipping what fails the
//! framing and the duplicates at-least-once append may leave. One file
//! because the two sides must agree: the reader drops a record as a
//! duplicate by its id, so the ids it trusts are made here.

use leasehold_model::msg::{ClientOp, OpResult};
use leasehold_model::types::{ChunkHandle, Offset, Stamp};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;

use super::{Client, ClientError, Result};
use crate::payload::Bytes;
use crate::record::{self, RECORD_HEADER_BYTES};

/// Low bits of a record id: a per-client sequence from a random start.
const RECORD_SEQ_BITS: u32 = 48;
const RECORD_SEQ_MASK: u64 = (1 << RECORD_SEQ_BITS) - 1;

/// Where an acknowledged record append landed ([00106]: at the same offset
/// on every replica of that chunk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub chunk: ChunkHandle,
    /// The chunk's index in the file.
    pub index: u32,
    /// Where the record's framing starts in the chunk.
    pub offset: Offset,
    pub record_id: u64,
    pub stamp: Stamp,
}

/// A record found by the [`RecordReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub index: u32,
    pub chunk: ChunkHandle,
    /// Where the record's framing starts in the chunk.
    pub offset: Offset,
    pub data: Vec<u8>,
}

/// Where a new client's record sequence starts. Record ids: the client
/// id's low 16 bits in the high bits, a sequence from a random start in the
/// low bits, so that two clients whose ids share those bits do not reuse
/// record ids (the reader would drop real records as duplicates).
pub(super) fn record_seq_start() -> u64 {
    rand::random::<u64>() & (RECORD_SEQ_MASK >> 1)
}

impl Client {
    /// The largest record data [`Client::record_append`] accepts: a quarter
    /// chunk ([00104]) less the framing.
    pub fn record_data_bytes_max(&self) -> u64 {
        (self.inner.chunk_bytes / 4).saturating_sub(RECORD_HEADER_BYTES)
    }

    fn next_record_id(&self) -> u64 {
        let seq = self.inner.next_record.fetch_add(1, Ordering::Relaxed) & RECORD_SEQ_MASK;
        ((self.inner.id & 0xffff) << RECORD_SEQ_BITS) | seq
    }

    /// Record append ([00103]–[00109]): frames `data` and appends it at an
    /// offset the primary chooses. Returns the chunk and the offset of the
    /// record's framing. At least once: after a failure the record may also
    /// be in the file, and a retry may leave duplicates, which
    /// [`Client::records`] drops.
    pub async fn record_append(&self, path: &str, data: &[u8]) -> Result<(ChunkHandle, Offset)> {
        let a = self.record_append_detailed(path, data).await?;
        Ok((a.chunk, a.offset))
    }

    /// [`Client::record_append`] with the chunk index, record id and stamp.
    pub async fn record_append_detailed(&self, path: &str, data: &[u8]) -> Result<Appended> {
        // [00104]: records are at most a quarter chunk, framing included;
        // refused here so nothing is pushed.
        let framed_bytes = RECORD_HEADER_BYTES + data.len() as u64;
        let max_bytes = self.inner.chunk_bytes / 4;
        if framed_bytes > max_bytes || u32::try_from(data.len()).is_err() {
            return Err(ClientError::RecordTooLarge {
                data_bytes: data.len() as u64,
                framed_bytes,
                max_bytes,
            });
        }
        self.record_append_unchecked(path, data).await
    }

    /// [`Client::record_append_detailed`] without the client's own
    /// quarter-chunk check, so that a conformance test can see whether the
    /// primary refuses an oversized record itself ([00104], `conform`).
    /// Records must still fit a frame.
    pub async fn record_append_unchecked(&self, path: &str, data: &[u8]) -> Result<Appended> {
        let file = self.file_id(path).await?;
        let record_id = self.next_record_id();
        let framed = Bytes::from(record::frame(record_id, data));
        let op = ClientOp::Append { file, data: framed };
        match self.run("record append", path, op).await? {
            OpResult::Mutated {
                chunk,
                index,
                offset,
                stamp,
            } => Ok(Appended {
                chunk,
                index,
                offset,
                record_id,
                stamp,
            }),
            other => unreachable!("append answered with {other:?}"),
        }
    }

    /// A reader of `path`'s records, chunk by chunk, as the file is now.
    pub async fn records(&self, path: &str) -> Result<RecordReader> {
        let info = self.open(path).await?;
        Ok(RecordReader {
            client: self.clone(),
            path: path.into(),
            chunks: info.chunks,
            next_index: 0,
            pending: VecDeque::new(),
            seen: HashSet::new(),
            duplicates: 0,
        })
    }

    /// Every record of `path`, each once.
    pub async fn read_records(&self, path: &str) -> Result<Vec<Record>> {
        let mut reader = self.records(path).await?;
        let mut out = Vec::new();
        while let Some(r) = reader.next().await? {
            out.push(r);
        }
        Ok(out)
    }
}

/// Iterates a file's records in file order, each record id once: padding,
/// partial records and garbage fail the framing and are skipped, and a
/// record appended again after a failure is returned only the first time.
pub struct RecordReader {
    client: Client,
    path: String,
    chunks: u32,
    next_index: u32,
    pending: VecDeque<Record>,
    seen: HashSet<u64>,
    duplicates: u64,
}

impl RecordReader {
    /// The next record, or `None` at the end of the file (as it was when the
    /// reader was made).
    pub async fn next(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            if self.next_index >= self.chunks {
                return Ok(None);
            }
            let index = self.next_index;
            self.next_index += 1;
            let stat = self.client.stat_chunk(&self.path, index).await?;
            if stat.version == 0 {
                continue; // never leased, so never written
            }
            let data = self.client.read_whole_chunk(&self.path, index).await?;
            let data_max = self.client.record_data_bytes_max();
            for found in record::scan(&data, data_max) {
                if !self.seen.insert(found.id) {
                    self.duplicates += 1;
                    continue;
                }
                self.pending.push_back(Record {
                    id: found.id,
                    index,
                    chunk: stat.chunk,
                    offset: found.at as u64,
                    data: found.data.to_vec(),
                });
            }
        }
    }

    /// Records skipped so far because their id was already returned.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}
