//! The WAN profile: what a request costs on a network rather than on loopback.
//!
//! Against a real org, time goes to handshakes on each new connection, a round trip per
//! request and bytes through a link of finite rate; on loopback all three are free, so a
//! client that reuses connections or compresses looks no faster than one that does not. The
//! emulator charges them in the connection layer, so only what a client does on the wire
//! changes what it pays:
//! - a new connection waits [`TCP_HANDSHAKE_ROUND_TRIPS`] round trips before its first byte
//!   is read, plus [`tls_round_trips`] after a TLS handshake (see [`crate::serve`]);
//! - [`Exchanges`]: each response starts one round trip after the request that it answers
//!   arrived (half a round trip for the request to travel, half for the response); on HTTP/2
//!   each stream waits its own round trip (see [`crate::serve`]);
//! - [`Throttled`]: bytes leave each connection at most at the `mbps` rate, counted below
//!   TLS, so they are the bytes on the wire (a gzip body costs its compressed size).
//!
//! - TCP slow start ([`crate::slow_start`]): a new connection, or one idle for a
//!   retransmission timeout, sends a growing window per round trip until the window covers
//!   the bandwidth-delay product (setting `slow_start`, on by default).
//!
//! Not modelled: loss, congestion avoidance, and request upload time (requests are small).
//!
//! Both knobs are [`crate::Settings`] (`rtt_ms`, `mbps`), read when a connection opens
//! (handshake), when a response starts (round trip) and for each chunk written (rate), so
//! changing them takes effect on open connections too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustls::{HandshakeKind, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::slow_start::{self, Allowance, CongestionWindow};
use crate::state::Shared;

/// Round trips before a client's first request byte can leave: SYN, SYN-ACK (the client
/// sends its data with the final ACK).
pub const TCP_HANDSHAKE_ROUND_TRIPS: u32 = 1;

/// The lowest link rate accepted besides 0 (off): one kilobit per second, at which a burst
/// already takes seconds. Lower rates would stall connections for hours.
pub const MIN_MBPS: f64 = 0.001;

/// Whether `mbps` is a rate the profile accepts: 0 (uncapped) or at least [`MIN_MBPS`].
pub fn valid_mbps(mbps: f64) -> bool {
    mbps == 0.0 || (mbps.is_finite() && mbps >= MIN_MBPS)
}

/// The round-trip time now set (`rtt_ms`); zero when off.
pub fn rtt(state: &Shared) -> Duration {
    Duration::from_millis(state.settings.read().expect("settings lock").rtt_ms)
}

/// The link rate now set (`mbps`), in bytes per second; `None` when uncapped.
pub fn bytes_per_second(state: &Shared) -> Option<f64> {
    let mbps = state.settings.read().expect("settings lock").mbps;
    (mbps > 0.0).then_some(mbps * 1_000_000.0 / 8.0)
}

/// Round trips a finished TLS handshake cost the client before it could send its request:
/// TLS 1.3 needs one (two when the server asked for another key share), TLS 1.2 two for a
/// full handshake and one when resuming a session.
pub fn tls_round_trips(version: Option<ProtocolVersion>, kind: Option<HandshakeKind>) -> u32 {
    match (version, kind) {
        (Some(ProtocolVersion::TLSv1_3), Some(HandshakeKind::FullWithHelloRetryRequest)) => 2,
        (Some(ProtocolVersion::TLSv1_3), _) => 1,
        (_, Some(HandshakeKind::Resumed)) => 1,
        _ => 2,
    }
}

