//! FIX sequence numbers persisted per (account, SenderCompID): one small file each. A logged-on
//! session keeps its file open ([`SeqFile`]) and overwrites it in place with one fixed-width
//! write (42 bytes, within one disk sector) before the messages that use the new numbers are
//! written, so a killed gateway process restarts where it was. The write is synced to the disk (file and
//! directory) when the caller asks, which the session does at most once a second and when it
//! ends: a lost machine may restart a session a second behind, which the counterparty's resend
//! and gap fill repair. A file that does not parse is an error the session reports, never a
//! silent restart at 1.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use bulwark_fix::session::SeqNums;

/// The store under `dir`.
pub struct SeqStore {
    dir: PathBuf,
}

impl SeqStore {
    /// Opens (creating) the store's directory.
    pub fn open(dir: PathBuf) -> std::io::Result<SeqStore> {
        fs::create_dir_all(&dir)?;
        Ok(SeqStore { dir })
    }

    fn path(&self, account: u64, sender: &str) -> PathBuf {
        self.dir
            .join(format!("{account}-{}.seq", hex::encode(sender.as_bytes())))
    }

    /// The stored numbers (1, 1 for a new session identity).
    pub fn load(&self, account: u64, sender: &str) -> Result<SeqNums, String> {
        let path = self.path(account, sender);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut parts = text.split_whitespace().map(str::parse::<u64>);
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(Ok(next_in)), Some(Ok(next_out)), None)
                        if next_in > 0 && next_out > 0 =>
                    {
                        Ok(SeqNums { next_in, next_out })
                    }
                    _ => Err(format!("{} is damaged", path.display())),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SeqNums::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The open file of one session's numbers; a missing one is first written whole holding
    /// `initial` (written, synced, renamed: a crash never leaves an empty file that reads as
    /// damaged).
    pub fn open_file(
        &self,
        account: u64,
        sender: &str,
        initial: SeqNums,
    ) -> std::io::Result<SeqFile> {
        let path = self.path(account, sender);
        if !path.exists() {
            self.save(account, sender, initial, true)?;
        }
        let file = fs::OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(SeqFile { file })
    }

    /// Stores the numbers; `sync` also makes them durable on the disk.
    pub fn save(
        &self,
        account: u64,
        sender: &str,
        seq: SeqNums,
        sync: bool,
    ) -> std::io::Result<()> {
        let path = self.path(account, sender);
        let temp = path.with_extension("tmp");
        {
            let mut file = fs::File::create(&temp)?;
            writeln!(file, "{} {}", seq.next_in, seq.next_out)?;
            if sync {
                file.sync_data()?;
            }
        }
        fs::rename(&temp, &path)?;
        if sync {
            fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// One session's numbers, kept open while it is logged on.
pub struct SeqFile {
    file: fs::File,
}

impl SeqFile {
    /// Overwrites the numbers in place (one write); `sync` also makes them durable.
    pub fn write(&self, seq: SeqNums, sync: bool) -> std::io::Result<()> {
        let text = format!("{:>20} {:>20}\n", seq.next_in, seq.next_out);
        self.file.write_all_at(text.as_bytes(), 0)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_survive_a_reopen_and_damage_is_reported() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = SeqStore::open(dir.path().join("seq")).expect("opens");
        assert_eq!(store.load(7, "T/1"), Ok(SeqNums::default()));
        let seq = SeqNums {
            next_in: 12,
            next_out: 40,
        };
        store.save(7, "T/1", seq, true).expect("saves");
        // The open file overwrites in place, and what it wrote reads back.
        let file = store.open_file(7, "T/1", seq).expect("opens");
        let later = SeqNums {
            next_in: 13,
            next_out: 41,
        };
        file.write(later, false).expect("writes");
        assert_eq!(store.load(7, "T/1"), Ok(later));
        file.write(seq, true).expect("writes");
        assert_eq!(store.load(7, "T/1"), Ok(seq));
        let fresh = store.open_file(9, "T/1", later).expect("creates");
        assert_eq!(
            store.load(9, "T/1"),
            Ok(later),
            "created holding its numbers"
        );
        fresh.write(later, true).expect("writes");
        assert_eq!(store.load(9, "T/1"), Ok(later));
        let again = SeqStore::open(dir.path().join("seq")).expect("opens");
        assert_eq!(again.load(7, "T/1"), Ok(seq));
        // Another account with the same CompID has its own numbers.
        assert_eq!(again.load(8, "T/1"), Ok(SeqNums::default()));
        std::fs::write(again.path(7, "T/1"), "12 x").expect("writes");
        assert!(again.load(7, "T/1").is_err());
    }
}
