//! A PostgreSQL server of one test, on a free port, in a temporary directory, that the test
//! can crash and start again (the machine's PostgreSQL must stay up for the tests running
//! beside it). Started from the machine's packages: `initdb` and `postgres` from
//! `PG_BIN_DIR`, or the newest `/usr/lib/postgresql/<version>/bin`. When the test runs as
//! root the server runs as the `postgres` user (PostgreSQL refuses root).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::process::free_port;

/// A private PostgreSQL server (trust authentication, user `postgres`, no fsync: the data
/// survives a crash of the server, not of the machine); stopped and removed when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb: install Debian's postgresql or set PG_BIN_DIR")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as the `postgres` user when we are root (`setpriv` execs it, so the child's
/// pid is the program's own).
fn command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    /// Initialises a cluster in a new temporary directory and starts it.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(crate::unique("pg-"));
        let out = command(&bin.join("initdb"))
            .args(["-D"])
            .arg(&dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}/initdb: {e}", bin.display()));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Self {
            port: free_port(),
            bin,
            dir,
            child: None,
        };
        pg.restart();
        pg
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`, the admin URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Starts (again) on the same port and data, and waits until it accepts connections
    /// (after a crash, once its recovery is done).
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("postgres log");
        let child = command(&self.bin.join("postgres"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .args(["-c", "shared_buffers=32MB", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}/postgres: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-t",
                    "2",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres on port {} did not start (log: {})",
                self.port,
                self.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_path(&self) -> PathBuf {
        PathBuf::from(format!("{}.log", self.dir.display()))
    }

    /// The postmaster's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A crash: immediate shutdown (SIGQUIT: every backend exits at once, no checkpoint;
    /// the next start runs crash recovery). Every client's connection drops.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-QUIT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.log_path());
    }
}
