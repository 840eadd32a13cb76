//! A message's protocol fields (chunk handle, version, lease epoch,
//! serial, ...) for `tracing` spans and events, so that every protocol step
//! a node takes can be followed in its log.

use super::*;

/// The protocol fields of a message, for tracing: each is `None` when the
/// message does not carry it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgFields {
    pub chunk: Option<u64>,
    pub version: Option<u64>,
    pub epoch: Option<u64>,
    pub serial: Option<u64>,
    pub offset: Option<u64>,
    pub bytes: Option<u64>,
}

/// Extracts chunk handle, version, lease epoch, serial, offset and data
/// length from any protocol message.
pub fn msg_fields(msg: &RealMsg) -> MsgFields {
    let mut f = MsgFields::default();
    match msg {
        Msg::LeaseHolder { info, .. } => {
            f.chunk = Some(info.chunk);
            f.version = Some(info.version);
            f.epoch = Some(info.epoch);
        }
        Msg::Located {
            info: Some(info), ..
        } => {
            f.chunk = Some(info.chunk);
            f.version = Some(info.version);
        }
        Msg::LeaseOffer {
            chunk,
            epoch,
            version,
            ..
        }
        | Msg::LeaseGrant {
            chunk,
            epoch,
            version,
            ..
        } => {
            f.chunk = Some(*chunk);
            f.epoch = Some(*epoch);
            f.version = Some(*version);
        }
        Msg::NewVersion { chunk, version, .. }
        | Msg::VersionAck { chunk, version }
        | Msg::ReplicaFailed { chunk, version, .. } => {
            f.chunk = Some(*chunk);
            f.version = Some(*version);
        }
        Msg::LeaseRequest { chunk, epoch }
        | Msg::RevokeLease { chunk, epoch }
        | Msg::LeaseRevoked { chunk, epoch } => {
            f.chunk = Some(*chunk);
            f.epoch = Some(*epoch);
        }
        Msg::PushData { chunk, bytes, .. } => {
            f.chunk = Some(*chunk);
            f.bytes = Some(bytes.len());
        }
        Msg::Mutate {
            chunk, epoch, kind, ..
        } => {
            f.chunk = Some(*chunk);
            f.epoch = Some(*epoch);
            if let MutationKind::Write { offset } = kind {
                f.offset = Some(*offset);
            }
        }
        Msg::Apply {
            chunk,
            version,
            stamp,
            op,
        } => {
            f.chunk = Some(*chunk);
            f.version = Some(*version);
            f.epoch = Some(stamp.epoch);
            f.serial = Some(stamp.serial);
            f.offset = match op {
                ApplyOp::WriteAt { offset, .. } => Some(*offset),
                ApplyOp::PadTo { end } => Some(*end),
                ApplyOp::Skip => None,
            };
        }
        Msg::ApplyBatch {
            chunk,
            version,
            applies,
        } => {
            // The first serial of the batch; the rest follow it.
            f.chunk = Some(*chunk);
            f.version = Some(*version);
            if let Some((stamp, _)) = applies.first() {
                f.epoch = Some(stamp.epoch);
                f.serial = Some(stamp.serial);
            }
        }
        Msg::ApplyGap {
            chunk,
            version,
            from,
            ..
        } => {
            // The first serial missing.
            f.chunk = Some(*chunk);
            f.version = Some(*version);
            f.epoch = Some(from.epoch);
            f.serial = Some(from.serial);
        }
        Msg::Applied { chunk, stamp, .. } => {
            f.chunk = Some(*chunk);
            f.epoch = Some(stamp.epoch);
            f.serial = Some(stamp.serial);
        }
        Msg::MutationDone {
            chunk,
            offset,
            stamp,
            ..
        } => {
            f.chunk = Some(*chunk);
            f.epoch = Some(stamp.epoch);
            f.serial = Some(stamp.serial);
            f.offset = Some(*offset);
        }
        Msg::ChunkFull { chunk, .. } | Msg::MutationFailed { chunk, .. } => f.chunk = Some(*chunk),
        Msg::Read {
            chunk,
            version,
            offset,
            len,
        } => {
            f.chunk = Some(*chunk);
            f.version = Some(*version);
            f.offset = Some(*offset);
            f.bytes = Some(*len);
        }
        Msg::ReadReply {
            chunk,
            offset,
            result,
        } => {
            f.chunk = Some(*chunk);
            f.offset = Some(*offset);
            f.bytes = result.as_ref().ok().map(|b| b.len());
        }
        Msg::CloneChunk { chunk, version, .. } | Msg::DeleteReplica { chunk, version } => {
            f.chunk = Some(*chunk);
            f.version = Some(*version);
        }
        Msg::FetchChunk {
            chunk,
            version,
            from,
        } => {
            f.chunk = Some(*chunk);
            f.version = Some(*version);
            f.offset = Some(*from);
        }
        Msg::ChunkPart {
            chunk,
            version,
            from,
            part,
        } => {
            f.chunk = Some(*chunk);
            f.version = Some(*version);
            f.offset = Some(*from);
            f.bytes = part.as_ref().ok().map(|p| {
                p.pieces
                    .iter()
                    .map(|piece| match piece {
                        ClonePiece::Bytes(b) => b.len(),
                        _ => 1,
                    })
                    .sum()
            });
        }
        _ => {}
    }
    f
}

