//! TCP slow start: how much a connection may have in flight before the client's
//! acknowledgements come back.
//!
//! A real connection does not send at the link's rate from its first byte. It starts with an
//! initial window of ten segments (RFC 6928, [`INITIAL_WINDOW`]) and, while nothing is lost,
//! doubles the window each round trip in which it filled it (slow start, RFC 5681 §3.1) until
//! the window covers the path's bandwidth-delay product, from where the link's rate is the
//! limit. So a fresh connection needs several round trips to carry a large answer, and a
//! kept-alive one whose window is already open does not. A connection that sent nothing for a
//! retransmission timeout starts again from the initial window (RFC 5681 §4.1; Linux's
//! `tcp_slow_start_after_idle`, on by default), with the timeout taken as Linux computes it
//! for a steady path: the round trip plus `TCP_RTO_MIN` ([`RTO_MIN`], 200 ms).
//!
//! The model counts rounds: a round starts with the first byte sent after the previous round
//! ended and lasts one round trip; within it at most the window leaves. A round that filled
//! the window doubles it for the next one; a round the application left unfilled keeps it (a
//! sender that is not window-limited does not grow its window, RFC 7661). Losses,
//! delayed acknowledgements and congestion avoidance past the bandwidth-delay product are not
//! modelled: at that point the rate alone decides.

use std::time::Duration;

use tokio::time::Instant;

/// The sender's maximum segment size on an Ethernet path (1,500-byte MTU less the IPv4 and
/// TCP headers).
pub const MSS: u64 = 1460;

/// The initial congestion window: ten segments (RFC 6928).
pub const INITIAL_WINDOW: u64 = 10 * MSS;

/// The lower bound Linux puts on the retransmission timeout (`TCP_RTO_MIN`).
pub const RTO_MIN: Duration = Duration::from_millis(200);

/// What the window lets a write do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// Send at most this many bytes now.
    Send(u64),
    /// The window is full: nothing leaves before this instant (the round's acknowledgements).
    WaitUntil(Instant),
}

/// The congestion window of one connection's sending side.
#[derive(Debug, Clone)]
pub struct CongestionWindow {
    /// Bytes allowed in flight in one round.
    window: u64,
    /// When the current round's first byte left; `None` before any or after an idle restart.
    round_started: Option<Instant>,
    /// Bytes sent in the current round.
    round_sent: u64,
    /// When the last byte left.
    last_sent: Option<Instant>,
}

impl Default for CongestionWindow {
    fn default() -> Self {
        CongestionWindow {
            window: INITIAL_WINDOW,
            round_started: None,
            round_sent: 0,
            last_sent: None,
        }
    }
}

/// The retransmission timeout after which an idle connection restarts slow start.
pub fn idle_restart_after(rtt: Duration) -> Duration {
    rtt + RTO_MIN
}

/// The bandwidth-delay product in bytes: what the path holds in one round trip.
pub fn bandwidth_delay_bytes(bytes_per_second: f64, rtt: Duration) -> u64 {
    (bytes_per_second * rtt.as_secs_f64()).ceil() as u64
}

impl CongestionWindow {
    /// The current window, in bytes.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// How many of `wanted` bytes may leave at `now` on a path of round trip `rtt` whose
    /// bandwidth-delay product is `full_window` bytes (`None`: the rate is uncapped).
    pub fn allowance(
        &mut self,
        now: Instant,
        rtt: Duration,
        full_window: Option<u64>,
        wanted: u64,
    ) -> Allowance {
        if rtt.is_zero() {
            return Allowance::Send(wanted);
        }
        if self
            .last_sent
            .is_some_and(|last| now.saturating_duration_since(last) > idle_restart_after(rtt))
        {
            self.window = self.window.min(INITIAL_WINDOW);
            self.round_started = None;
        }
        match self.round_started {
            Some(started) if now < started + rtt => {}
            Some(_) => self.next_round(now, full_window),
            None => self.start_round(now),
        }
        if full_window.is_some_and(|full| self.window >= full) {
            return Allowance::Send(wanted);
        }
        let left = self.window.saturating_sub(self.round_sent);
        match (left, self.round_started) {
            (0, Some(started)) => Allowance::WaitUntil(started + rtt),
            _ => Allowance::Send(wanted.min(left)),
        }
    }

    /// Records `bytes` sent at `now`.
    pub fn sent(&mut self, now: Instant, bytes: u64) {
        if bytes == 0 {
            return;
        }
        if self.round_started.is_none() {
            self.start_round(now);
        }
        self.round_sent += bytes;
        self.last_sent = Some(now);
    }

    fn start_round(&mut self, now: Instant) {
        self.round_started = Some(now);
        self.round_sent = 0;
    }

    /// Ends the round: a window the round filled doubles, up to the bandwidth-delay product.
    fn next_round(&mut self, now: Instant, full_window: Option<u64>) {
        if self.round_sent >= self.window {
            let doubled = self.window.saturating_mul(2);
            self.window = match full_window {
                Some(full) => doubled.min(full.max(INITIAL_WINDOW)),
                None => doubled,
            };
        }
        self.start_round(now);
    }
}

