//! A DynamoDB Local of its own, with its data on disk, that a test can crash and restart.
//!
//! The proxy's [`set_outage`](crate::FaultProxy::set_outage) only pretends; this is the real
//! thing: `kill -9` as a crash (no clean shutdown), then a restart on the same data. It drives
//! `scripts/dynamodb-local.sh` (with `CRM_DYNAMODB_LOCAL_PORT` and `CRM_DYNAMODB_LOCAL_DB_PATH`),
//! so the installation, the start-up wait and the PID file are the project's, not a copy. The
//! calls block (they wait for the process): call them from synchronous code or
//! `tokio::task::spawn_blocking`.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The main instance's port, which the project's other tests share: never crashed here.
pub const MAIN_PORT: u16 = 8000;

/// A DynamoDB Local on its own port with its data in its own directory; stopped on drop.
#[derive(Debug)]
pub struct LocalDynamo {
    port: u16,
    db_path: PathBuf,
    repo_root: PathBuf,
}

impl LocalDynamo {
    /// The repository root as seen from this crate's sources (`CARGO_MANIFEST_DIR/../..`).
    pub fn default_repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Starts an instance on `port` with its data in `db_path` (created if missing) through
    /// `<repo_root>/scripts/dynamodb-local.sh`, and waits until it answers.
    ///
    /// # Errors
    ///
    /// When `port` is [`MAIN_PORT`] (the instance other tests share must not be crashed); when
    /// the script already runs an instance on `port`: it may belong to a test running at the
    /// same time, and its data may be elsewhere, so it is neither reused nor stopped (after a
    /// run that died, stop it with `CRM_DYNAMODB_LOCAL_PORT=<port> scripts/dynamodb-local.sh
    /// stop`); or when the script fails (port taken by another process, no java, start-up
    /// timeout: its output is in the error).
    pub fn start(repo_root: &Path, port: u16, db_path: &Path) -> io::Result<Self> {
        if port == MAIN_PORT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("port {MAIN_PORT} is the shared main instance; use another port"),
            ));
        }
        let status = script(repo_root, port, db_path, "status").output()?.status;
        if status.code() != Some(3) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "scripts/dynamodb-local.sh already runs an instance on port {port} ({status}); \
                     stop it with `CRM_DYNAMODB_LOCAL_PORT={port} scripts/dynamodb-local.sh stop` \
                     if no test uses it"
                ),
            ));
        }
        let this = Self {
            port,
            db_path: db_path.to_owned(),
            repo_root: repo_root.to_owned(),
        };
        this.script("start")?;
        Ok(this)
    }

    /// Its URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process, from the script's PID file, if that process lives and is a DynamoDB Local
    /// (a PID file left by a crash names a dead, or reused, PID).
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_dynamodb_local = cmdline
            .windows(b"DynamoDBLocal.jar".len())
            .any(|w| w == b"DynamoDBLocal.jar");
        (is_dynamodb_local && alive(pid)).then_some(pid)
    }

    /// Kills it with SIGKILL, as a crash: no clean shutdown. Waits until the process is gone
    /// and nothing accepts connections on its port; the PID file stays behind, as after a real
    /// crash.
    ///
    /// # Errors
    ///
    /// When it does not run, `kill` cannot be run, or the process outlives 10 seconds.
    pub fn kill(&self) -> io::Result<()> {
        let pid = self.pid().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no DynamoDB Local runs on port {}", self.port),
            )
        })?;
        // A failure here is the process having exited meanwhile: the wait below tells.
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) || listening(self.port) {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "PID {pid}, or port {}, still alive 10 s after SIGKILL",
                        self.port
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts it again on the same port and data, and waits until it answers; a no-op while
    /// it runs.
    ///
    /// # Errors
    ///
    /// When the script fails.
    pub fn restart(&self) -> io::Result<()> {
        self.script("start")
    }

    /// Stops it cleanly (SIGTERM); a no-op when it does not run. Also done on drop.
    ///
    /// # Errors
    ///
    /// When the script fails.
    pub fn stop(&self) -> io::Result<()> {
        self.script("stop")
    }

    fn pid_file(&self) -> PathBuf {
        // The script's naming: ports other than the main one get their own files.
        self.repo_root
            .join(".dynamodb-local")
            .join(format!("dynamodb-local-{}.pid", self.port))
    }

    /// Runs the script's `command` for this instance; its output goes into the error.
    fn script(&self, command: &str) -> io::Result<()> {
        let output = script(&self.repo_root, self.port, &self.db_path, command).output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "scripts/dynamodb-local.sh {command} on port {} failed ({}): {} {}",
            self.port,
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
        )))
    }
}

/// `scripts/dynamodb-local.sh <command>` for the instance on `port` with its data in `db_path`.
fn script(repo_root: &Path, port: u16, db_path: &Path, command: &str) -> Command {
    let mut script = Command::new(repo_root.join("scripts/dynamodb-local.sh"));
    script
        .arg(command)
        .env("CRM_DYNAMODB_LOCAL_PORT", port.to_string())
        .env("CRM_DYNAMODB_LOCAL_DB_PATH", db_path);
    script
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        // Best effort: a drop cannot report, and the next `start` on this port stops it anyway.
        let _ = self.stop();
    }
}

/// True while any thread of the process lives. A killed orphan may stay a zombie until a reaper
/// comes (in some containers, never) but serves nothing; yet its main thread turns zombie
/// before its other threads are gone, and until then the listening socket is still open.
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: the state follows the last ')', as comm may hold one.
    let zombie = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_none_or(|state| state == "Z" || state == "X");
    !zombie || fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|threads| threads.count() > 1)
}

/// True when something accepts connections on the loopback port.
fn listening(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}
