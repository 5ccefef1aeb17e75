//! [`Signal`]: a value tasks wait on, waking them in a fixed order.
//!
//! tokio's `watch` channel spreads its receivers over several `Notify`s chosen with tokio's
//! own random generator, so the order in which it wakes them changes from run to run (the
//! generator can be seeded only in `tokio_unstable` builds). The simulation's own
//! coordination goes through this instead: one `Notify`, whose waiters wake in the order
//! they started waiting.

use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Signal<T> {
    value: Mutex<T>,
    changed: Notify,
}

impl<T: Clone> Signal<T> {
    pub fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            changed: Notify::new(),
        }
    }

    pub fn get(&self) -> T {
        self.value.lock().expect("signal lock poisoned").clone()
    }

    /// Replaces the value and wakes every waiter; returns the old value.
    pub fn set(&self, value: T) -> T {
        let old = std::mem::replace(
            &mut *self.value.lock().expect("signal lock poisoned"),
            value,
        );
        self.changed.notify_waiters();
        old
    }

    /// Waits until `check` returns `Some` for the current value.
    pub async fn wait_for<R>(&self, mut check: impl FnMut(&T) -> Option<R>) -> R {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change right after it still wakes us.
            notified.as_mut().enable();
            if let Some(result) = check(&self.value.lock().expect("signal lock poisoned")) {
                return result;
            }
            notified.await;
        }
    }
}
