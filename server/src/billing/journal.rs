//! The settlement journal: a local append-only file where settlements wait while the database cannot
//! take them. Each batch is written as JSON lines and fsync'd before the requests it settles are told
//! they are done, so an answer a client has seen finish is never lost, even to a hard kill; the journal
//! is replayed at start and as soon as the database answers again. Replaying is idempotent: a
//! settlement is keyed by its generation id, a release by its hold id.
//!
//! One process writes `current-<pid>.jsonl`; a replay first renames it (`replay-<pid>-<ms>.jsonl`), so
//! appends go on to a fresh file while the old one is applied, and deletes it once the database has
//! committed it. A line that does not parse is moved aside (`rejected-…`) and logged; it is never
//! applied twice or silently dropped.

use super::{Generation, Hold};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// One journaled operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    Settle {
        hold: Hold,
        generation: Box<Generation>,
    },
    /// A hold whose admission's outcome is unknown (the database stopped answering mid-commit): released
    /// if it exists.
    Release { hold: Hold },
}

pub struct Journal {
    dir: PathBuf,
    current: PathBuf,
    /// Serialises appends and the rename that starts a replay.
    lock: Mutex<()>,
}

impl Journal {
    /// Opens (creating) the journal's folder.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            current: dir.join(format!("current-{}.jsonl", std::process::id())),
            lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends entries and waits until they are on disk.
    pub async fn append(&self, entries: Vec<Entry>) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let _g = self.lock.lock().await;
        let path = self.current.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut text = Vec::new();
            for e in &entries {
                serde_json::to_writer(&mut text, e).map_err(std::io::Error::other)?;
                text.push(b'\n');
            }
            let fresh = !path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(&text)?;
            f.sync_data()?;
            if fresh {
                // The new file's name must survive a crash too.
                std::fs::File::open(&dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Files waiting to be replayed: this process's current file is renamed first so that appends go on
    /// elsewhere; any other process's leftovers are taken as they are.
    pub async fn take(&self) -> std::io::Result<Vec<PathBuf>> {
        let _g = self.lock.lock().await;
        if self.current.exists() {
            let to = self.dir.join(format!(
                "replay-{}-{}.jsonl",
                std::process::id(),
                crate::store::now_ms()
            ));
            std::fs::rename(&self.current, to)?;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.ends_with(".jsonl") && !name.starts_with("rejected-")
            })
            .filter(|p| *p != self.current)
            .collect();
        // A current file of a process still running is not ours to replay.
        files.retain(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            match name
                .strip_prefix("current-")
                .and_then(|r| r.strip_suffix(".jsonl"))
            {
                Some(pid) => !process_alive(pid),
                None => true,
            }
        });
        files.sort();
        Ok(files)
    }

    /// Whether anything waits (a cheap check for the replay loop).
    pub fn pending(&self) -> bool {
        self.current.exists()
            || std::fs::read_dir(&self.dir).is_ok_and(|mut d| {
                d.any(|e| {
                    e.ok().is_some_and(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n.starts_with("replay-") && n.ends_with(".jsonl")
                    })
                })
            })
    }
}

/// Reads a journal file: its entries, and the lines that do not parse (moved aside by the caller).
pub fn read(path: &Path) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
    let text = std::fs::read_to_string(path)?;
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(e) => entries.push(e),
            // A line cut by a crash mid-write was never acknowledged; it is kept aside all the same.
            Err(_) => bad.push(line.to_string()),
        }
    }
    Ok((entries, bad))
}

/// Keeps lines that could not be read beside the journal, for the operator.
pub fn reject(dir: &Path, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let path = dir.join(format!("rejected-{}.jsonl", crate::store::now_ms()));
    let r = std::fs::write(&path, lines.join("\n") + "\n");
    tracing::error!(file = %path.display(), lines = lines.len(), written = r.is_ok(),
        "journal lines that do not parse were set aside; nothing in them was applied");
}

#[cfg(unix)]
fn process_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
}

#[cfg(not(unix))]
fn process_alive(_pid: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Nanos;

    #[tokio::test]
    async fn entries_survive_and_replay_takes_them_once() {
        let dir = tempfile::tempdir().expect("dir");
        let j = Journal::open(dir.path()).expect("open");
        let hold = Hold {
            id: "h1".into(),
            org_id: "o".into(),
            key_id: "k".into(),
            amount: Nanos(100),
            period_start: None,
        };
        let g = Generation {
            id: "gen-1".into(),
            charge: Nanos(40),
            held: Nanos(100),
            ..Generation::default()
        };
        j.append(vec![Entry::Settle {
            hold: hold.clone(),
            generation: Box::new(g),
        }])
        .await
        .expect("append");
        j.append(vec![Entry::Release { hold }])
            .await
            .expect("append");
        assert!(j.pending());
        let files = j.take().await.expect("take");
        assert_eq!(files.len(), 1);
        // Appends after the take go to a new file.
        j.append(vec![]).await.expect("nothing to write");
        let (entries, bad) = read(&files[0]).expect("read");
        assert!(bad.is_empty());
        assert_eq!(entries.len(), 2);
        match &entries[0] {
            Entry::Settle { generation, .. } => assert_eq!(generation.charge, Nanos(40)),
            other => panic!("{other:?}"),
        }
        // A torn last line is set aside, not applied.
        std::fs::write(&files[0], "{\"release\": {\"hold\"\n").expect("write");
        let (entries, bad) = read(&files[0]).expect("read");
        assert!(entries.is_empty() && bad.len() == 1);
    }
}