/// How long `bytes` take to leave a fresh connection under the model, sent as fast as the
/// window allows and otherwise at `bytes_per_second`: whole round trips while the window is
/// below the bandwidth-delay product, then the rest at the rate. (The arithmetic the model
/// implies, for tests and for the bench's ceiling.)
pub fn fresh_transfer_time(bytes: u64, bytes_per_second: f64, rtt: Duration) -> Duration {
    let full = bandwidth_delay_bytes(bytes_per_second, rtt);
    let mut window = INITIAL_WINDOW;
    let mut left = bytes;
    let mut elapsed = Duration::ZERO;
    while left > 0 && window < full && !rtt.is_zero() {
        let this_round = left.min(window);
        left -= this_round;
        if left == 0 {
            elapsed += Duration::from_secs_f64(this_round as f64 / bytes_per_second);
            return elapsed;
        }
        elapsed += rtt;
        window = (window * 2).min(full);
    }
    elapsed + Duration::from_secs_f64(left as f64 / bytes_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(50);
    /// 100 Mbit/s.
    const RATE: f64 = 12_500_000.0;

    /// Sends `total` bytes as fast as the window allows, starting at `start`; returns when
    /// the last byte left and the window then.
    fn send_all(
        cw: &mut CongestionWindow,
        start: Instant,
        total: u64,
        full: Option<u64>,
    ) -> (Instant, u64) {
        let mut now = start;
        let mut left = total;
        while left > 0 {
            match cw.allowance(now, RTT, full, left) {
                Allowance::Send(n) => {
                    assert!(n > 0, "a send allowance is never empty");
                    cw.sent(now, n);
                    left -= n;
                }
                Allowance::WaitUntil(at) => {
                    assert!(at > now, "a wait ends in the future");
                    now = at;
                }
            }
        }
        (now, cw.window())
    }

    #[test]
    fn the_initial_window_is_ten_segments_then_it_doubles_each_full_round() {
        let mut cw = CongestionWindow::default();
        let t0 = Instant::now();
        assert_eq!(
            cw.allowance(t0, RTT, None, 1 << 20),
            Allowance::Send(14_600)
        );
        cw.sent(t0, 14_600);
        assert_eq!(
            cw.allowance(t0, RTT, None, 1),
            Allowance::WaitUntil(t0 + RTT)
        );
        let t1 = t0 + RTT;
        assert_eq!(
            cw.allowance(t1, RTT, None, 1 << 20),
            Allowance::Send(29_200)
        );
        cw.sent(t1, 29_200);
        let t2 = t1 + RTT;
        assert_eq!(
            cw.allowance(t2, RTT, None, 1 << 20),
            Allowance::Send(58_400)
        );
    }

    #[test]
    fn a_fresh_connection_needs_round_trips_a_warm_one_does_not() {
        let full = bandwidth_delay_bytes(RATE, RTT);
        assert_eq!(full, 625_000);
        // 1.86 MB (a 2,000-record page, uncompressed): 14.6 + 29.2 + 58.4 + 116.8 + 233.6 +
        // 467.2 KB in six rounds, then the window (625 KB) no longer limits.
        let mut cw = CongestionWindow::default();
        let t0 = Instant::now();
        let (done, window) = send_all(&mut cw, t0, 1_860_000, Some(full));
        assert_eq!(done - t0, RTT * 6);
        assert_eq!(window, full);
        // The same connection, 100 ms later (under the idle timeout), sends at once.
        let later = done + Duration::from_millis(100);
        assert_eq!(
            cw.allowance(later, RTT, Some(full), 1_860_000),
            Allowance::Send(1_860_000)
        );
        let fresh = fresh_transfer_time(1_860_000, RATE, RTT);
        // Six round trips plus the 940 KB left at 12.5 MB/s.
        assert_eq!(fresh.as_millis(), 300 + 75);
    }

    #[test]
    fn an_idle_connection_restarts_from_the_initial_window() {
        let full = Some(bandwidth_delay_bytes(RATE, RTT));
        let mut cw = CongestionWindow::default();
        let t0 = Instant::now();
        let (done, window) = send_all(&mut cw, t0, 2_000_000, full);
        assert_eq!(window, 625_000);
        // Idle for exactly the timeout: still open. Longer: back to ten segments.
        let at_timeout = done + idle_restart_after(RTT);
        assert_eq!(
            cw.clone().allowance(at_timeout, RTT, full, 700_000),
            Allowance::Send(700_000)
        );
        let after = at_timeout + Duration::from_millis(1);
        assert_eq!(
            cw.allowance(after, RTT, full, 700_000),
            Allowance::Send(INITIAL_WINDOW)
        );
        assert_eq!(idle_restart_after(RTT), Duration::from_millis(250));
    }

    #[test]
    fn a_round_the_sender_left_unfilled_does_not_grow_the_window() {
        let mut cw = CongestionWindow::default();
        let t0 = Instant::now();
        cw.sent(t0, 1_000);
        let t1 = t0 + RTT;
        assert_eq!(
            cw.allowance(t1, RTT, None, 1 << 20),
            Allowance::Send(INITIAL_WINDOW)
        );
    }

    #[test]
    fn no_round_trip_means_no_window() {
        let mut cw = CongestionWindow::default();
        let t0 = Instant::now();
        assert_eq!(
            cw.allowance(t0, Duration::ZERO, None, 5 << 20),
            Allowance::Send(5 << 20)
        );
    }
}