/// The host's tracer for real nodes: one event per delivered message, named
/// by the patent's act, with the protocol fields. Lease changes, padding and
/// failures are `info` (rare and worth seeing); the data path is `debug`.
pub fn trace_msg(src: Id, dst: Id, msg: &RealMsg) {
    let f = msg_fields(msg);
    let act = msg.act();
    let src = usize::from(src) as u64;
    let dst = usize::from(dst) as u64;
    let reason = match msg {
        Msg::MutationFailed { reason, .. }
        | Msg::NoLease { reason, .. }
        | Msg::PushRefused { reason, .. } => Some(reason.to_string()),
        Msg::Applied {
            result: Err(reason),
            ..
        }
        | Msg::ReadReply {
            result: Err(reason),
            ..
        }
        | Msg::ChunkPart {
            part: Err(reason), ..
        } => Some(reason.to_string()),
        Msg::ReplicaFailed { error, .. } => Some(error.to_string()),
        _ => None,
    };
    // A primary's extension grants ride on every mutation, so grants are
    // debug; an offer starts a new lease (a new epoch and version).
    let notable = matches!(
        msg,
        Msg::LeaseOffer { .. }
            | Msg::RevokeLease { .. }
            | Msg::ChunkReport { .. }
            | Msg::ChunkFull { .. }
            | Msg::MutationFailed { .. }
            | Msg::NoLease { .. }
            | Msg::CloneChunk { .. }
            | Msg::ChunkPart { .. }
            | Msg::DeleteReplica { .. }
    );
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                $level,
                act,
                src,
                dst,
                chunk = f.chunk,
                version = f.version,
                epoch = f.epoch,
                serial = f.serial,
                offset = f.offset,
                bytes = f.bytes,
                reason,
                "deliver"
            )
        };
    }
    if matches!(msg, Msg::ApplyGap { .. } | Msg::ReplicaFailed { .. }) {
        // A secondary lost Applies (a restart, or the network), or a
        // replica's store failed (FAULT-2): worth a look whenever it
        // happens.
        event!(tracing::Level::WARN);
    } else if notable {
        event!(tracing::Level::INFO);
    } else {
        event!(tracing::Level::DEBUG);
    }
}

/// The host's narrator for real nodes: the master's decisions about
/// replicas ([`leasehold_model::master::notes`]), each an event with the
/// chunk and replica; a replica lost or failed is a warning.
pub fn narrate_step(
    before: &Digested<NodeState<FileStore>>,
    after: &Digested<NodeState<FileStore>>,
) {
    let (NodeState::Master(before), NodeState::Master(after)) = (&**before, &**after) else {
        return;
    };
    // The comparison walks every chunk: skipped when nobody would see it.
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    for note in leasehold_model::master::notes(before, after) {
        let chunk = note.chunk();
        let replica = match &note {
            MasterNote::Adopted { replica, .. }
            | MasterNote::LeftOut { replica, .. }
            | MasterNote::StoreFailed { replica, .. } => Some(usize::from(*replica) as u64),
            MasterNote::Moved { .. } | MasterNote::WaitOver => None,
        };
        if note.is_warning() {
            tracing::warn!(chunk, replica, "{note}");
        } else {
            tracing::info!(chunk, replica, "{note}");
        }
    }
}
