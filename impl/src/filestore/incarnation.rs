//! The `incarnation` file: the chunkserver's restart count, kept beside the
//! chunks but not one of them. Separate because it has its own format and
//! its own durability: replaced by rename and synced at once, never left
//! for the group commit.

use leasehold_model::types::StoreError;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::io_error;
use super::sync::sync_dir;

pub(super) const INCARNATION_FILE: &str = "incarnation";
const INCARNATION_MAGIC: &[u8; 8] = b"LHINCAR1";

/// The saved restart count: 0 if the server never restarted. A damaged file
/// refuses the open: restarting with a wrong count could make the server
/// accept version announcements meant for a previous life.
pub(super) fn load_incarnation(dir: &Path) -> Result<u32, StoreError> {
    let bytes = match fs::read(dir.join(INCARNATION_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(e)),
    };
    decode_incarnation(&bytes).ok_or_else(|| {
        StoreError::Io(format!(
            "{} is damaged",
            dir.join(INCARNATION_FILE).display()
        ))
    })
}

/// The restart count in an `incarnation` file's bytes; `None` if damaged.
pub(super) fn decode_incarnation(bytes: &[u8]) -> Option<u32> {
    let ok = bytes.len() == 16 && &bytes[..8] == INCARNATION_MAGIC;
    let count = ok.then(|| u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")));
    let crc = ok.then(|| u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")));
    match (count, crc) {
        (Some(count), Some(crc)) if crc32c::crc32c(&bytes[..12]) == crc => Some(count),
        _ => None,
    }
}

/// An `incarnation` file's bytes: magic, count, and their CRC32C.
pub(super) fn encode_incarnation(count: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(INCARNATION_MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The next restart count before it is renamed into place, and between
/// restarts the room kept for it ([`reserve_incarnation`]).
const INCARNATION_NEXT: &str = "incarnation.tmp";

/// Replaces the restart count atomically and durably. The new count is
/// written over the room reserved after the last one, so a server whose
/// disk filled since can still count its restart: without a count it must
/// stay silent (it could not tell old version announcements from new), and
/// a full disk would take the server's every replica out, readable ones
/// included.
pub(super) fn write_incarnation(dir: &Path, count: u32) -> Result<(), StoreError> {
    let out = encode_incarnation(count);
    let path = dir.join(INCARNATION_FILE);
    let tmp = dir.join(INCARNATION_NEXT);
    let file = write_over_reserved(&tmp, &out)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_error)?;
    sync_dir(dir)?;
    reserve_incarnation(dir);
    Ok(())
}

/// Claims the room the next restart count needs: the rename of each count
/// frees the previous count's file, and this takes it back before chunk
/// data can. So that the first count frees one too, a server that never
/// restarted writes its count of 0 out (a missing file reads as 0 as
/// well). Zeros in the reservation: only the `incarnation` file is ever
/// read. Best effort: without the reservation the next restart needs room
/// of its own.
pub(super) fn reserve_incarnation(dir: &Path) {
    let keep = || -> io::Result<()> {
        let path = dir.join(INCARNATION_FILE);
        let tmp = dir.join(INCARNATION_NEXT);
        if !path.exists() {
            // Whole or absent after a crash, never torn (a torn count
            // would refuse every later start).
            let mut file = File::create(&tmp)?;
            file.write_all(&encode_incarnation(0))?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &path)?;
        }
        if !fs::metadata(&tmp).is_ok_and(|m| m.len() >= 16) {
            File::create(&tmp)?.write_all(&[0u8; 16])?;
        }
        Ok(())
    };
    if let Err(e) = keep() {
        tracing::warn!(dir = %dir.display(), "no room kept for the next restart count: {e}");
    }
}

/// Writes `bytes` at the start of the file at `path` without truncating
/// it, so over room a reservation claimed before (created if missing);
/// returns the file for the caller's sync.
fn write_over_reserved(path: &Path, bytes: &[u8]) -> Result<File, StoreError> {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_error)?;
    file.write_all_at(bytes, 0).map_err(io_error)?;
    Ok(file)
}
