//! A Redis server of one test, on a free port, that the test can stop and start again (the
//! machine's Redis must stay up for the tests running beside it). Started from the machine's
//! `redis-server` (`REDIS_SERVER_BIN` to choose another), keeping nothing on disk.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::process::free_port;

/// A private `redis-server`; stopped when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    /// Where a persistent server keeps its append-only file.
    dir: Option<PathBuf>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
            dir: None,
        };
        r.restart();
        r
    }

    /// A server that keeps its data across [`stop`](Self::stop) and
    /// [`restart`](Self::restart) (an append-only file written on every command, in a
    /// temporary directory), as a production Redis with persistence does.
    pub fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(crate::unique("redis-"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = Self {
            port: free_port(),
            child: None,
            dir: Some(dir),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty unless persistent, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match &self.dir {
            Some(dir) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => cmd.args(["--appendonly", "no"]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{bin}` ({e}): install Debian's redis-server"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it to exit: every client's connection drops.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
