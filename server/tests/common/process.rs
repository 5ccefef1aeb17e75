//! Real `inlet` processes in tests: the binary, a guard that kills a process however the test
//! ends, and free ports on 127.0.0.1.

use std::net::TcpListener;
use std::process::Child;

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
