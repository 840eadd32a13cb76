//! Data blocks and their checksums: a block is read only if it matches its
//! CRC32C, and a write splices its bytes in and recomputes the checksums of
//! the blocks it touches. Separate because this is where STORE-1 (a block
//! that fails its checksum is an error, never data) holds for reads and
//! writes alike, whatever the metadata format or the sync order.
//!
//! Overwriting part of a block ([00106]: a secondary writes a record at the
//! primary's offset even over existing data) verifies the block's bytes that
//! survive the write before recomputing its checksum, so a write never
//! launders corruption it did not cause. An append extends the last
//! block's stored checksum instead of reading the block back (GFS §5.2),
//! which launders nothing either: a corrupt old byte still fails the
//! block's next read.

use leasehold_model::types::StoreError;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::{io_error, ChunkMeta, FileStore, CHECKSUM_BLOCK_BYTES};

impl FileStore {
    /// Replaces `[offset, offset + new.len())` with `new`, filling any gap
    /// between the current end and `offset` with zeros. Only the new bytes
    /// (and the gap) are written, never the old bytes, so an append costs
    /// one copy into the page cache. Old bytes that share a block with an
    /// overwrite are read, verified and fed to the block's new checksum;
    /// an append only extends the checksum of the block it continues.
    pub(super) fn splice(
        &self,
        meta: &mut ChunkMeta,
        data: &File,
        offset: u64,
        new: &[u8],
    ) -> Result<(), StoreError> {
        let end = offset
            .checked_add(new.len() as u64)
            .ok_or(StoreError::OutOfRange)?;
        if end > self.inner.chunk_bytes {
            return Err(StoreError::OutOfRange);
        }
        let old_len = meta.len;
        let write_start = offset.min(old_len);
        if write_start == end {
            return Ok(());
        }
        let new_len = old_len.max(end);
        let first_block = write_start / CHECKSUM_BLOCK_BYTES;
        let last_block = (end - 1) / CHECKSUM_BLOCK_BYTES;
        let region_start = first_block * CHECKSUM_BLOCK_BYTES;
        let last_start = last_block * CHECKSUM_BLOCK_BYTES;
        let region_end = (last_start + CHECKSUM_BLOCK_BYTES).min(new_len);

        // An append (nothing old at or after its start) extends the
        // checksum of the last block instead of reading the block's old
        // bytes back (GFS §5.2: "we just incrementally update the checksum
        // for the last partial checksum block"): that checksum covers
        // exactly the old bytes, so appending 1 KiB no longer reads,
        // checks and re-checksums up to 64 KiB (issue #13). It launders
        // nothing: were an old byte corrupt, the extended checksum still
        // disagrees with it, and the next read of the block fails.
        let appending = offset >= old_len;
        let extended =
            (appending && region_start < write_start).then(|| meta.crcs[first_block as usize]);
        // Otherwise old bytes that share a block with the write survive
        // it: verify them before they go into a new checksum, and before
        // anything is written, so a refused write changes nothing.
        let prefix = if region_start < write_start && !appending {
            read_block(data, meta, first_block, true)?
        } else {
            Vec::new()
        };
        let keeps_suffix = end < old_len.min(last_start + CHECKSUM_BLOCK_BYTES);
        let last_read;
        let suffix: &[u8] = match (
            keeps_suffix,
            last_block == first_block && !prefix.is_empty(),
        ) {
            (false, _) => &[],
            (true, true) => &prefix,
            (true, false) => {
                last_read = read_block(data, meta, last_block, true)?;
                &last_read
            }
        };
        let gap = vec![0u8; offset.saturating_sub(old_len) as usize];

        if !gap.is_empty() {
            data.write_all_at(&gap, old_len).map_err(io_error)?;
        }
        data.write_all_at(new, offset).map_err(io_error)?;

        // The region's final bytes, in order, as slices of what is at hand.
        let mut pieces: Vec<(u64, &[u8])> = Vec::with_capacity(4);
        if !prefix.is_empty() {
            pieces.push((
                region_start,
                &prefix[..(write_start - region_start) as usize],
            ));
        }
        pieces.push((old_len.min(offset), &gap));
        pieces.push((offset, new));
        if keeps_suffix {
            let at = (end - last_start) as usize;
            let until = (old_len - last_start) as usize;
            pieces.push((end, &suffix[at..until.min(suffix.len())]));
        }
        meta.len = new_len;
        meta.crcs.resize(block_count(new_len), 0);
        for block in first_block..=last_block {
            let from = block * CHECKSUM_BLOCK_BYTES;
            let to = (from + CHECKSUM_BLOCK_BYTES).min(region_end);
            let mut crc = match extended {
                Some(old) if block == first_block => old,
                _ => 0,
            };
            for &(at, bytes) in &pieces {
                let lo = from.max(at);
                let hi = to.min(at + bytes.len() as u64);
                if lo < hi {
                    crc =
                        crc32c::crc32c_append(crc, &bytes[(lo - at) as usize..(hi - at) as usize]);
                }
            }
            meta.crcs[block as usize] = crc;
        }
        Ok(())
    }
}

/// The bytes of one block of data (partial if it is the last), checked
/// against the block's checksum if `verify`.
pub(super) fn read_block(
    data: &File,
    meta: &ChunkMeta,
    block: u64,
    verify: bool,
) -> Result<Vec<u8>, StoreError> {
    let start = block * CHECKSUM_BLOCK_BYTES;
    let end = (start + CHECKSUM_BLOCK_BYTES).min(meta.len);
    assert!(
        start < end,
        "block {block} is past the data ({} bytes)",
        meta.len
    );
    let mut buf = vec![0u8; (end - start) as usize];
    match data.read_exact_at(&mut buf, start) {
        Ok(()) => {}
        // The metadata promises bytes the file does not have.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(StoreError::Corrupt),
        Err(e) => return Err(io_error(e)),
    }
    // STORE-1: a block that fails its checksum is an error, never data.
    if verify && crc32c::crc32c(&buf) != meta.crcs[block as usize] {
        return Err(StoreError::Corrupt);
    }
    Ok(buf)
}

pub(super) fn block_count(len: u64) -> usize {
    len.div_ceil(CHECKSUM_BLOCK_BYTES) as usize
}
