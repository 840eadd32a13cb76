//! The trace file itself: records copied into shared memory mappings of
//! allocated segments, so that a killed node loses none it copied.

use super::TRACE_SEGMENT_BYTES;

/// A trace file written through shared memory mappings, a segment at a
/// time. What is copied into a mapping is in the page cache at once: a
/// killed process cannot lose it (a crashed machine can, as with `write`).
pub struct MappedTrace {
    file: std::fs::File,
    /// Bytes of records written, from the start of the file.
    pub(super) len: u64,
    /// Bytes allocated on disk: whole segments.
    allocated: u64,
    /// The mapped segments from the one holding `len`'s last record start
    /// onwards, with the file offset each starts at.
    segments: Vec<(u64, memmap2::MmapMut)>,
}

impl MappedTrace {
    /// Starts the file with `magic`, a prefix without a frame.
    pub(super) fn new(file: std::fs::File, magic: &[u8]) -> std::io::Result<MappedTrace> {
        let mut out = MappedTrace {
            file,
            len: 0,
            allocated: 0,
            segments: Vec::new(),
        };
        while out.allocated < magic.len() as u64 {
            out.grow()?;
        }
        out.copy_at(0, magic);
        out.len = magic.len() as u64;
        Ok(out)
    }

    /// Appends one framed record: `framed` is `[length][crc][body]`. The
    /// body goes in first and the frame last, so a process killed in the
    /// middle leaves the frame's length zero, which ends the records.
    pub(super) fn append(&mut self, framed: &[u8]) -> std::io::Result<()> {
        let at = self.len;
        let end = at + framed.len() as u64;
        while self.allocated < end {
            self.grow()?;
        }
        self.copy_at(at + 8, &framed[8..]);
        // A kill stops the process at one instruction: every store before
        // it is in the page cache, none after. The fence keeps the compiler
        // from moving the frame's stores before the body's.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.copy_at(at, &framed[..8]);
        self.len = end;
        let keep = self.len / TRACE_SEGMENT_BYTES * TRACE_SEGMENT_BYTES;
        self.segments.retain(|(start, _)| *start >= keep);
        Ok(())
    }

    fn grow(&mut self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let start = self.allocated;
        // SAFETY: posix_fallocate on our own open descriptor, with a range
        // past every byte mapped so far.
        let rc = unsafe {
            libc::posix_fallocate(
                self.file.as_raw_fd(),
                start as libc::off_t,
                TRACE_SEGMENT_BYTES as libc::off_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        // SAFETY: the file is this writer's own (made with `create_new`);
        // nothing else in the process maps or truncates it while mapped,
        // and readers of a live trace only read.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len(TRACE_SEGMENT_BYTES as usize)
                .map_mut(&self.file)?
        };
        self.segments.push((start, map));
        self.allocated = start + TRACE_SEGMENT_BYTES;
        Ok(())
    }

    pub(super) fn copy_at(&mut self, mut at: u64, mut bytes: &[u8]) {
        for (start, map) in &mut self.segments {
            if bytes.is_empty() {
                break;
            }
            let seg_end = *start + TRACE_SEGMENT_BYTES;
            if at >= seg_end {
                continue;
            }
            let from = (at - *start) as usize;
            let n = bytes.len().min((seg_end - at) as usize);
            map[from..from + n].copy_from_slice(&bytes[..n]);
            at += n as u64;
            bytes = &bytes[n..];
        }
        debug_assert!(bytes.is_empty(), "copied past the allocated segments");
    }
}

impl Drop for MappedTrace {
    /// Cuts the unused part of the last segment off, so that a trace
    /// closed in order ends with its last record.
    fn drop(&mut self) {
        self.segments.clear();
        if let Err(e) = self.file.set_len(self.len) {
            tracing::warn!("trace file not cut to its length: {e}");
        }
    }
}
