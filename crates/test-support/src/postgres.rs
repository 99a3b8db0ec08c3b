//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, `postgres` on
//! a free loopback port with its socket in that directory, stopped and removed when the
//! cluster drops or the test process exits. Each test takes its own database
//! ([`PgCluster::create_database`]), dropped with its guard.
//!
//! The server binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/N/bin`,
//! the newest N), or from the directory `SLUICE_PG_BINDIR` names. When they are missing the
//! cluster fails to start with a message naming `.ci/install-test-tools`: a test that needs
//! PostgreSQL never skips silently. PostgreSQL refuses to run as root, so as root (CI) the
//! server runs as the `postgres` system user the package creates, owning its directories.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::dirs::{TestDir, temp_dir};

/// Names a directory of PostgreSQL server binaries to use instead of Debian's.
pub const BINDIR_ENV: &str = "SLUICE_PG_BINDIR";

/// Where Debian's `postgresql-N` packages put their server binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The system user Debian's package creates to run the server.
const SERVER_USER: &str = "postgres";

/// How long a new cluster may take to accept connections before the test fails.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running throwaway cluster. Dropping it stops the server and removes its directory.
pub struct PgCluster {
    server: Child,
    client: Client,
    data: PathBuf,
    // Declared last: removed after the server stopped.
    dir: TestDir,
}

/// What a client needs to reach the cluster: the binaries and the port.
#[derive(Clone)]
struct Client {
    bindir: PathBuf,
    port: u16,
}

/// A database of its own for one test, dropped (connections and all) with this guard.
pub struct PgDatabase {
    /// Its name.
    pub name: String,
    /// A URL that reaches it over loopback TCP as the cluster's superuser, without TLS.
    pub url: String,
    client: Client,
}

impl PgCluster {
    /// Starts a new cluster; panics with what to do when PostgreSQL is missing or fails.
    pub fn start() -> Self {
        Self::start_with(&[], |_, _| {})
    }

    /// Starts a new cluster serving TLS (and plaintext, as PostgreSQL does unless told
    /// otherwise) with a certificate for `localhost` only, signed by a throwaway CA; returns
    /// it with that CA's PEM, the root a client must trust.
    pub fn start_tls() -> (Self, String) {
        let (ca_pem, cert_pem, key_pem) = localhost_certificate();
        let settings = [
            "ssl=on",
            "ssl_cert_file=server.crt",
            "ssl_key_file=server.key",
        ];
        let cluster = Self::start_with(&settings, |runner, data| {
            for (name, pem) in [("server.crt", &cert_pem), ("server.key", &key_pem)] {
                runner.write_private(&data.join(name), pem);
            }
        });
        (cluster, ca_pem)
    }

    /// Starts a cluster with `settings` (`name=value`), after `prepare` wrote what they need
    /// into the data directory.
    fn start_with(settings: &[&str], prepare: impl FnOnce(&Runner, &Path)) -> Self {
        let bindir = server_bindir().unwrap_or_else(|why| panic!("{why}"));
        let dir = temp_dir("pg");
        let runner = Runner::for_current_user();
        let data = dir.join("data");
        runner.prepare_dirs(&dir, &data);
        runner.initdb(&bindir, &data, &dir.join("initdb.log"));
        prepare(&runner, &data);
        let port = free_port();
        let server = runner.spawn_server(&bindir, &data, &dir, port, settings);
        watch_for_exit(&dir, &data);
        let mut cluster = Self {
            server,
            client: Client { bindir, port },
            data,
            dir,
        };
        cluster.wait_ready();
        cluster
    }

    /// The cluster of this test process, started on first use and stopped when it exits.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// The loopback TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.client.port
    }

    /// Creates a fresh, uniquely named database.
    pub fn create_database(&self) -> PgDatabase {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sluice_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.client
            .psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        PgDatabase {
            url: self.client.url(&name),
            name,
            client: self.client.clone(),
        }
    }

    /// A URL for database `name` (which must exist) as the superuser, without TLS.
    pub fn url(&self, name: &str) -> String {
        self.client.url(name)
    }

    /// Runs `sql` in database `name` with `psql` and returns its unaligned, tuples-only output
    /// (one row a line, columns separated by `|`); a failing statement fails the test.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        self.client.psql(name, sql)
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.server.try_wait().expect("waiting for postgres") {
                panic!(
                    "postgres exited ({status}) before accepting connections; its log:\n{}",
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
                );
            }
            let ready = Command::new(self.client.bindir.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.client.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < READY_WITHIN,
                "postgres did not accept connections within {READY_WITHIN:?}; its log is in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // The child may be `runuser`, so the postmaster is signalled by its pid file. SIGINT:
        // a fast shutdown that ends every session.
        if let Some(pid) = postmaster_pid(&self.data) {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.server.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        self.client.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

impl Client {
    fn url(&self, name: &str) -> String {
        format!(
            "postgres://{SERVER_USER}@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    fn psql(&self, name: &str, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SERVER_USER, "-d", name, "-c", sql])
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?} in {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("psql prints UTF-8")
    }
}

/// The newest server binaries: `SLUICE_PG_BINDIR`, else Debian's.
fn server_bindir() -> Result<PathBuf, String> {
    find_bindir(std::env::var_os(BINDIR_ENV), Path::new(DEBIAN_ROOT))
}

/// The directory `given` names, else the newest `DEBIAN/N/bin` holding `postgres`.
fn find_bindir(given: Option<std::ffi::OsString>, debian_root: &Path) -> Result<PathBuf, String> {
    let missing = |what: String| {
        format!(
            "PostgreSQL's server binaries are missing ({what}); run .ci/install-test-tools \
             (it installs Debian's postgresql), or set {BINDIR_ENV} to a directory holding \
             initdb, postgres, pg_isready and psql"
        )
    };
    if let Some(dir) = given.filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.join("postgres").is_file() {
            Ok(dir)
        } else {
            Err(missing(format!("no postgres in {}", dir.display())))
        };
    }
    let versions = std::fs::read_dir(debian_root)
        .map_err(|e| missing(format!("{}: {e}", debian_root.display())))?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        });
    versions
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .ok_or_else(|| missing(format!("no {}/*/bin/postgres", debian_root.display())))
}

