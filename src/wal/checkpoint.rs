//! Checkpoints: a consistent copy of the log that a backup can archive while
//! the log keeps running. Sealed segments never change, so they are hard
//! links; the active segment is copied up to its durable length.
//!
//! ```text
//! DATA_DIR/checkpoints/<name>/<first seq:020>.seg ...
//! DATA_DIR/checkpoints/<name>/manifest.json   {"format_version", "segments": [{"file", "first_seq", "bytes", "crc32"}]}
//! ```
//!
//! Restoring is copying the `.seg` files into an empty `DATA_DIR/wal/`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::WalError;
use super::format::{self, HEADER_LEN};
use super::segment::{self, Frames};
use super::Wal;

const MANIFEST: &str = "manifest.json";

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
    /// Makes a checkpoint named `name` (`[A-Za-z0-9_.-]{1,128}`, not taken).
    pub fn checkpoint(&self, name: &str) -> Result<CheckpointInfo, WalError> {
        check_name(name)?;
        let root = self.data_dir.join("checkpoints");
        let dir = root.join(name);
        let staging = root.join(format!(".{name}.partial"));
        if dir.exists() {
            return Err(WalError::BadCheckpointName {
                name: name.into(),
                reason: "a checkpoint of that name exists",
            });
        }
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(|e| WalError::io("create directory", &staging, e))?;
        // Segments must not be deleted between the snapshot and their links.
        let _maintenance = self.shared.maintenance.lock().expect("maintenance lock");
        let snapshot = self.durable_snapshot()?;
        let mut entries = Vec::with_capacity(snapshot.sealed.len() + 1);
        for (first_seq, path, len) in &snapshot.sealed {
            let target = staging.join(segment::file_name(*first_seq));
            fs::hard_link(path, &target).map_err(|e| WalError::io("link", &target, e))?;
            entries.push(entry(*first_seq, *len, crc_of(&target, *len)?));
        }
        let (first_seq, path, len) = &snapshot.active;
        let target = staging.join(segment::file_name(*first_seq));
        let crc = copy_prefix(path, &target, *len)?;
        entries.push(entry(*first_seq, *len, crc));
        drop(_maintenance);

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
        sync_dir(&staging)?;
        fs::rename(&staging, &dir).map_err(|e| WalError::io("rename", &staging, e))?;
        sync_dir(&root)?;
        Ok(CheckpointInfo {
            path: Path::new("checkpoints").join(name),
            segments,
            bytes,
        })
    }
}

/// Checks a checkpoint (or any directory with a manifest): every file is
/// there with its size and checksum, and every frame in it is valid.
pub fn verify_checkpoint(dir: &Path) -> Result<CheckpointVerified, WalError> {
    let manifest_path = dir.join(MANIFEST);
    let raw = fs::read(&manifest_path).map_err(|e| WalError::io("read", &manifest_path, e))?;
    let mismatch = |path: &Path, reason: String| WalError::CheckpointMismatch {
        path: path.to_path_buf(),
        reason,
    };
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| mismatch(&manifest_path, format!("unreadable manifest: {e}")))?;
    let mut verified = CheckpointVerified {
        segments: 0,
        records: 0,
        bytes: 0,
    };
    for e in &manifest.segments {
        let path = dir.join(&e.file);
        if segment::parse_file_name(&e.file) != Some(e.first_seq) {
            return Err(mismatch(
                &path,
                "file name does not match its first sequence number".into(),
            ));
        }
        let actual = fs::metadata(&path)
            .map_err(|err| WalError::io("stat", &path, err))?
            .len();
        if actual != e.bytes {
            return Err(mismatch(
                &path,
                format!("{actual} bytes, manifest says {}", e.bytes),
            ));
        }
        let map = segment::map(&path, actual)?;
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let crc = format!("{:08x}", crc32fast::hash(bytes));
        if crc != e.crc32 {
            return Err(mismatch(
                &path,
                format!("crc32 {crc}, manifest says {}", e.crc32),
            ));
        }
        format::decode_header(bytes).map_err(|defect| WalError::BadHeader {
            path: path.clone(),
            defect,
        })?;
        for frame in Frames::new(bytes, HEADER_LEN, false) {
            let _ = frame.map_err(|bad| WalError::Corrupt {
                path: path.clone(),
                offset: bad.offset as u64,
                defect: bad.defect,
            })?;
            verified.records += 1;
        }
        verified.segments += 1;
        verified.bytes += actual;
    }
    Ok(verified)
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

fn crc_of(path: &Path, len: u64) -> Result<u32, WalError> {
    let map = segment::map(path, len)?;
    Ok(crc32fast::hash(map.as_deref().unwrap_or(&[])))
}

/// Copies the first `len` bytes of `from`, syncs the copy, returns its crc32.
fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<u32, WalError> {
    let source = File::open(from).map_err(|e| WalError::io("open", from, e))?;
    let mut target = File::create_new(to).map_err(|e| WalError::io("create", to, e))?;
    let mut reader = source.take(len);
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| WalError::io("read", from, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        target
            .write_all(&buf[..n])
            .map_err(|e| WalError::io("write", to, e))?;
    }
    target
        .sync_all()
        .map_err(|e| WalError::io("fsync", to, e))?;
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
