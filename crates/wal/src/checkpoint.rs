//! Checkpoints: a consistent copy of the log that a backup can archive while
//! the log keeps running. Sealed segments never change, so they are hard
//! links; the active segment is copied up to its durable length.
//!
//! ```text
//! DATA_DIR/checkpoints/<name>/<first seq:020>.seg ...
//! DATA_DIR/checkpoints/<name>/manifest.json   {"format_version", "segments": [{"file", "first_seq", "bytes", "crc32"}]}
//! ```
//!
//! Restoring is copying the `.seg` files into an empty `DATA_DIR/wal/`; the
//! log ignores a `manifest.json` beside them.
//!
//! The maintenance lock, which segment deletion takes too, is held only to
//! take the durable snapshot, link the sealed segments and open the active
//! one: the slow part, checksums and the copy, runs without it. A
//! checkpoint is made in `checkpoints/.<name>.partial`, created with
//! `create_dir`, which is the name's lock: a second checkpoint of the name
//! while the first runs is refused as [`WalError::CheckpointExists`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::WalError;
use super::format;
use super::fs::FileSystem;
use super::segment;
use super::verify::{lost, whole, LogCheck, LogKind};
use super::writer::DurableSnapshot;
use super::{Position, Wal};

/// The manifest's file name in a checkpoint directory.
pub(crate) const MANIFEST: &str = "manifest.json";

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Its directory, relative to the data directory (`checkpoints/<name>`).
    pub path: PathBuf,
    /// Segment files in it.
    pub segments: usize,
    /// Bytes in them.
    pub bytes: u64,
}

/// What verifying a checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerified {
    /// Segment files checked.
    pub segments: usize,
    /// Records in them, every one with a valid checksum.
    pub records: u64,
    /// Bytes in them.
    pub bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    segments: Vec<ManifestEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    file: String,
    first_seq: u64,
    bytes: u64,
    crc32: String,
}

impl Wal {
    /// Makes a checkpoint named `name` (`[A-Za-z0-9_.-]{1,128}`, not taken:
    /// [`WalError::CheckpointExists`] when it is, or while another
    /// checkpoint of that name is being made).
    pub fn checkpoint(&self, name: &str) -> Result<CheckpointInfo, WalError> {
        check_name(name)?;
        let root = self.data_dir.join("checkpoints");
        let staging = root.join(format!(".{name}.partial"));
        fs::create_dir_all(&root).map_err(|e| WalError::io("create directory", &root, e))?;
        // The staging directory is the name's lock: creating it fails while
        // another checkpoint of the name is being made. One left by a
        // process that died was removed when the log was opened.
        match fs::create_dir(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(WalError::CheckpointExists { name: name.into() })
            }
            Err(e) => return Err(WalError::io("create directory", &staging, e)),
        }
        let made = self.make_checkpoint(name, &root, &staging);
        if made.is_err() {
            if let Err(e) = fs::remove_dir_all(&staging) {
                tracing::warn!(path = %staging.display(), error = %e,
                    "cannot remove the staging directory of a failed checkpoint; it goes when the log is next opened");
            }
        }
        made
    }

    fn make_checkpoint(
        &self,
        name: &str,
        root: &Path,
        staging: &Path,
    ) -> Result<CheckpointInfo, WalError> {
        // Checked while holding the name, so that no other checkpoint of
        // the name can finish between the check and the rename.
        let dir = root.join(name);
        if dir.exists() {
            return Err(WalError::CheckpointExists { name: name.into() });
        }
        let (snapshot, active) = self.link_segments(staging)?;
        // Checksums and the copy run without the maintenance lock, so that
        // cleanup (and the reaper, which waits for it) goes on meanwhile:
        // the links keep the sealed segments, which never change, and the
        // open active file keeps its durable prefix, which never changes either.
        let mut entries = Vec::with_capacity(snapshot.sealed.len() + 1);
        for (first_seq, _, len) in &snapshot.sealed {
            let linked = staging.join(segment::file_name(*first_seq));
            let crc = crc_of(self.shared.fs.as_ref(), &linked, *len)?;
            entries.push(entry(*first_seq, *len, crc));
        }
        let (first_seq, path, len) = &snapshot.active;
        let target = staging.join(segment::file_name(*first_seq));
        let crc = copy_prefix(active, path, &target, *len)?;
        entries.push(entry(*first_seq, *len, crc));

        let manifest = Manifest {
            format_version: format::VERSION,
            segments: entries,
        };
        let bytes = manifest.segments.iter().map(|e| e.bytes).sum();
        let segments = manifest.segments.len();
        write_synced(
            &staging.join(MANIFEST),
            &serde_json::to_vec_pretty(&manifest).expect("manifest serializes"),
        )?;
        sync_dir(staging)?;
        fs::rename(staging, &dir).map_err(|e| WalError::io("rename", staging, e))?;
        sync_dir(root)?;
        Ok(CheckpointInfo {
            path: Path::new("checkpoints").join(name),
            segments,
            bytes,
        })
    }

    /// Under the maintenance lock, so that no segment is deleted between
    /// the snapshot and its link: takes a durable snapshot, hard-links its
    /// sealed segments into `staging` and opens the active one.
    fn link_segments(
        &self,
        staging: &Path,
    ) -> Result<(DurableSnapshot, Box<dyn Read + Send>), WalError> {
        let _maintenance = self.shared.maintenance.lock().expect("maintenance lock");
        let snapshot = self.durable_snapshot()?;
        for (first_seq, path, _) in &snapshot.sealed {
            let target = staging.join(segment::file_name(*first_seq));
            fs::hard_link(path, &target).map_err(|e| WalError::io("link", &target, e))?;
        }
        let path = &snapshot.active.1;
        let active = self
            .shared
            .fs
            .open_read(path)
            .map_err(|e| WalError::io("open", path, e))?;
        Ok((snapshot, active))
    }
}

