//! The real broker binary on a free loopback port, in a directory of the
//! test's choosing, ready once it logs that it serves.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running broker process; killed when dropped unless it already exited.
pub struct Server {
    pid: i32,
    exited: mpsc::Receiver<ExitStatus>,
    reaped: bool,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Server {
    /// Starts the broker and returns once it logs that it serves.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// [`Server::start`] with more settings, such as `BROKER_TOKEN`.
    pub fn start_with(data_dir: &Path, settings: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut command = command(data_dir, port);
        command.envs(settings.iter().copied());
        Server::spawn(command, port)
    }

    /// Starts `command`, a broker that is to listen on `port` of 127.0.0.1,
    /// and returns once it logs that it serves.
    pub fn spawn(mut command: Command, port: u16) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the broker");
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let serving = wait_for_log(&mut log, "serving");
        assert!(
            serving.contains(&format!("\"addr\":\"127.0.0.1:{port}\"")),
            "{serving}"
        );
        // Keep reading, or the broker would block once the pipe is full.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        let pid = child.id() as i32;
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait().unwrap()));
        Server {
            pid,
            exited,
            reaped: false,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The port the broker listens on.
    pub fn port(&self) -> &str {
        self.base.rsplit(':').next().unwrap()
    }

    /// Sends `signal` to the broker.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the broker to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = self
            .exited
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("the broker did not exit in {within:?}"));
        self.reaped = true;
        status
    }
}

/// A port of 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The broker binary with the tests' settings, to serve on `port` of
/// 127.0.0.1 with its log in `data_dir`; more settings or arguments may be added.
pub fn command(data_dir: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_event-broker"));
    command
        .env("PORT", port.to_string())
        .env("BIND_ADDR", "127.0.0.1")
        .env("DATA_DIR", data_dir)
        .env("WAL_FSYNC", "always")
        .env("WAL_SEGMENT_BYTES", "1048576")
        .env("SHUTDOWN_TIMEOUT_MS", "5000")
        .env("QUEUE_MAX_SIZE", "1000000")
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json");
    command
}

/// Reads the broker's JSON log until a line with `message`; that line.
pub fn wait_for_log(log: &mut impl BufRead, message: &str) -> String {
    let wanted = format!("\"message\":\"{message}\"");
    let mut line = String::new();
    loop {
        line.clear();
        let n = log.read_line(&mut line).unwrap();
        assert!(n > 0, "the broker exited before logging {message:?}");
        if line.contains(&wanted) {
            return line;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let _status = self.exited.recv();
        }
    }
}

/// A request to a broker; its status and JSON answer (`null` for none).
pub fn send(
    client: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().expect("the broker answers");
    let status = answer.status();
    (status, answer.json().unwrap_or(serde_json::Value::Null))
}

/// A request that must succeed; its JSON answer.
pub fn call(
    client: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let (status, v) = send(client, method, url, body);
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}
