//! The node's saved storage on disk, and the barrier that makes the
//! handlers' own writes durable before their commands are carried out.
//!
//! A storage file is `LHSTORE2`, the CRC32C of the payload (u32 LE), then
//! the postcard payload. A `Save` replaces it atomically and durably: temp
//! file, fsync, rename, fsync of the directory.

use serde::{de::DeserializeOwned, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::HostError;
use leasehold_model::types::StoreError;

/// Format 2: the master's chunk records gained the last grant's version
/// and replicas (`ChunkMeta::granted`); postcard has no field names, so a
/// format-1 file would not decode, and is refused by name instead.
const STORAGE_MAGIC: &[u8; 8] = b"LHSTORE2";
const STORAGE_MAGIC_FORMER: &[&[u8; 8]] = &[b"LHSTORE1"];

/// Makes durable what the actor's handlers wrote outside its state (a
/// chunkserver's chunk files), before any command they emitted is carried
/// out. An error (the store's own, typed) stops the node.
pub type Barrier = Box<dyn FnMut() -> Result<(), StoreError> + Send>;

/// The actor's storage file, and what it holds, so that a save of the same
/// bytes can be skipped.
pub(super) struct StorageFile {
    /// `None`: the node keeps no storage (a client, which listens nowhere
    /// and has no place in the cluster file).
    path: Option<PathBuf>,
    /// The payload of the storage file as last loaded or saved.
    saved: Option<Vec<u8>>,
}

impl StorageFile {
    /// The file at `path`, holding `loaded` (what [`load_storage`] read).
    pub(super) fn new<S: Serialize>(path: Option<PathBuf>, loaded: Option<&S>) -> Self {
        StorageFile {
            path,
            saved: loaded.and_then(|s| postcard::to_allocvec(s).ok()),
        }
    }

    /// Carries out a `Save`: durable when it returns Ok, so the commands
    /// after it may depend on it.
    pub(super) fn save<S: Serialize>(&mut self, storage: &S) -> Result<(), HostError> {
        let Some(path) = &self.path else {
            return Err(HostError::SaveStorage {
                path: PathBuf::new(),
                message: "this node keeps no storage (it has no data directory)".into(),
            });
        };
        let payload = postcard::to_allocvec(storage).map_err(|e| HostError::SaveStorage {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // What is already on disk is already durable: a save of the same
        // bytes has nothing to add. (A chunkserver saves after every
        // mutation, but its storage names only its chunk directory; the
        // chunk files are already synced.)
        if self.saved.as_deref() == Some(&payload[..]) {
            tracing::trace!("storage unchanged, save skipped");
            return Ok(());
        }
        let bytes = save_payload(path, &payload)?;
        self.saved = Some(payload);
        tracing::debug!(bytes, "saved storage");
        Ok(())
    }
}

/// Reads the last saved storage: `None` if nothing was ever saved. A file
/// that exists but does not check out stops the node from starting, because
/// starting empty would forget promises the actor made (e.g. a lease epoch).
/// Public so that tools can inspect a stopped node's state.
pub fn load_storage<S: DeserializeOwned>(path: &Path) -> Result<Option<S>, HostError> {
    let fail = |message: String| HostError::LoadStorage {
        path: path.into(),
        message,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    decode_storage(&bytes).map(Some).map_err(fail)
}

/// The storage a storage file's bytes hold, or why they hold none (a
/// wrong magic, a checksum mismatch, a payload that does not decode).
/// Fuzzed (`leasehold::fuzzing::storage`): a disk hands a node these bytes.
pub fn decode_storage<S: DeserializeOwned>(bytes: &[u8]) -> Result<S, String> {
    let header = STORAGE_MAGIC.len() + 4;
    if bytes.len() >= header
        && STORAGE_MAGIC_FORMER
            .iter()
            .any(|m| &bytes[..m.len()] == m.as_slice())
    {
        return Err(format!(
            "written by an older Leasehold (storage format {}, this one reads {}): \
             start this node from an empty data directory, or with the version that wrote it",
            bytes[7] as char, STORAGE_MAGIC[7] as char
        ));
    }
    if bytes.len() < header || &bytes[..STORAGE_MAGIC.len()] != STORAGE_MAGIC {
        return Err("not a Leasehold storage file".into());
    }
    let crc = u32::from_le_bytes(
        bytes[STORAGE_MAGIC.len()..header]
            .try_into()
            .expect("4 bytes"),
    );
    let payload = &bytes[header..];
    if crc32c::crc32c(payload) != crc {
        return Err("checksum mismatch".into());
    }
    postcard::from_bytes(payload).map_err(|e| e.to_string())
}

/// A storage file's bytes for `payload` (postcard-encoded storage): what
/// `save_payload` writes.
pub fn encode_storage(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(STORAGE_MAGIC.len() + 4 + payload.len());
    out.extend_from_slice(STORAGE_MAGIC);
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Replaces the saved storage with an encoded payload, atomically and
/// durably; returns the file's size.
fn save_payload(path: &Path, payload: &[u8]) -> Result<usize, HostError> {
    let fail = |message: String| HostError::SaveStorage {
        path: path.into(),
        message,
    };
    let dir = path.parent().expect("storage path has a directory");
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let tmp = path.with_extension("storage.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&encode_storage(payload))?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| fail(e.to_string()))?;
    Ok(STORAGE_MAGIC.len() + 4 + payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("actor-3.storage");
        assert_eq!(load_storage::<(u64, String)>(&path).unwrap(), None);
        let mut file = StorageFile::new::<()>(Some(path.clone()), None);
        file.save(&(7u64, "x".to_string())).unwrap();
        file.save(&(8u64, "yz".to_string())).unwrap();
        assert_eq!(
            load_storage::<(u64, String)>(&path).unwrap(),
            Some((8, "yz".into()))
        );
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            load_storage::<(u64, String)>(&path),
            Err(HostError::LoadStorage { .. })
        ));
    }

    #[test]
    fn a_file_of_an_older_format_is_refused_by_name() {
        let mut bytes = encode_storage(&postcard::to_allocvec(&(1u64,)).unwrap());
        bytes[..8].copy_from_slice(b"LHSTORE1");
        let e = decode_storage::<(u64,)>(&bytes).unwrap_err();
        assert!(e.contains("older Leasehold (storage format 1"), "{e}");
        bytes[..8].copy_from_slice(b"NOTSTORE");
        assert_eq!(
            decode_storage::<(u64,)>(&bytes).unwrap_err(),
            "not a Leasehold storage file"
        );
    }
}
