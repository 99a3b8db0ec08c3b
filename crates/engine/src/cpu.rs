//! The CPU clock of one call.
//!
//! Threat: a guest escapes the CPU deadline by making the host believe it is waiting. Counting
//! "wall time minus time a request was in flight" let a guest open a request, never finish its
//! body, and compute for the whole wall-clock timeout.
//!
//! Rule: a call's CPU time is the time its future spends being polled: the guest's own
//! computation and the host work it runs synchronously. Whenever the guest waits on a pollable
//! (an HTTP response, a body, a clock) its fiber is suspended and the future is pending, so
//! that time is not counted, whatever requests are open meanwhile. Waiting is bounded by the
//! wall-clock timeout, and an outgoing body the guest never finishes by the outbound module's
//! body timeout.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Time the call's future has spent being polled.
#[derive(Debug, Default)]
pub struct CpuClock {
    inner: Mutex<Slices>,
}

#[derive(Debug, Default)]
struct Slices {
    /// Time of the finished polls.
    total: Duration,
    /// When the poll under way started.
    current: Option<Instant>,
}

impl CpuClock {
    /// CPU time used so far, including the poll under way.
    pub fn used(&self) -> Duration {
        let slices = self.lock();
        slices.total + slices.current.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// Runs `fut`, counting the time spent inside its polls.
    pub async fn meter<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        std::future::poll_fn(|cx| {
            self.lock().current = Some(Instant::now());
            let poll = fut.as_mut().poll(cx);
            let mut slices = self.lock();
            if let Some(started) = slices.current.take() {
                slices.total += started.elapsed();
            }
            poll
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slices> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_inside_polls_is_counted() {
        let clock = CpuClock::default();
        let busy = Duration::from_millis(20);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(clock.meter(async {
            let started = Instant::now();
            while started.elapsed() < busy {
                std::hint::spin_loop();
            }
        }));
        assert!(clock.used() >= busy);
    }
}