/// Removes the staging directories of checkpoints that a process died
/// making: called with the data directory locked, when no checkpoint runs.
pub(crate) fn remove_unfinished(data_dir: &Path) {
    let root = data_dir.join("checkpoints");
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(path = %root.display(), error = %e, "cannot look for unfinished checkpoints");
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".partial")) {
            continue;
        }
        let path = entry.path();
        match fs::remove_dir_all(&path) {
            Ok(()) => tracing::warn!(path = %path.display(), "removed an unfinished checkpoint"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e,
                "cannot remove an unfinished checkpoint; a checkpoint of its name answers that it exists"),
        }
    }
}

/// Checks a checkpoint (or any directory with a manifest): every file is
/// there with its size and checksum, and every frame in it is valid.
pub fn verify_checkpoint(dir: &Path) -> Result<CheckpointVerified, WalError> {
    let check = check_checkpoint(dir, &mut |_, _| {})?;
    if let Some(first) = check.damage.first() {
        return Err(WalError::CheckpointMismatch {
            path: first.path.clone(),
            reason: format!("{} at byte offset {}", first.defect, first.offset),
        });
    }
    Ok(CheckpointVerified {
        segments: check.segments.len(),
        records: check.records(),
        bytes: check.bytes(),
    })
}

/// Checks a checkpoint against its manifest, frame by frame, reporting
/// every difference as damage. A checkpoint is complete by construction,
/// so even the end of its newest segment must be whole.
pub(crate) fn check_checkpoint(
    dir: &Path,
    visit: &mut dyn FnMut(&Position, &[u8]),
) -> Result<LogCheck, WalError> {
    let manifest_path = dir.join(MANIFEST);
    let raw = fs::read(&manifest_path).map_err(|e| WalError::io("read", &manifest_path, e))?;
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| WalError::CheckpointMismatch {
            path: manifest_path.clone(),
            reason: format!("unreadable manifest: {e}"),
        })?;
    let mut check = LogCheck::new(LogKind::Checkpoint);
    for e in &manifest.segments {
        let path = dir.join(&e.file);
        if segment::parse_file_name(&e.file) != Some(e.first_seq) {
            let defect = "file name does not match its first sequence number in the manifest";
            check.damage.push(whole(&path, 0, defect.into()));
            continue;
        }
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let defect = format!("missing: the manifest lists it with {} bytes", e.bytes);
                check.damage.push(whole(&path, 0, defect));
                continue;
            }
            Err(err) => return Err(WalError::io("read", &path, err)),
        };
        let found = check.damage.len();
        check.judge(&path, e.first_seq, &bytes, false, visit);
        if check.damage.len() > found {
            // The frames say where the damage is, which the checksum cannot.
            continue;
        }
        let actual = bytes.len() as u64;
        if actual != e.bytes {
            let defect = format!("{actual} bytes, manifest says {}", e.bytes);
            check.damage.push(lost(
                &path,
                actual.min(e.bytes) as usize,
                actual.max(e.bytes) as usize,
                defect,
            ));
        } else if format!("{:08x}", crc32fast::hash(&bytes)) != e.crc32 {
            let crc = crc32fast::hash(&bytes);
            let defect = format!("crc32 {crc:08x}, manifest says {}", e.crc32);
            check.damage.push(whole(&path, bytes.len(), defect));
        }
    }
    for (_, path) in segment::list(dir)? {
        let listed = path.file_name().and_then(|n| n.to_str());
        if !manifest
            .segments
            .iter()
            .any(|e| Some(e.file.as_str()) == listed)
        {
            let defect = "a segment the manifest does not list".to_string();
            check.damage.push(whole(&path, 0, defect));
        }
    }
    Ok(check)
}

