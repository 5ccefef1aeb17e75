//! Real `inlet` processes in tests: the binary, a guard that kills a process however the test
//! ends, free ports on 127.0.0.1, and the CLI run against a server.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `inlet` binary of this build.
pub const INLET: &str = env!("CARGO_BIN_EXE_inlet");

/// A running `inlet` process, killed (and reaped) when the guard drops.
pub struct ServerProcess(pub Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Client settings of the CLI that a test must not inherit from its environment.
const CLIENT_VARIABLES: [&str; 4] = [
    "INLET_TOKEN",
    "INLET_CA_CERT",
    "INLET_CLIENT_CERT",
    "INLET_CLIENT_KEY",
];

/// `inlet <args>` against `server` (INLET_SERVER), with `env` and no other client settings.
pub fn run_cli<S: AsRef<OsStr>>(
    server: &str,
    env: &[(&str, &str)],
    args: impl IntoIterator<Item = S>,
) -> Output {
    let mut command = Command::new(INLET);
    command.args(args).env("INLET_SERVER", server);
    for name in CLIENT_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("inlet runs")
}

/// The stdout of a CLI run that must succeed.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "inlet failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Waits until `status` (an `inlet status` run against a node) succeeds and names `owner`
/// as the index owner: the node is up and has found the owner.
// Real processes start in real time.
#[allow(clippy::disallowed_methods)]
pub fn wait_for_owner(owner: &str, status: impl Fn() -> Output) {
    let started = Instant::now();
    loop {
        let output = status();
        if output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains(&format!("owner: {owner}"))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node did not come up with the owner found: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The schema of `shop.orders`, the table the CLI cluster tests create.
pub const ORDERS_SCHEMA: &str = "id:int64 not null, item:string";

/// A JSON-lines file of `rows` orders of [`ORDERS_SCHEMA`] in `dir`, for `inlet produce`.
pub fn orders_file(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("orders.jsonl");
    let lines: Vec<String> = (0..rows)
        .map(|i| format!(r#"{{"id":{i},"item":"item-{i}"}}"#))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("orders file");
    path
}

/// `inlet serve` as a node of a test cluster on `store`: `roles` on a free port of 127.0.0.1,
/// no HTTP listener, a 2 ms linger, no compactor, its log in `logs/<name>.log`; `configure`
/// adds the test's own flags and variables. Returns the guard and the `host:port` it
/// listens on.
pub fn spawn_node(
    store: &Path,
    logs: &Path,
    name: &str,
    roles: &str,
    configure: impl FnOnce(&mut Command),
) -> (ServerProcess, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
    let mut command = Command::new(INLET);
    command
        .args(["serve", "--roles", roles, "--listen", &listen])
        .args([
            "--http-listen",
            "off",
            "--linger",
            "2ms",
            "--compactor",
            "false",
        ])
        .arg("--store")
        .arg(store)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    configure(&mut command);
    let process = command.spawn().expect("inlet serve starts");
    (ServerProcess(process), listen)
}
