//! The event trace of a run: one line per event, stamped with simulated time, and a digest
//! over all of them. Two runs of one seed must give the same lines, hence the same digest.

use std::sync::{Arc, Mutex};

use crate::clock::SimClock;
use crate::rng::Fnv;

#[derive(Debug)]
pub struct Trace {
    clock: Arc<SimClock>,
    echo: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<String>,
    digest: Fnv,
}

impl Trace {
    pub fn new(clock: Arc<SimClock>, echo: bool) -> Self {
        Self {
            clock,
            echo,
            state: Mutex::default(),
        }
    }

    /// Records one event.
    pub fn event(&self, text: impl AsRef<str>) {
        let elapsed = self.clock.elapsed();
        let line = format!(
            "{:>6}.{:03}ms {}",
            elapsed.as_millis(),
            elapsed.subsec_micros() % 1000,
            text.as_ref()
        );
        if self.echo {
            eprintln!("{line}");
        }
        let mut state = self.state.lock().expect("trace lock poisoned");
        state.digest.write(line.as_bytes());
        state.digest.write(b"\n");
        state.lines.push(line);
    }

    pub fn digest(&self) -> u64 {
        self.state
            .lock()
            .expect("trace lock poisoned")
            .digest
            .finish()
    }

    pub fn lines(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("trace lock poisoned")
            .lines
            .clone()
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("trace lock poisoned").lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