/// Waits `round_trips` round trips of the current setting (no wait when it is zero).
pub async fn pay_round_trips(state: &Shared, round_trips: u32) {
    let wait = rtt(state) * round_trips;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// A connection on which each response pays one round trip: the first byte written after
/// request bytes were read waits `rtt_ms`. Sits above TLS, where reads and writes are HTTP.
pub struct Exchanges<S> {
    inner: S,
    state: Arc<Shared>,
    /// Request bytes arrived since the last response byte left.
    answering: bool,
    /// The round trip the pending response is waiting out.
    round_trip: Option<Pin<Box<Sleep>>>,
}

impl<S> Exchanges<S> {
    /// Wraps `inner`, reading `rtt_ms` from `state` for each response.
    pub fn new(inner: S, state: Arc<Shared>) -> Self {
        Exchanges {
            inner,
            state,
            answering: false,
            round_trip: None,
        }
    }

    /// Ready once the response may start.
    fn poll_round_trip(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.answering {
            return Poll::Ready(());
        }
        if self.round_trip.is_none() {
            let rtt = rtt(&self.state);
            if rtt.is_zero() {
                self.answering = false;
                return Poll::Ready(());
            }
            self.round_trip = Some(Box::pin(tokio::time::sleep(rtt)));
        }
        if let Some(wait) = self.round_trip.as_mut() {
            ready!(wait.as_mut().poll(cx));
        }
        self.round_trip = None;
        self.answering = false;
        Poll::Ready(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Exchanges<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.answering = true;
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Exchanges<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_round_trip(cx));
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Bytes the link may send at once: about 10 ms of transmission, at least one TCP segment
/// and at most 64 KiB, so pacing stays smooth at any rate.
fn burst_bytes(bytes_per_second: f64) -> usize {
    (bytes_per_second / 100.0).clamp(1460.0, 65_536.0) as usize
}

fn transmit_time(bytes: usize, bytes_per_second: f64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / bytes_per_second)
}

/// Bytes granted to one write, and when the link has finished sending them.
struct Grant {
    bytes: usize,
    /// The most this write may carry: what the congestion window allowed.
    most: usize,
    bytes_per_second: f64,
    /// When the link has sent the granted bytes.
    due: Instant,
    sent: Pin<Box<Sleep>>,
}

/// The longest pause between two writes that still counts as one continuous send: what a
/// kernel's socket buffer covers without the link going idle (2 ms is 25 KB at 100 Mbit/s).
const CONTINUOUS_GAP: Duration = Duration::from_millis(2);

/// When the link starts on a write asked for at `now`: where it left off when the writer
/// came straight back (within [`CONTINUOUS_GAP`] of its last write), so a timer's rounding
/// and a late wake-up between TLS records or HTTP/2 frames are not lost link time; else, after
/// an idle link, `now`. Never before `link_free`, so B bytes still take at least B / rate.
fn link_start(link_free: Instant, now: Instant, last_write: Instant) -> Instant {
    match now.saturating_duration_since(last_write) <= CONTINUOUS_GAP {
        true => link_free,
        false => link_free.max(now),
    }
}

/// Bytes the link would have sent in `late` at `bytes_per_second`: the data was waiting in
/// the connection all along, so time the emulator's task waited for a core (its CPU competes
/// with the client's on one machine) is not link time lost, as it is not on a real network,
/// where the kernel keeps sending while the process is descheduled.
fn caught_up_bytes(late: Duration, bytes_per_second: f64) -> usize {
    (late.as_secs_f64() * bytes_per_second) as usize
}

/// A connection whose writes leave at most at the `mbps` rate: a token bucket holding one
/// burst, which idle time does not refill beyond. A write is let through once the link would
/// have finished sending it, so the last byte of B bytes arrives no sooner than B / rate
/// after the first began. With `slow_start` on (and a round trip set), the connection's
/// congestion window ([`CongestionWindow`]) also bounds what leaves per round trip.
pub struct Throttled<S> {
    inner: S,
    state: Arc<Shared>,
    /// When the link has sent everything granted so far.
    link_free: Instant,
    /// When the last paced write went out.
    last_write: Instant,
    grant: Option<Grant>,
    window: CongestionWindow,
    /// The wait for a full window's acknowledgements.
    window_wait: Option<Pin<Box<Sleep>>>,
}

impl<S> Throttled<S> {
    /// Wraps `inner`, reading `mbps` from `state` for each burst.
    pub fn new(inner: S, state: Arc<Shared>) -> Self {
        Throttled {
            inner,
            state,
            link_free: Instant::now(),
            last_write: Instant::now(),
            grant: None,
            window: CongestionWindow::default(),
            window_wait: None,
        }
    }

    /// How many of `wanted` bytes the congestion window lets leave now; pending while it is
    /// full.
    fn poll_window(&mut self, cx: &mut Context<'_>, wanted: usize) -> Poll<usize> {
        loop {
            if let Some(wait) = self.window_wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.window_wait = None;
            }
            let (rtt, rate, on) = {
                let settings = self.state.settings.read().expect("settings lock");
                let rate = (settings.mbps > 0.0).then_some(settings.mbps * 1_000_000.0 / 8.0);
                (
                    Duration::from_millis(settings.rtt_ms),
                    rate,
                    settings.slow_start,
                )
            };
            if !on {
                return Poll::Ready(wanted);
            }
            let full = rate.map(|rate| slow_start::bandwidth_delay_bytes(rate, rtt));
            match self
                .window
                .allowance(Instant::now(), rtt, full, wanted as u64)
            {
                Allowance::Send(bytes) => return Poll::Ready(bytes as usize),
                Allowance::WaitUntil(at) => {
                    self.window_wait = Some(Box::pin(tokio::time::sleep_until(at)));
                }
            }
        }
    }

    /// Reserves link time for the next burst of `wanted` bytes; `false` when uncapped.
    fn reserve(&mut self, wanted: usize) -> bool {
        let Some(bytes_per_second) = bytes_per_second(&self.state) else {
            return false;
        };
        let bytes = wanted.min(burst_bytes(bytes_per_second));
        let start = link_start(self.link_free, Instant::now(), self.last_write);
        self.link_free = start + transmit_time(bytes, bytes_per_second);
        self.grant = Some(Grant {
            bytes,
            most: wanted,
            bytes_per_second,
            due: self.link_free,
            sent: Box::pin(tokio::time::sleep_until(self.link_free)),
        });
        true
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(this.poll_paced_write(cx, buf));
        if let Ok(sent) = &written {
            this.state.stats.lock().expect("stats lock").wire_bytes_sent += *sent as u64;
        }
        Poll::Ready(written)
    }

    /// TLS hands over its records (16 KiB each at most) as one vectored write; taking them
    /// together lets a burst carry several, where one paced write per record would add a
    /// timer's rounding and wake-up to every 16 KiB, time the link would not lose.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut gathered = Vec::new();
        for buf in bufs {
            let room = MAX_GATHERED.saturating_sub(gathered.len());
            if room == 0 {
                break;
            }
            gathered.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        self.poll_write(cx, &gathered)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The most a vectored write gathers into one paced write.
const MAX_GATHERED: usize = 256 * 1024;

impl<S: AsyncWrite + Unpin> Throttled<S> {
    /// Writes as much of `buf` as the link lets through now.
    fn poll_paced_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = ready!(self.poll_windowed_write(cx, buf));
        if let Ok(sent) = &written {
            self.window.sent(Instant::now(), *sent as u64);
        }
        Poll::Ready(written)
    }

    /// Writes as much of `buf` as the window and the rate let through now.
    fn poll_windowed_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        if self.grant.is_none() {
            let allowed = ready!(self.poll_window(cx, buf.len()));
            if !self.reserve(allowed) {
                return Pin::new(&mut self.inner).poll_write(cx, &buf[..allowed]);
            }
        }
        let grant = self.grant.as_mut().expect("a grant was reserved above");
        ready!(grant.sent.as_mut().poll(cx));
        let late = Instant::now().saturating_duration_since(grant.due);
        let allowed = (grant.bytes + caught_up_bytes(late, grant.bytes_per_second))
            .min(grant.most)
            .min(buf.len());
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..allowed]));
        let Grant {
            bytes,
            bytes_per_second,
            ..
        } = self.grant.take().expect("a grant was reserved above");
        let sent = written.as_ref().map_or(0, |n| *n);
        // The link is busy for what went out: less than reserved gives time back, more (bytes
        // caught up after a late wake) takes the time that had passed anyway.
        match sent >= bytes {
            true => self.link_free += transmit_time(sent - bytes, bytes_per_second),
            false => self.link_free -= transmit_time(bytes - sent, bytes_per_second),
        }
        self.last_write = Instant::now();
        Poll::Ready(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_13_costs_one_round_trip_and_tls_12_two() {
        let v13 = Some(ProtocolVersion::TLSv1_3);
        let v12 = Some(ProtocolVersion::TLSv1_2);
        assert_eq!(tls_round_trips(v13, Some(HandshakeKind::Full)), 1);
        assert_eq!(
            tls_round_trips(v13, Some(HandshakeKind::FullWithHelloRetryRequest)),
            2
        );
        assert_eq!(tls_round_trips(v13, Some(HandshakeKind::Resumed)), 1);
        assert_eq!(tls_round_trips(v12, Some(HandshakeKind::Full)), 2);
        assert_eq!(tls_round_trips(v12, Some(HandshakeKind::Resumed)), 1);
    }

    #[test]
    fn a_writer_back_at_once_continues_where_the_link_left_off() {
        let t0 = Instant::now();
        let link_free = t0 + Duration::from_millis(10);
        // Back 1 ms after its last write, 3 ms past the link's finish: no time lost.
        let now = link_free + Duration::from_millis(3);
        assert_eq!(
            link_start(link_free, now, now - Duration::from_millis(1)),
            link_free
        );
        // Back after a pause: the link was idle meanwhile.
        assert_eq!(
            link_start(link_free, now, now - Duration::from_millis(5)),
            now
        );
        // Never before the link is free.
        let early = t0 + Duration::from_millis(4);
        assert_eq!(link_start(link_free, early, t0), link_free);
    }

    #[test]
    fn a_late_wake_sends_what_the_link_would_have_sent_meanwhile() {
        // 100 Mbit/s: 12.5 MB/s, so 8 ms late is 100,000 bytes.
        assert_eq!(
            caught_up_bytes(Duration::from_millis(8), 12_500_000.0),
            100_000
        );
        assert_eq!(caught_up_bytes(Duration::ZERO, 12_500_000.0), 0);
    }

    #[test]
    fn bursts_are_about_ten_milliseconds_within_bounds() {
        assert_eq!(burst_bytes(1_250_000.0), 12_500);
        assert_eq!(burst_bytes(1_000.0), 1460);
        assert_eq!(burst_bytes(1e12), 65_536);
    }
}
