//! The filesystem seam of the log: every write, sync, truncation and
//! deletion goes through [`FileSystem`], so tests can make the disk fill up or
//! an fsync fail at a chosen moment. So do the whole-file reads of
//! checkpoints, so tests can hold one at a known point; the reads of records
//! (mapped segments, `pread` of the active one) go to the files directly.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A file the log writes to.
pub trait WritableFile: Send {
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the written data durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the data and all metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Starts writing back a range without waiting, so the disk works while
    /// the rest of a large write is still being copied. A hint: the later
    /// `sync_data` is what makes the range durable.
    fn start_writeback(&mut self, _offset: u64, _len: u64) {}
}

/// The operations of the log that change what is on disk.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates a new file; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for writing.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Makes creations, renames and deletions in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Deletes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Opens a file to read it from the start, as a checkpoint reads the
    /// segments it checksums and copies.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }
}

/// The operating system's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

impl WritableFile for RealFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn start_writeback(&mut self, offset: u64, len: u64) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor this file owns. Its result
        // is ignored on purpose: it only starts I/O early, and any error
        // shows again in the sync_data that must follow.
        unsafe {
            libc::sync_file_range(
                self.0.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
}

impl FileSystem for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile(file)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// Faults a [`FaultyFs`] injects; change them at any time through its handle.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Bytes that may still be written before writes fail with ENOSPC, the
    /// way a disk fills up: the write that crosses the limit is cut short.
    pub space_left: Option<u64>,
    /// The next `sync_data` fails with EIO.
    pub fail_next_sync: bool,
    /// The next `sync_data` fails with ENOSPC: the written data found no
    /// room when it was written back, as with delayed allocation, thin
    /// provisioning or NFS. Nothing says which of it reached the disk.
    pub fail_next_sync_no_space: bool,
    /// Every write fails with EIO.
    pub fail_writes: bool,
    /// Files opened with [`FileSystem::open_read`] wait at this gate before
    /// their first byte is read.
    pub hold_reads: Option<Gate>,
}

/// Where a [`FaultyFs`] holds threads until the test opens it, so that the
/// test can act while they are at a known point.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    state: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Debug, Default)]
struct GateState {
    arrived: usize,
    open: bool,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits up to `timeout` for a thread to arrive at the gate; whether one did.
    pub fn wait_for_arrival(&self, timeout: Duration) -> bool {
        let (lock, changed) = &*self.state;
        let state = lock.lock().expect("gate lock");
        let (state, _) = changed
            .wait_timeout_while(state, timeout, |s| s.arrived == 0)
            .expect("gate lock");
        state.arrived > 0
    }

    /// Lets the threads at the gate through, and every later one.
    pub fn open(&self) {
        let (lock, changed) = &*self.state;
        lock.lock().expect("gate lock").open = true;
        changed.notify_all();
    }

    fn pass(&self) {
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().expect("gate lock");
        state.arrived += 1;
        changed.notify_all();
        drop(changed.wait_while(state, |s| !s.open).expect("gate lock"));
    }
}

/// A file read through a [`FaultyFs`], held at its gate before the first byte.
struct HeldReader {
    inner: File,
    gate: Option<Gate>,
}

impl Read for HeldReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(gate) = self.gate.take() {
            gate.pass();
        }
        self.inner.read(buf)
    }
}

impl Faults {
    /// The fault a sync meets now, used up by meeting it.
    fn sync(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.fail_next_sync) {
            return Err(eio());
        }
        if std::mem::take(&mut self.fail_next_sync_no_space) {
            return Err(enospc());
        }
        Ok(())
    }
}

/// The real filesystem with injected faults, for tests.
#[derive(Debug, Clone, Default)]
pub struct FaultyFs {
    faults: Arc<Mutex<Faults>>,
}

impl FaultyFs {
    /// A filesystem that behaves like [`RealFs`] until faults are set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the injected faults.
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().expect("faults lock"));
    }

    fn wrap(&self, inner: io::Result<Box<dyn WritableFile>>) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FaultyFile {
            inner: inner?,
            faults: self.faults.clone(),
        }))
    }
}

struct FaultyFile {
    inner: Box<dyn WritableFile>,
    faults: Arc<Mutex<Faults>>,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl WritableFile for FaultyFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut faults = self.faults.lock().expect("faults lock");
        if faults.fail_writes {
            return Err(eio());
        }
        match faults.space_left {
            Some(left) if (buf.len() as u64) > left => {
                let fits = left as usize;
                faults.space_left = Some(0);
                self.inner.write_all_at(&buf[..fits], offset)?;
                Err(enospc())
            }
            Some(left) => {
                faults.space_left = Some(left - buf.len() as u64);
                self.inner.write_all_at(buf, offset)
            }
            None => self.inner.write_all_at(buf, offset),
        }
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.faults.lock().expect("faults lock").sync()?;
        self.inner.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.faults.lock().expect("faults lock").sync()?;
        self.inner.sync_all()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl FileSystem for FaultyFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.wrap(RealFs.create_new(path))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.wrap(RealFs.open_write(path))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let gate = self.faults.lock().expect("faults lock").hold_reads.clone();
        Ok(Box::new(HeldReader {
            inner: File::open(path)?,
            gate,
        }))
    }
}
