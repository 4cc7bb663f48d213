//! One writer per account across processes: an OS file lock per account, beside the state
//! file. The kernel releases it when its holder exits, however it exits, so a crash never
//! stalls an account. The lock file also carries the account's recent request times from
//! one holder to the next.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::store::{AccountLock, RequestJournal};

/// A held account lock; released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

/// The directory holding the lock files of the state file at `db`, named after the file's
/// real path: through a symlink or another spelling, every process locks the same files.
pub fn lock_dir(db: &Path) -> PathBuf {
    let db = super::real_path(db);
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".locks");
    db.with_file_name(name)
}

/// The lock file of one account. Account ids are Merge's, but they are hashed anyway: a file
/// name never comes from input.
pub fn lock_file(db: &Path, linked_account_id: &str) -> PathBuf {
    let digest = Sha256::digest(linked_account_id.as_bytes());
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    lock_dir(db).join(format!("{name}.lock"))
}

impl FileLock {
    /// Takes the account's lock, or returns `None` when another process (or thread) holds it.
    pub fn try_acquire(db: &Path, linked_account_id: &str) -> Result<Option<FileLock>> {
        let dir = lock_dir(db);
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder
                .create(&dir)
                .with_context(|| format!("creating lock directory {}", dir.display()))?;
        }
        let path = lock_file(db, linked_account_id);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

impl AccountLock for FileLock {
    /// One Unix time in milliseconds per line. Only the holder reads or writes them.
    fn recent_requests(&mut self) -> Vec<SystemTime> {
        let mut text = String::new();
        if (&self.file).seek(SeekFrom::Start(0)).is_err()
            || (&self.file).read_to_string(&mut text).is_err()
        {
            return Vec::new();
        }
        text.lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .collect()
    }

    /// Written over the old list before it is cut to length, so a crash in between leaves
    /// more times, never fewer.
    fn save_requests(&mut self, times: &[SystemTime]) -> Result<()> {
        let text: String = times
            .iter()
            .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| format!("{}\n", d.as_millis()))
            .collect();
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(text.as_bytes())?;
        f.set_len(text.len() as u64)?;
        Ok(())
    }

    fn journal(&mut self) -> Result<RequestJournal> {
        let mut file = self.file.try_clone()?;
        Ok(Box::new(move |at: SystemTime| {
            let ms = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            file.seek(SeekFrom::End(0))?;
            file.write_all(format!("{ms}\n").as_bytes())?;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = FileLock::try_acquire(&db, "la1").unwrap();
        assert!(first.is_some());
        assert!(FileLock::try_acquire(&db, "la1").unwrap().is_none());
        assert!(FileLock::try_acquire(&db, "la2").unwrap().is_some());
        drop(first);
        assert!(FileLock::try_acquire(&db, "la1").unwrap().is_some());
    }

    #[test]
    fn request_times_pass_from_one_holder_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        {
            let mut lock = FileLock::try_acquire(&db, "la1").unwrap().unwrap();
            assert!(lock.recent_requests().is_empty());
            lock.save_requests(&[t, t + Duration::from_secs(1)])
                .unwrap();
        }
        let mut lock = FileLock::try_acquire(&db, "la1").unwrap().unwrap();
        assert_eq!(lock.recent_requests(), vec![t, t + Duration::from_secs(1)]);
    }

    // Regression (hardening item 9): a symlinked --db had its own lock directory.
    #[cfg(unix)]
    #[test]
    fn a_symlink_to_the_state_file_shares_its_locks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        std::fs::write(&real, b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let held = FileLock::try_acquire(&link, "la1").unwrap();
        assert!(held.is_some());
        assert!(FileLock::try_acquire(&real, "la1").unwrap().is_none());
        assert!(!dir.path().join("link.db.locks").exists());
    }
}
