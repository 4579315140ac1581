//! An exclusive lock on a data directory, held for the life of the process
//! that serves it: `DIR/LOCK`, locked with `flock(LOCK_EX | LOCK_NB)` and
//! holding the holder's pid. The kernel releases the lock when the process
//! exits, however it exits (kill -9 included), so a stale `LOCK` file never
//! blocks a restart; the file itself is never removed.

use super::StorageError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub(super) const LOCK: &str = "LOCK";

/// Holds the lock on a data directory until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing) or fails with
    /// [`StorageError::Locked`] naming the directory and, if it wrote it,
    /// the pid of the process that holds it.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<DirLock, StorageError> {
        let dir = dir.as_ref();
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { op, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open", &path))?;
        match try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(StorageError::Locked {
                    dir: dir.to_path_buf(),
                    holder: s.trim().parse().ok(),
                });
            }
            Err(e) => return Err(io("lock", &path)(e)),
        }
        file.set_len(0).map_err(io("truncate", &path))?;
        file.rewind().map_err(io("write", &path))?;
        writeln!(file, "{}", std::process::id()).map_err(io("write", &path))?;
        Ok(DirLock { _file: file, path })
    }

    /// The `LOCK` file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `Ok(false)` if another open file description holds the lock.
#[cfg(unix)]
fn try_lock_exclusive(f: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_f: &File) -> std::io::Result<bool> {
    tracing::warn!("data directory locking is only implemented on unix");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(a.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        match DirLock::acquire(dir.path()) {
            Err(StorageError::Locked { dir: d, holder }) => {
                assert_eq!(d, dir.path());
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(a);
        DirLock::acquire(dir.path()).unwrap();
    }
}
