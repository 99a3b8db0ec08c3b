//! Span timings for the WAN breakdown: where a page's time goes.
//!
//! The engine, the runner and the emulator open `debug` spans around the steps of a page (the
//! connector call, the outbound request and its body, the inflation, the commit, the
//! emulator's answer, the query and JSON inside it, and its gzip); nothing records them unless a subscriber asks. The bench
//! installs [`SpanTimes`], which keeps, per span name, how many closed, their wall time (open
//! to close) and their busy time (time entered: for a future, the time it was being polled,
//! i.e. the CPU work done in it, plus any time the OS took the core away).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The spans the breakdown reads; no other span or event reaches the layer.
pub const TIMED: &[&str] = &[
    "connector_call",
    "outbound_request",
    "outbound_body",
    "inflate",
    "commit_page",
    "commit_wait",
    "emulator_answer",
    "emulator_query",
    "emulator_gzip",
];

/// What the closed spans of one name took together.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Spans closed.
    pub count: u64,
    /// Sum of open-to-close times.
    pub wall: Duration,
    /// Sum of entered times.
    pub busy: Duration,
}

/// Totals per span name, shared with the installed layer.
#[derive(Debug, Default, Clone)]
pub struct SpanTimes {
    totals: Arc<Mutex<BTreeMap<&'static str, Totals>>>,
}

/// The timing of one open span.
struct Open {
    opened: Instant,
    busy: Duration,
    entered: Option<Instant>,
    depth: u32,
}

impl SpanTimes {
    /// Installs a layer that times the [`TIMED`] spans, as the process's subscriber.
    pub fn install() -> anyhow::Result<Self> {
        let times = SpanTimes::default();
        let filter = tracing_subscriber::filter::filter_fn(|meta: &Metadata<'_>| {
            meta.is_span() && TIMED.contains(&meta.name())
        });
        tracing_subscriber::registry()
            .with(times.clone().with_filter(filter))
            .try_init()
            .map_err(|e| anyhow::anyhow!("installing the span timer: {e}"))?;
        Ok(times)
    }

    /// The totals so far, per span name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, Totals> {
        self.totals.lock().expect("span totals").clone()
    }

    /// What closed between two snapshots.
    pub fn since(
        before: &BTreeMap<&'static str, Totals>,
        after: &BTreeMap<&'static str, Totals>,
    ) -> BTreeMap<&'static str, Totals> {
        after
            .iter()
            .map(|(name, a)| {
                let b = before.get(name).copied().unwrap_or_default();
                let delta = Totals {
                    count: a.count - b.count,
                    wall: a.wall.saturating_sub(b.wall),
                    busy: a.busy.saturating_sub(b.busy),
                };
                (*name, delta)
            })
            .collect()
    }
}

impl<S> Layer<S> for SpanTimes
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Open {
                opened: Instant::now(),
                busy: Duration::ZERO,
                entered: None,
                depth: 0,
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(open) = extensions.get_mut::<Open>() {
            if open.depth == 0 {
                open.entered = Some(Instant::now());
            }
            open.depth += 1;
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(open) = extensions.get_mut::<Open>() {
            open.depth = open.depth.saturating_sub(1);
            if open.depth == 0
                && let Some(entered) = open.entered.take()
            {
                open.busy += entered.elapsed();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let name = span.name();
        let extensions = span.extensions();
        let Some(open) = extensions.get::<Open>() else {
            return;
        };
        let mut totals = self.totals.lock().expect("span totals");
        let entry = totals.entry(name).or_default();
        entry.count += 1;
        entry.wall += open.opened.elapsed();
        entry.busy += open.busy;
    }
}
