//! A server's CPU time over a timed phase, read from `/proc/<pid>/stat`
//! before and after it: user and system time of all its threads, plus that
//! of the children it has waited for (Redis forks one to rewrite its AOF;
//! automatic rewrites are off and the driver waits for the one it asks for
//! between runs, so no timed phase has one). Clock ticks are
//! `sysconf(_SC_CLK_TCK)`, the figure `getconf CLK_TCK` prints: usually 100
//! a second, so a phase of a few seconds has about 1% resolution.

use std::time::Instant;

use event_broker_clock::monotonic_now;

use crate::PeerError;

/// Reads one server's CPU time; without a pid, it reads none.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    pid: Option<u32>,
    ticks_per_second: f64,
}

/// A phase being timed.
#[derive(Debug)]
pub struct Started {
    meter: Meter,
    at: Instant,
    cpu: Option<f64>,
}

/// What a finished phase took.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The server's CPU seconds, when its pid is known.
    pub cpu_seconds: Option<f64>,
}

impl Meter {
    /// A meter of process `pid`.
    pub fn new(pid: Option<u32>) -> Meter {
        // SAFETY: sysconf only reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Meter {
            pid,
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }

    /// Starts timing a phase.
    pub fn start(&self) -> Result<Started, PeerError> {
        let cpu = self.cpu_seconds()?;
        Ok(Started {
            meter: *self,
            at: monotonic_now(),
            cpu,
        })
    }

    fn cpu_seconds(&self) -> Result<Option<f64>, PeerError> {
        let Some(pid) = self.pid else {
            return Ok(None);
        };
        let path = format!("/proc/{pid}/stat");
        let text =
            std::fs::read_to_string(&path).map_err(|source| PeerError::Proc { pid, source })?;
        let ticks = stat_ticks(&text).ok_or(PeerError::ProcFormat { pid })?;
        Ok(Some(ticks as f64 / self.ticks_per_second))
    }
}

impl Started {
    /// Ends the phase.
    pub fn finish(self) -> Result<Usage, PeerError> {
        let seconds = (monotonic_now() - self.at).as_secs_f64();
        let cpu_seconds = match (self.cpu, self.meter.cpu_seconds()?) {
            (Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
        Ok(Usage {
            seconds,
            cpu_seconds,
        })
    }
}

/// utime + stime + cutime + cstime of a `/proc/<pid>/stat` line. The
/// command name in parentheses may hold spaces, so fields are counted from
/// its closing parenthesis: the state is field 3, utime 14 ... cstime 17.
fn stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum()
}
