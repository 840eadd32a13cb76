//! The scenarios that read replica by replica: a reader client placed at
//! each replica's network position, so that the replica is the closest and
//! the one its actor asks ([0097], GFS §2.7). What a client reading only
//! the closest replica cannot see: replicas that disagree.

use super::{framed, ConformOptions};
use crate::client::{Appended, Client};

/// A client that reads from replica `replica` first: at the third of the
/// run's client places, moved to where the replica is, so that the replica is
/// the closest ([0097], GFS §2.7). A read the replica fails goes on to
/// another, so a failure is not told apart from another replica's answer;
/// a replica that lacks bytes answers short, which is what is judged.
async fn reader_at(
    opts: &ConformOptions<'_>,
    replica: u64,
    replicas: &[u64],
) -> Result<Client, String> {
    let mut cluster = opts.cluster.clone();
    // The replica's position as the protocol reckons it: configured, or
    // estimated from its address.
    let position = crate::nodes::position(
        cluster
            .node(stateright::actor::Id::from(replica as usize))
            .map_err(|e| e.to_string())?,
    )
    .ok_or_else(|| format!("node {replica} is no server"))?;
    let me = opts.clients[2];
    for n in &mut cluster.nodes {
        if n.id == me {
            n.position = Some(position);
        }
    }
    // The reader's own actor must pick this replica first, or the reads
    // judge another one.
    let protocol = crate::nodes::protocol_cfg(&cluster).map_err(|e| e.to_string())?;
    let ids: Vec<stateright::actor::Id> = replicas
        .iter()
        .map(|r| stateright::actor::Id::from(*r as usize))
        .collect();
    let first = protocol.closest(stateright::actor::Id::from(me as usize), &ids);
    if first != Some(stateright::actor::Id::from(replica as usize)) {
        return Err(format!(
            "cannot place a reader closest to replica {replica} (the network positions tie): \
             give the nodes distinct `position`s in cluster.toml"
        ));
    }
    Client::connect_with_timeout(&cluster, me, opts.op_timeout)
        .await
        .map_err(|e| format!("a reader beside replica {replica}: {e}"))
}

/// The up-to-date replicas of chunk `index` of `path`, as the master names
/// them.
async fn replicas_of(c: &Client, path: &str, index: u32) -> Result<Vec<u64>, String> {
    Ok(c.stat_chunk(path, index)
        .await
        .map_err(|e| format!("stat of chunk {index}: {e}"))?
        .replicas)
}

/// APPEND-1 on every replica: each acknowledged record is at its offset,
/// whole, on every up-to-date replica of its chunk ([00106]).
pub(super) async fn on_every_replica(
    opts: &ConformOptions<'_>,
    c: &Client,
    path: &str,
    acks: &[(Appended, Vec<u8>)],
) -> Result<String, String> {
    let mut indices: Vec<u32> = acks.iter().map(|(a, _)| a.index).collect();
    indices.sort();
    indices.dedup();
    let mut checked = 0;
    for index in indices {
        let replicas = replicas_of(c, path, index).await?;
        for &replica in &replicas {
            let reader = reader_at(opts, replica, &replicas).await?;
            let result = async {
                for (ack, d) in acks.iter().filter(|(a, _)| a.index == index) {
                    let bytes = reader
                        .read_chunk(path, index, ack.offset, framed(d.len()))
                        .await
                        .map_err(|e| format!("replica {replica}: {e}"))?;
                    let found = crate::record::scan(bytes.as_ref(), u64::MAX);
                    let whole = matches!(found.first(),
                        Some(r) if r.at == 0 && r.id == ack.record_id && r.data == d.as_slice());
                    if !whole {
                        return Err(format!(
                            "replica {replica} of chunk {index} does not hold the record acknowledged at offset {} ({} bytes there)",
                            ack.offset,
                            bytes.len()
                        ));
                    }
                }
                Ok(())
            }
            .await;
            reader.shutdown().await;
            result?;
            checked += 1;
        }
    }
    Ok(format!(
        "{} records on each of {checked} replicas",
        acks.len()
    ))
}

/// APPEND-4 on every replica: the chunk a record did not fit is padded to
/// its end on every up-to-date replica ([00105]), not only the primary.
pub(super) async fn padded_everywhere(
    opts: &ConformOptions<'_>,
    c: &Client,
    path: &str,
    acks: &[(Appended, Vec<u8>)],
    chunk_bytes: u64,
) -> Result<String, String> {
    let end = acks
        .iter()
        .filter(|(a, _)| a.index == 0)
        .map(|(a, d)| a.offset + framed(d.len()))
        .max()
        .unwrap_or(0);
    let tail = chunk_bytes - end;
    let replicas = replicas_of(c, path, 0).await?;
    for &replica in &replicas {
        let reader = reader_at(opts, replica, &replicas).await?;
        let read = reader.read_chunk(path, 0, end, tail).await;
        reader.shutdown().await;
        let bytes = read.map_err(|e| format!("replica {replica}: {e}"))?;
        if bytes.len() as u64 != tail {
            return Err(format!(
                "replica {replica} holds {} bytes after the last record at {end}, not the {tail} of padding to the chunk's end",
                bytes.len()
            ));
        }
        if !crate::record::scan(bytes.as_ref(), u64::MAX).is_empty() {
            return Err(format!(
                "replica {replica} holds a record in the padding after {end}"
            ));
        }
    }
    Ok(format!(
        "{tail} bytes of padding after {end} on each of {} replicas",
        replicas.len()
    ))
}
