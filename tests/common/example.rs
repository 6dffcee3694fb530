//! An example server as a child process, as `cargo run -p <example>` starts it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The example's command — `binary` is its executable, `env!("CARGO_BIN_EXE_<name>")` in the
/// example's own tests — with a clean environment, its data in `data_dir`, on a free port.
pub fn command(binary: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("DATA_DIR", data_dir)
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A started server; killed when dropped.
pub struct Running {
    pub child: Child,
    pub base: String,
    /// Everything the server wrote to stdout after its address line, read by a thread so
    /// that a chatty server never blocks on a full pipe.
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// Waits up to `limit` for an output line containing `needle`, and returns it.
    pub fn wait_for_output(&self, needle: &str, limit: std::time::Duration) -> Option<String> {
        let started = std::time::Instant::now();
        loop {
            let found = self
                .output
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains(needle))
                .cloned();
            if found.is_some() || started.elapsed() > limit {
                return found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The server's resident memory, from `/proc/<pid>/statm`.
    pub fn resident_bytes(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.child.id()))
            .expect("Linux /proc");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|field| field.parse().ok())
            .expect("statm's second field");
        pages * 4096
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits for its `listening on http://…` line.
pub fn start(mut command: Command) -> Running {
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let output: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let lines = std::sync::Arc::clone(&output);
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    Running {
        child,
        base,
        output,
    }
}
