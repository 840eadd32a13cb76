//! The mapped trace writer, read back after a close, a kill, and a kill
//! in the middle of a record.

use super::*;
use crate::config::ClusterConfig;

fn writer(dir: &Path) -> TraceWriter {
    let cluster = ClusterConfig::local(3, dir).expect("a local cluster");
    let protocol = crate::nodes::protocol_cfg(&cluster).expect("its protocol");
    TraceWriter::create(dir, 7, TraceActor::Master, protocol).expect("a trace file")
}

/// Enough (empty) `Committed` records to fill more than one segment;
/// framed they are 10 bytes, so one straddles the segments' boundary.
fn fill(w: &mut TraceWriter) -> u64 {
    let mut n = 0;
    while w.out.as_ref().expect("open").len < TRACE_SEGMENT_BYTES + 4096 {
        w.committed();
        n += 1;
    }
    n
}

#[test]
fn a_closed_trace_ends_with_its_last_record() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut w = writer(dir.path());
    let path = w.path().to_path_buf();
    fill(&mut w);
    let len = w.out.as_ref().expect("open").len;
    drop(w);
    assert_eq!(std::fs::metadata(&path).expect("the file").len(), len);
    let t = read_trace(&path).expect("readable");
    assert!(!t.torn_tail && !t.truncated);
    assert_eq!(t.header.node, 7);
}

/// A killed writer never cuts its file: the allocated tail of zeros
/// ends the records, and every record copied before the kill is read.
#[test]
fn a_trace_left_open_reads_to_its_last_record() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut w = writer(dir.path());
    let path = w.path().to_path_buf();
    let n = fill(&mut w);
    let len = w.out.as_ref().expect("open").len;
    std::mem::forget(w);
    let size = std::fs::metadata(&path).expect("the file").len();
    assert_eq!(size, 2 * TRACE_SEGMENT_BYTES, "whole segments");
    let bytes = std::fs::read(&path).expect("the file");
    assert!(bytes[len as usize..].iter().all(|b| *b == 0));
    // Every record is there: the last one, read alone, is a commit.
    let last = &bytes[len as usize - 10..len as usize];
    assert_eq!(&last[..4], &2u32.to_le_bytes());
    let t = read_trace(&path).expect("readable");
    assert!(!t.torn_tail);
    assert!(n > TRACE_SEGMENT_BYTES / 10);
}

/// A kill between a record's body and its frame leaves the body in the
/// zero tail: a torn tail, not an error.
#[test]
fn a_body_without_its_frame_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut w = writer(dir.path());
    let path = w.path().to_path_buf();
    w.push(&TraceRecord::Committed { steps: 0 });
    let body = w.buf[8..].to_vec();
    w.buf.clear();
    let out = w.out.as_mut().expect("open");
    let at = out.len;
    out.copy_at(at + 8, &body);
    std::mem::forget(w);
    let t = read_trace(&path).expect("readable");
    assert!(t.torn_tail);
    assert_eq!(t.committed, 0);
}
