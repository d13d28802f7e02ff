//! Private servers for tests that stop and restart them (the shared stack must stay up for
//! the tests running beside them): a tansu broker and a rivven-schema registry on free ports.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::process::free_port;

fn tool(var: &str, default_rel: &str) -> PathBuf {
    if let Ok(p) = std::env::var(var) {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache = std::env::var("NOTIFY_CACHE").unwrap_or_else(|_| format!("{home}/.cache/notify-platform"));
    PathBuf::from(cache).join(default_rel)
}

fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server on port {port} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tansu broker of one test, with its own SQLite file, that can be stopped and restarted.
pub struct PrivateBroker {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateBroker {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(crate::unique("tansu-"));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let mut b = Self {
            port: free_port(),
            dir,
            child: None,
        };
        b.restart();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let bin = tool("TANSU_BIN", "tools/tansu-0.6.0/bin/tansu");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("log");
        let child = Command::new(&bin)
            .current_dir(&self.dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        wait_port(self.port, Duration::from_secs(30));
        // The header index the stack's broker gets too (`deploy/local/tansu-index.py`).
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/local/tansu-index.py");
        let status = Command::new("python3")
            .arg(script)
            .arg(self.dir.join("tansu.db"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run python3 {script}: {e}"));
        assert!(status.success(), "{script} failed: {status}");
    }

    /// The broker's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rivven-schema registry of one test (in-memory), restartable.
pub struct PrivateRegistry {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRegistry {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        self.stop();
        let bin = tool("RIVVEN_BIN", "tools/rivven-schema-0.0.22/bin/rivven-schema");
        let child = Command::new(&bin)
            .args(["serve", "--host", "127.0.0.1", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        wait_port(self.port, Duration::from_secs(30));
    }

    /// The registry's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (the registry keeps its schemas in memory: register them again after a
    /// restart, as the deploy step does).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