/// Runs the server's programs as the current user, or as `postgres` when that is root.
enum Runner {
    Current,
    ServerUser { uid: u32, gid: u32 },
}

impl Runner {
    fn for_current_user() -> Self {
        // /proc/self belongs to the process's effective user.
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !root {
            return Self::Current;
        }
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, SERVER_USER])
                .output()
                .expect("running id");
            assert!(
                out.status.success(),
                "running as root, the cluster needs the `{SERVER_USER}` system user Debian's \
                 postgresql package creates; run .ci/install-test-tools"
            );
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        Self::ServerUser {
            uid: id("-u"),
            gid: id("-g"),
        }
    }

    /// The cluster's own directory is entered by the server user; its data directory and
    /// socket (the cluster's directory itself) belong to that user.
    fn prepare_dirs(&self, dir: &Path, data: &Path) {
        std::fs::create_dir(data).expect("creating the data directory");
        if let Self::ServerUser { uid, gid } = self {
            for path in [dir, data] {
                std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
            }
        }
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            Self::Current => Command::new(program),
            Self::ServerUser { .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", SERVER_USER, "--"]).arg(program);
                cmd
            }
        }
    }

    fn initdb(&self, bindir: &Path, data: &Path, log: &Path) {
        let out = self
            .command(&bindir.join("initdb"))
            .arg("-D")
            .arg(data)
            .args(["-U", SERVER_USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .expect("running initdb");
        let _ = std::fs::write(log, [&out.stdout[..], &out.stderr[..]].concat());
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes `contents` to `path`, readable by the server's user only (PostgreSQL refuses a
    /// key file others can read).
    fn write_private(&self, path: &Path, contents: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Self::ServerUser { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).unwrap();
        }
    }

    fn spawn_server(
        &self,
        bindir: &Path,
        data: &Path,
        dir: &Path,
        port: u16,
        settings: &[&str],
    ) -> Child {
        let log = std::fs::File::create(dir.join("postgres.log")).expect("creating the log");
        let mut command = self.command(&bindir.join("postgres"));
        for setting in settings {
            command.args(["-c", setting]);
        }
        // Durability settings off: the tests kill clients, never this server.
        command
            .arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=100", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres")
    }
}

/// A throwaway CA's PEM, and a certificate it signed for `localhost` (no address: a client
/// verifying names must reach it as `localhost`) with its key, PEM.
fn localhost_certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sluice test PostgreSQL CA");
    let ca_cert = ca.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server parameters")
        .signed_by(&key, &issuer)
        .expect("the server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// A loopback port free now (the server binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn postmaster_pid(data: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().to_string();
    (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then_some(pid)
}

/// A watcher that stops the server and removes its directory once this process is gone: a
/// shared cluster is never dropped, and a test process can die of a signal.
fn watch_for_exit(dir: &Path, data: &Path) {
    let keep = std::env::var(crate::dirs::KEEP_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let script = r#"
        while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done
        [ -f "$3/postmaster.pid" ] && kill -INT "$(head -n1 "$3/postmaster.pid")" 2>/dev/null
        sleep 2
        [ "$4" = keep ] || rm -rf "$2"
    "#;
    let spawned = Command::new("sh")
        .args(["-c", script, "sh", &std::process::id().to_string()])
        .arg(dir)
        .arg(data)
        .arg(if keep { "keep" } else { "remove" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the test cluster for this process's exit: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_how_to_install_them() {
        let empty = temp_dir("pg-missing");
        for (given, root) in [
            (None, empty.join("absent")),
            (None, empty.to_path_buf()),
            (Some(empty.as_os_str().to_owned()), empty.to_path_buf()),
        ] {
            let why = find_bindir(given, &root).unwrap_err();
            assert!(why.contains(".ci/install-test-tools"), "{why}");
        }
        std::fs::create_dir_all(empty.join("13/bin")).unwrap();
        std::fs::create_dir_all(empty.join("16/bin")).unwrap();
        std::fs::write(empty.join("13/bin/postgres"), "").unwrap();
        std::fs::write(empty.join("16/bin/postgres"), "").unwrap();
        assert_eq!(
            find_bindir(None, &empty).unwrap(),
            empty.join("16/bin"),
            "the newest"
        );
    }

    #[test]
    fn a_database_takes_writes_and_goes_with_its_guard() {
        let cluster = PgCluster::start();
        let db = cluster.create_database();
        cluster.psql(
            &db.name,
            "CREATE TABLE t (v text); INSERT INTO t VALUES ('x')",
        );
        assert_eq!(cluster.psql(&db.name, "SELECT v FROM t"), "x\n");
        let name = db.name.clone();
        drop(db);
        let left = cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        );
        assert_eq!(left, "0\n");
        let data = cluster.data.clone();
        drop(cluster);
        assert!(!data.exists(), "the cluster's directory is removed");
    }
}
