//! A throwaway PostgreSQL server for the test suite: one temporary cluster per test process,
//! started on first use from the installed server binaries, one fresh empty database per test,
//! stopped and deleted when the process exits or dies.
//!
//! The cluster listens on 127.0.0.1 only (no unix socket), on a free port, with password
//! authentication for the `postgres` superuser and a random password. When the tests run as
//! root, the server runs as the `postgres` system user (Debian's package creates it), or
//! `nobody`, since PostgreSQL refuses to run as root. Durability is off (`fsync = off`): the
//! tests kill clients, never this server.
//!
//! If no server can be started, [`database`] panics with the reason: tests that need
//! PostgreSQL fail rather than skip.

use std::ffi::CString;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where to look for `initdb`, `pg_ctl` and `postgres` before the usual places.
pub const BIN_DIR_ENV: &str = "MERGE_SYNC_TEST_PG_BIN";

const SUPERUSER: &str = "postgres";

/// The running test cluster.
pub struct Server {
    port: u16,
    password: String,
    dir: PathBuf,
    /// The watchdog's stdin: closing it (at exit, or by the kernel when this process dies)
    /// makes the watchdog stop the server and delete `dir`.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

/// A fresh, empty database on the test cluster.
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/t_N`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name (`t_N`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to this database, for assertions.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to test database {}: {}", self.name, detail(&e)))
    }
}

impl Server {
    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password (the user is `postgres`).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The temporary directory holding the cluster (deleted when the test process ends).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL for `database` with the superuser's credentials in it.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A URL for `database` without a password (supply it with `PGPASSWORD`).
    pub fn url_without_password(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server and deletes its directory, through the watchdog so that there is one
    /// clean-up path. Idempotent.
    fn shut_down(&self) {
        let Ok(mut guard) = self.watchdog.lock() else {
            return;
        };
        if let Some((mut child, stdin)) = guard.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The cluster of this process: started by the first [`server`] call, never replaced.
static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The test cluster, started on first call. Panics with the reason if it cannot start.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(|| {
        let server = start()?;
        // SAFETY: registers a plain extern "C" function that captures nothing.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        Ok(server)
    }) {
        Ok(server) => server,
        Err(reason) => panic!(
            "cannot start the test PostgreSQL server: {reason}\n\
             The PostgreSQL tests need the server binaries (initdb, pg_ctl, postgres): install \
             Debian's `postgresql` package (.ci/run does), or set {BIN_DIR_ENV} to the directory \
             that holds them."
        ),
    }
}

/// A new, empty database (`CREATE DATABASE t_N`) on the test cluster, as a URL.
pub fn database() -> TestDatabase {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let server = server();
    let name = format!("t_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&server.url(SUPERUSER), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL server: {}", detail(&e)));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("creating test database {name}: {}", detail(&e)));
    TestDatabase {
        url: server.url(&name),
        name,
    }
}

extern "C" fn stop_at_exit() {
    // Never unwind out of an extern "C" function.
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(server)) = SERVER.get() {
            server.shut_down();
        }
    });
}

/// The OS user the server runs as, when it must not be the current one.
struct RunAs {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

fn start() -> Result<Server, String> {
    let bin = find_bin_dir()?;
    let run_as = unprivileged_user()?;
    let dir = tempfile::Builder::new()
        .prefix("merge-sync-pg-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?
        .keep();
    let cleanup_on_error = |e: String| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    prepare_dir(&dir, run_as.as_ref()).map_err(cleanup_on_error)?;

    let password = format!("{:032x}", fastrand::u128(..));
    let data = dir.join("data");
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, &password)
        .and_then(|()| chown(&pwfile, run_as.as_ref()))
        .map_err(|e| cleanup_on_error(format!("writing {}: {e}", pwfile.display())))?;
    run(
        command(&bin.join("initdb"), &dir, run_as.as_ref())
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-A", "scram-sha-256", "-E", "UTF8"])
            .arg("--no-locale")
            .args(["-N", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display())),
        "initdb",
    )
    .map_err(cleanup_on_error)?;
    let _ = std::fs::remove_file(&pwfile);
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .map_err(|e| cleanup_on_error(format!("opening postgresql.conf: {e}")))?;
    conf.write_all(CONF.as_bytes())
        .map_err(|e| cleanup_on_error(format!("writing postgresql.conf: {e}")))?;

    // The watchdog exists before the server does, so a kill at any instant from here on
    // still stops the server and deletes the directory.
    let mut watchdog = command(Path::new("/bin/sh"), &dir, run_as.as_ref())
        .arg("-c")
        .arg(WATCHDOG)
        .arg(bin.join("pg_ctl"))
        .arg(&data)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to `cargo test` must not kill it before it cleans up.
        .process_group(0)
        .spawn()
        .map_err(|e| cleanup_on_error(format!("starting the watchdog (/bin/sh): {e}")))?;
    let stdin = watchdog.stdin.take().expect("piped stdin");
    let server = Server {
        port: 0,
        password,
        dir: dir.clone(),
        watchdog: Mutex::new(Some((watchdog, stdin))),
    };
    let fail = |server: &Server, e: String| {
        server.shut_down();
        e
    };

    // A free port can be taken by someone else between our probe and the server's bind: retry.
    let log = dir.join("server.log");
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(|e| fail(&server, e))?;
        let started = run(
            command(&bin.join("pg_ctl"), &dir, run_as.as_ref())
                .arg("start")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "120", "-o"])
                .arg(format!("-p {port}")),
            "pg_ctl start",
        );
        match started {
            Ok(()) => {
                let server = Server { port, ..server };
                check_connect(&server).map_err(|e| fail(&server, e))?;
                return Ok(server);
            }
            Err(e) => {
                let log_text = std::fs::read_to_string(&log).unwrap_or_default();
                last_error = format!("{e}\nserver log:\n{log_text}");
                if !log_text.contains("could not bind") && !log_text.contains("in use") {
                    break;
                }
            }
        }
    }
    Err(fail(&server, last_error))
}

/// Appended to the cluster's postgresql.conf.
const CONF: &str = "
# merge-sync test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 32MB
max_wal_size = 1GB
";

/// `sh -c WATCHDOG pg_ctl data dir`: waits for EOF on stdin (the test process closed it or
/// died), then stops the server and deletes its directory.
const WATCHDOG: &str =
    r#"cat >/dev/null; "$0" stop -D "$1" -m immediate -w -t 60 >/dev/null 2>&1; rm -rf "$2""#;

fn check_connect(server: &Server) -> Result<(), String> {
    let mut client =
        postgres::Client::connect(&server.url(SUPERUSER), postgres::NoTls).map_err(|e| {
            format!(
                "connecting to the new server on port {}: {}",
                server.port,
                detail(&e)
            )
        })?;
    client
        .simple_query("SELECT 1")
        .map_err(|e| format!("querying the new server: {}", detail(&e)))?;
    Ok(())
}

/// The client error with its cause: `postgres::Error` alone displays as "db error".
fn detail(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The directory holding initdb, pg_ctl and postgres: `$MERGE_SYNC_TEST_PG_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin` (Debian), else wherever `pg_ctl` on `PATH` really lives.
fn find_bin_dir() -> Result<PathBuf, String> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "{BIN_DIR_ENV}={} does not hold initdb, pg_ctl and postgres",
                dir.display()
            ))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let pg_ctl = dir.join("pg_ctl");
        if let Ok(real) = pg_ctl.canonicalize() {
            if let Some(real_dir) = real.parent() {
                if complete(real_dir) {
                    return Ok(real_dir.to_path_buf());
                }
            }
        }
    }
    Err("no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH)".into())
}

/// PostgreSQL refuses to run as root: then use the `postgres` system user, else `nobody`.
fn unprivileged_user() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let cname = CString::new(name).expect("no NUL");
        // SAFETY: getpwnam returns NULL or a pointer to a static record we only read at once;
        // tests start the cluster once, under a OnceLock.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null record from getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            if uid != 0 {
                return Ok(Some(RunAs { uid, gid }));
            }
        }
    }
    Err(
        "running as root, and neither a `postgres` nor a `nobody` user exists to run the \
         server as"
            .into(),
    )
}

fn prepare_dir(dir: &Path, run_as: Option<&RunAs>) -> Result<(), String> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .and_then(|()| chown(dir, run_as))
        .map_err(|e| format!("preparing {}: {e}", dir.display()))
}

fn chown(path: &Path, run_as: Option<&RunAs>) -> std::io::Result<()> {
    match run_as {
        Some(u) => std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)),
        None => Ok(()),
    }
}

/// A command for one of the server programs: run as `run_as`, in `dir`, with no `PG*`
/// variables from the developer's environment.
fn command(program: &Path, dir: &Path, run_as: Option<&RunAs>) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            c.env_remove(key);
        }
    }
    c.env("LC_ALL", "C");
    if let Some(u) = run_as {
        // std drops supplementary groups when a root parent sets the uid.
        c.gid(u.gid).uid(u.uid);
    }
    c
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    #[test]
    fn each_test_gets_its_own_empty_database() {
        let a = database();
        let b = database();
        assert_ne!(a.name(), b.name());
        let mut ca = a.connect();
        let mut cb = b.connect();
        let current: String = ca
            .query_one("SELECT current_database()", &[])
            .unwrap()
            .get(0);
        assert_eq!(current, a.name());
        let tables = |c: &mut postgres::Client| -> i64 {
            c.query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
            )
            .unwrap()
            .get(0)
        };
        assert_eq!(tables(&mut ca), 0, "a new database is empty");
        ca.batch_execute("CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)")
            .unwrap();
        assert_eq!(tables(&mut ca), 1);
        assert_eq!(tables(&mut cb), 0, "another test's table is not visible");
    }

    #[test]
    fn server_listens_on_loopback_only_and_wants_a_password() {
        let db = database();
        let mut c = db.connect();
        let show = |c: &mut postgres::Client, what: &str| -> String {
            c.query_one(&format!("SHOW {what}"), &[]).unwrap().get(0)
        };
        assert_eq!(show(&mut c, "listen_addresses"), "127.0.0.1");
        assert_eq!(show(&mut c, "unix_socket_directories"), "");
        let data_dir = show(&mut c, "data_directory");
        assert!(
            Path::new(&data_dir).starts_with(server().dir()),
            "{data_dir}"
        );
        let wrong = format!(
            "postgres://postgres:wrong@127.0.0.1:{}/{}",
            server().port(),
            db.name()
        );
        let err = postgres::Client::connect(&wrong, postgres::NoTls)
            .err()
            .expect("a wrong password is refused");
        assert_eq!(
            err.code(),
            Some(&postgres::error::SqlState::INVALID_PASSWORD),
            "{err:?}"
        );
    }

    const CHILD_ENV: &str = "MERGE_SYNC_TEST_PG_HARNESS_CHILD";

    /// Runs `test` in a new test process with `CHILD_ENV=role`; returns it and the cluster
    /// directory and port it reported.
    fn spawn_child(test: &str, role: &str) -> (Child, PathBuf, u16) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .by_ref()
            .map(|l| l.unwrap())
            .find_map(|l| l.split_once("CLUSTER ").map(|(_, rest)| rest.to_string()))
            .expect("the child reports its cluster");
        // Keep draining so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut parts = line.split(' ');
        let dir = PathBuf::from(parts.next().unwrap());
        let port = parts.next().unwrap().parse().unwrap();
        (child, dir, port)
    }

    /// The child's side: start the cluster, report it, then exit or wait to be killed.
    fn child_role(role: &str) {
        let db = database();
        db.connect();
        let mut out = std::io::stdout();
        writeln!(
            out,
            "CLUSTER {} {}",
            server().dir().display(),
            server().port()
        )
        .unwrap();
        out.flush().unwrap();
        if role == "kill" {
            std::thread::sleep(Duration::from_secs(120));
        }
    }

    fn refuses_connections(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    }

    #[test]
    fn cluster_is_deleted_when_the_test_process_exits() {
        if let Ok(role) = std::env::var(CHILD_ENV) {
            return child_role(&role);
        }
        let (mut child, dir, port) = spawn_child(
            "testing::postgres::tests::cluster_is_deleted_when_the_test_process_exits",
            "exit",
        );
        assert!(child.wait().unwrap().success());
        // The exit hook waits for the clean-up, so it is done when the process is gone.
        assert!(!dir.exists(), "{} still exists", dir.display());
        assert!(refuses_connections(port), "server still up on port {port}");
    }

    #[test]
    fn cluster_is_deleted_when_the_test_process_is_killed() {
        if let Ok(role) = std::env::var(CHILD_ENV) {
            return child_role(&role);
        }
        let (mut child, dir, port) = spawn_child(
            "testing::postgres::tests::cluster_is_deleted_when_the_test_process_is_killed",
            "kill",
        );
        assert!(dir.join("data").exists());
        assert!(!refuses_connections(port), "the child's server is up");
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while dir.exists() || !refuses_connections(port) {
            assert!(
                Instant::now() < deadline,
                "the watchdog did not stop the server and delete {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
