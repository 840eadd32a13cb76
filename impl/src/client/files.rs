//! The operations only the master answers: opening or creating a file by
//! path and the metadata of its chunks; no replica is asked. Every other
//! operation starts here: by opening its file, or through the cache of
//! path to file id.

use leasehold_model::master::path_problem;
use leasehold_model::msg::{ClientOp, Failure, LeaseInfo, OpResult};
use leasehold_model::types::{ChunkHandle, ChunkVersion, FileId, LeaseEpoch};

use super::{Client, ClientError, Result};

/// A file as the master knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub file: FileId,
    pub chunks: u32,
}

/// One chunk as the master reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkStat {
    pub index: u32,
    pub chunk: ChunkHandle,
    pub version: ChunkVersion,
    /// The lease holder, if a lease is granted now.
    pub primary: Option<u64>,
    pub epoch: LeaseEpoch,
    /// The up-to-date replicas, primary included: never a stale one.
    pub replicas: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub path: String,
    pub file: FileId,
    pub chunks: Vec<ChunkStat>,
}

impl Client {
    async fn open_op(&self, path: &str, create: bool) -> Result<FileInfo> {
        // PATH-1: the master's own rule, checked here first so that a bad
        // path costs no round trip and gets a precise reason.
        if let Some(why) = path_problem(path) {
            return Err(ClientError::BadPath {
                path: path.into(),
                why,
            });
        }
        let op = ClientOp::Open {
            path: path.into(),
            create,
        };
        match self.run("open", path, op).await {
            Ok(OpResult::Opened { file, chunks }) => {
                self.inner
                    .files
                    .lock()
                    .expect("file cache lock")
                    .insert(path.into(), file);
                Ok(FileInfo { file, chunks })
            }
            Ok(other) => unreachable!("open answered with {other:?}"),
            Err(ClientError::Failed {
                reason: Failure::NotFound,
                ..
            }) => Err(ClientError::NoSuchFile(path.into())),
            Err(e) => Err(e),
        }
    }

    /// Creates `path` if it does not exist (creating an existing file is
    /// not an error, so concurrent appenders may all create it).
    pub async fn create(&self, path: &str) -> Result<FileInfo> {
        self.open_op(path, true).await
    }

    /// Looks `path` up: its file id and current chunk count.
    pub async fn open(&self, path: &str) -> Result<FileInfo> {
        self.open_op(path, false).await
    }

    /// Renames `from` to `to` ([0091]). The master first revokes the
    /// leases of the file's chunks and grants none until the rename is
    /// made, so no mutation runs across it (RENAME-1); mutations cut off
    /// by the revocation are retried and land in the renamed file. The
    /// file keeps its id: a client that opened it before goes on reaching
    /// it, as an open file descriptor does across a Unix rename.
    pub async fn rename(&self, from: &str, to: &str) -> Result<FileInfo> {
        for path in [from, to] {
            if let Some(why) = path_problem(path) {
                return Err(ClientError::BadPath {
                    path: path.into(),
                    why,
                });
            }
        }
        // Its id, to recognise a rename made by an earlier try whose
        // answer was lost (the master then finds no file at `from`).
        let before = self.open(from).await?;
        let op = ClientOp::Rename {
            from: from.into(),
            to: to.into(),
        };
        let renamed = match self.run("rename", from, op).await {
            Ok(OpResult::Renamed { file }) => file,
            Ok(other) => unreachable!("rename answered with {other:?}"),
            Err(ClientError::Failed {
                reason: Failure::NotFound,
                ..
            }) => match self.open(to).await {
                Ok(info) if info.file == before.file => info.file,
                _ => return Err(ClientError::NoSuchFile(from.into())),
            },
            Err(ClientError::Failed {
                reason: Failure::Exists,
                ..
            }) => return Err(ClientError::FileExists(to.into())),
            Err(e) => return Err(e),
        };
        {
            let mut files = self.inner.files.lock().expect("file cache lock");
            files.remove(from);
            files.insert(to.into(), renamed);
        }
        Ok(FileInfo {
            file: renamed,
            chunks: before.chunks,
        })
    }

    /// Makes `to` a snapshot of `from` (GFS §3.4): a new file holding what
    /// `from` held when the snapshot was taken. The master revokes the
    /// leases of `from`'s chunks and grants none until the snapshot is
    /// taken, so every record acknowledged before it is in it and none
    /// ordered after (SNAP-1); nothing is copied until a chunk is next
    /// mutated, in either file (copy-on-write). A snapshot is not
    /// retried across a lost answer the way a rename is: a try whose
    /// answer was lost shows as `FileExists` for `to`.
    pub async fn snapshot(&self, from: &str, to: &str) -> Result<FileInfo> {
        for path in [from, to] {
            if let Some(why) = path_problem(path) {
                return Err(ClientError::BadPath {
                    path: path.into(),
                    why,
                });
            }
        }
        let op = ClientOp::Snapshot {
            from: from.into(),
            to: to.into(),
        };
        let file = match self.run("snapshot", from, op).await {
            Ok(OpResult::Snapshotted { file }) => file,
            Ok(other) => unreachable!("snapshot answered with {other:?}"),
            Err(ClientError::Failed {
                reason: Failure::NotFound,
                ..
            }) => return Err(ClientError::NoSuchFile(from.into())),
            Err(ClientError::Failed {
                reason: Failure::Exists,
                ..
            }) => return Err(ClientError::FileExists(to.into())),
            Err(e) => return Err(e),
        };
        self.inner
            .files
            .lock()
            .expect("file cache lock")
            .insert(to.into(), file);
        self.open(to).await
    }

    pub(super) async fn file_id(&self, path: &str) -> Result<FileId> {
        let cached = self
            .inner
            .files
            .lock()
            .expect("file cache lock")
            .get(path)
            .copied();
        match cached {
            Some(file) => Ok(file),
            None => Ok(self.open(path).await?.file),
        }
    }

    /// Metadata of chunk `index` of `path`.
    pub async fn stat_chunk(&self, path: &str, index: u32) -> Result<ChunkStat> {
        let file = self.file_id(path).await?;
        match self
            .run("stat", path, ClientOp::Stat { file, index })
            .await?
        {
            OpResult::Stat { info, .. } => Ok(chunk_stat(&info)),
            other => unreachable!("stat answered with {other:?}"),
        }
    }

    /// Every chunk of `path`: handle, version, primary, up-to-date replicas.
    pub async fn stat(&self, path: &str) -> Result<FileStat> {
        let info = self.open(path).await?;
        let mut chunks = Vec::with_capacity(info.chunks as usize);
        for index in 0..info.chunks {
            chunks.push(self.stat_chunk(path, index).await?);
        }
        Ok(FileStat {
            path: path.into(),
            file: info.file,
            chunks,
        })
    }
}

fn chunk_stat(info: &LeaseInfo) -> ChunkStat {
    let primary = info.primary.map(|p| usize::from(p) as u64);
    let mut replicas: Vec<u64> = info
        .secondaries
        .iter()
        .map(|r| usize::from(*r) as u64)
        .chain(primary)
        .collect();
    replicas.sort();
    replicas.dedup();
    ChunkStat {
        index: info.index,
        chunk: info.chunk,
        version: info.version,
        primary,
        epoch: info.epoch,
        replicas,
    }
}
