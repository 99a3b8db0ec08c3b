//! The host memory one call may hold outside its linear memory.
//!
//! Threat: the memory cap counts only the guest's linear memories. What the host keeps on the
//! guest's behalf lives outside them: request bodies buffered before sending, response bodies
//! read in full and waiting in the guest's resource table until it reads or drops them, header
//! maps, and the table's entries. A guest that opens many requests and never reads the
//! answers, or builds header maps in a loop, could make one call hold gigabytes of the
//! multi-tenant host's memory.
//!
//! Rule: every call has a budget.
//! - Body bytes the host buffers for the call are reserved against
//!   [`OutboundLimits::max_buffered_bytes`] as they arrive and released only when the host
//!   drops its last reference to them; a body that would cross the budget is refused and the
//!   call ends with [`super::Limit::HostBuffers`].
//! - A request body the guest does not finish within
//!   [`OutboundLimits::request_body_timeout`] fails the request, so an open request cannot
//!   hold its buffer (or the guest's wall clock) indefinitely.
//! - Live resources are capped by the resource table's capacity and each header map the guest
//!   builds by the field size limit (both set by the engine per call), so header memory is
//!   bounded by their product; a full table ends the call with [`super::Limit::Resources`].
//!
//! [`OutboundLimits::max_buffered_bytes`]: super::outbound::OutboundLimits::max_buffered_bytes
//! [`OutboundLimits::request_body_timeout`]: super::outbound::OutboundLimits::request_body_timeout

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The body bytes one call's host side may buffer at once.
#[derive(Debug)]
pub struct BufferBudget {
    cap: usize,
    held: AtomicUsize,
    exceeded: Mutex<Option<BudgetExceeded>>,
}

/// A reservation the budget refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("buffered bodies would reach {requested} bytes, over the call's budget of {cap} bytes")]
pub struct BudgetExceeded {
    /// The bytes the call would have held.
    pub requested: usize,
    /// The budget.
    pub cap: usize,
}

impl BufferBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            held: AtomicUsize::new(0),
            exceeded: Mutex::new(None),
        })
    }

    /// An empty reservation against this budget.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes reserved now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// The first reservation this budget refused, if any.
    pub fn exceeded(&self) -> Option<BudgetExceeded> {
        self.exceeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refuse(&self, requested: usize) -> BudgetExceeded {
        let refused = BudgetExceeded {
            requested,
            cap: self.cap,
        };
        self.exceeded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(refused.clone());
        refused
    }
}

/// Bytes reserved against a [`BufferBudget`], released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BufferBudget>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `n` more bytes, or refuses (and records the refusal) when the budget would be
    /// crossed.
    pub fn grow(&mut self, n: usize) -> Result<(), BudgetExceeded> {
        let held = &self.budget.held;
        let mut current = held.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(n);
            if next > self.budget.cap {
                return Err(self.budget.refuse(next));
            }
            match held.compare_exchange_weak(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.bytes += n;
        Ok(())
    }

    /// `data` as [`Bytes`] that keep this reservation until their last clone is dropped.
    pub fn into_bytes(self, data: Vec<u8>) -> Bytes {
        Bytes::from_owner(Held {
            data,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Buffered bytes and the reservation that counts them.
struct Held {
    data: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// Why a request body could not be buffered.
#[derive(Debug)]
pub enum BodyRefused {
    /// Over the per-request cap.
    TooLarge,
    /// Over the call's budget.
    Budget(BudgetExceeded),
    /// Not finished in time.
    Unfinished,
    /// The body stream failed.
    Failed(HttpError),
}

/// Reads the body a guest streams, up to `cap` bytes and within `within`, reserving every
/// byte against `budget`.
pub async fn collect_body(
    mut body: WasiBody,
    cap: usize,
    within: Duration,
    budget: &Arc<BufferBudget>,
) -> Result<Bytes, BodyRefused> {
    let mut reservation = budget.reservation();
    let mut data = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BodyRefused::Failed)?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if data.len() + chunk.len() > cap {
                return Err(BodyRefused::TooLarge);
            }
            reservation.grow(chunk.len()).map_err(BodyRefused::Budget)?;
            data.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| BodyRefused::Unfinished)??;
    Ok(reservation.into_bytes(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_hold_their_reservation_until_the_last_clone_is_dropped() {
        let budget = BufferBudget::new(100);
        let mut first = budget.reservation();
        first.grow(60).unwrap();
        let bytes = first.into_bytes(vec![0; 60]);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(budget.held(), 60);
        assert!(budget.reservation().grow(41).is_err());
        assert_eq!(budget.exceeded().map(|e| e.requested), Some(101));
        drop(slice);
        assert_eq!(budget.held(), 0);
        assert!(budget.reservation().grow(100).is_ok());
    }
}