fn check_name(name: &str) -> Result<(), WalError> {
    let bad = |reason| {
        Err(WalError::BadCheckpointName {
            name: name.into(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 128 {
        return bad("it must be 1 to 128 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return bad("only A-Z, a-z, 0-9, '_', '.' and '-' are allowed");
    }
    if name.starts_with('.') {
        return bad("it must not start with '.'");
    }
    Ok(())
}

fn entry(first_seq: u64, bytes: u64, crc: u32) -> ManifestEntry {
    ManifestEntry {
        file: segment::file_name(first_seq),
        first_seq,
        bytes,
        crc32: format!("{crc:08x}"),
    }
}

/// The crc32 of the first `len` bytes of `path`.
fn crc_of(fs: &dyn FileSystem, path: &Path, len: u64) -> Result<u32, WalError> {
    let source = fs
        .open_read(path)
        .map_err(|e| WalError::io("open", path, e))?;
    read_prefix(source, path, len, &mut |_| Ok(()))
}

/// Copies the first `len` bytes of `source` (the file `from`), syncs the
/// copy, returns its crc32.
fn copy_prefix(
    source: Box<dyn Read + Send>,
    from: &Path,
    to: &Path,
    len: u64,
) -> Result<u32, WalError> {
    let mut target = File::create_new(to).map_err(|e| WalError::io("create", to, e))?;
    let crc = read_prefix(source, from, len, &mut |chunk| {
        target
            .write_all(chunk)
            .map_err(|e| WalError::io("write", to, e))
    })?;
    target
        .sync_all()
        .map_err(|e| WalError::io("fsync", to, e))?;
    Ok(crc)
}

/// Reads the first `len` bytes of `source` (the file `path`) a chunk at a
/// time, handing each to `chunk`; their crc32.
fn read_prefix(
    source: Box<dyn Read + Send>,
    path: &Path,
    len: u64,
    chunk: &mut dyn FnMut(&[u8]) -> Result<(), WalError>,
) -> Result<u32, WalError> {
    let mut reader = source.take(len);
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| WalError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        chunk(&buf[..n])?;
        read += n as u64;
    }
    if read < len {
        let short = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{read} bytes, the log says {len}"),
        );
        return Err(WalError::io("read", path, short));
    }
    Ok(hasher.finalize())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), WalError> {
    let mut file = File::create(path).map_err(|e| WalError::io("create", path, e))?;
    file.write_all(bytes)
        .map_err(|e| WalError::io("write", path, e))?;
    file.sync_all().map_err(|e| WalError::io("fsync", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io("fsync directory", dir, e))
}
