//! The one-shot client commands: each starts a client, does one operation
//! on one file (write, read, read its records, stat, rename), prints what it got
//! and shuts the client down.

use super::connect;
use crate::{BoxError, CatRecordsArgs, MvArgs, ReadArgs, SnapshotArgs, StatArgs, WriteArgs};
use std::io::{Read, Write};

/// `leasehold write`.
pub(crate) async fn write(a: WriteArgs) -> Result<(), BoxError> {
    let client = connect(&a.client, 0).await?;
    let data = match a.data {
        Some(d) => d.into_bytes(),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
    };
    client.create(&a.path).await?;
    client.write(&a.path, a.offset, &data).await?;
    client.shutdown().await;
    Ok(())
}

/// `leasehold read`.
pub(crate) async fn read(a: ReadArgs) -> Result<(), BoxError> {
    let client = connect(&a.client, 0).await?;
    let len = a.len.unwrap_or(u64::MAX);
    let data = client.read(&a.path, a.offset, len).await?;
    std::io::stdout().write_all(&data)?;
    client.shutdown().await;
    Ok(())
}

/// `leasehold cat-records`.
pub(crate) async fn cat_records(a: CatRecordsArgs) -> Result<(), BoxError> {
    let client = connect(&a.client, 0).await?;
    let mut reader = client.records(&a.path).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    while let Some(r) = reader.next().await? {
        if a.verbose {
            write!(out, "{}\t{}\t{:016x}\t", r.index, r.offset, r.id)?;
        }
        out.write_all(&r.data)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    out.flush()?;
    if a.verbose {
        eprintln!(
            "{count} records ({} duplicates skipped)",
            reader.duplicates()
        );
    }
    client.shutdown().await;
    Ok(())
}

/// `leasehold stat`.
pub(crate) async fn stat(a: StatArgs) -> Result<(), BoxError> {
    let client = connect(&a.client, 0).await?;
    let stat = client.stat(&a.path).await?;
    let chunk_bytes = client.chunk_bytes();
    client.shutdown().await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: file {}, {} chunks of at most {} bytes",
        stat.path,
        stat.file,
        stat.chunks.len(),
        chunk_bytes
    )?;
    writeln!(
        out,
        "{:>5}  {:>8}  {:>7}  {:>5}  {:>7}  replicas (up to date)",
        "index", "chunk", "version", "epoch", "primary"
    )?;
    for c in &stat.chunks {
        let primary = c.primary.map_or("-".to_string(), |p| p.to_string());
        let replicas: Vec<String> = c.replicas.iter().map(|r| r.to_string()).collect();
        writeln!(
            out,
            "{:>5}  {:>8}  {:>7}  {:>5}  {:>7}  {}",
            c.index,
            c.chunk,
            c.version,
            c.epoch,
            primary,
            replicas.join(",")
        )?;
    }
    out.flush()?;
    Ok(())
}

/// `leasehold mv`.
pub(crate) async fn mv(a: MvArgs) -> Result<(), BoxError> {
    let client = connect(&a.client, 0).await?;
    let renamed = client.rename(&a.from, &a.to).await;
    client.shutdown().await;
    let info = renamed?;
    println!("{} -> {}: file {}", a.from, a.to, info.file);
    Ok(())
}

/// `leasehold snapshot`.
pub(crate) async fn snapshot(a: SnapshotArgs) -> Result<(), BoxError> {
    let client = connect(&a.client, 0).await?;
    let taken = client.snapshot(&a.from, &a.to).await;
    client.shutdown().await;
    let info = taken?;
    println!(
        "{} -> {}: file {} ({} chunks, shared until mutated)",
        a.from, a.to, info.file, info.chunks
    );
    Ok(())
}
