//! A real full disk for the campaign and the tests: a size-limited tmpfs
//! mounted over a chunkserver's directory, so the kernel refuses its
//! writes (ENOSPC) with no limit of Leasehold's own. Mounting needs root
//! (CI has it); elsewhere the callers fall back or skip, and say so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a directory, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Whether this process may mount one (it runs as root).
    pub fn can_mount() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g.
    /// `96k`) at `dir`, made if missing.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !status.success() {
            return Err(format!(
                "mount a {size} tmpfs at {}: {status}",
                dir.display()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Gives the mounted tmpfs `size` of room, keeping its files (an
    /// operator freeing a full disk).
    pub fn grow(&self, size: &str) -> Result<(), String> {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !status.success() {
            return Err(format!(
                "grow the tmpfs at {} to {size}: {status}",
                self.0.display()
            ));
        }
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a killed chunkserver may still hold a file open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
