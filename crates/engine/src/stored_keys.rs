//! The `stored-keys` host import: which keys the host holds for the stream being pulled.
//!
//! Threat: a guest could read another tenant's or another stream's records, or page through a
//! huge table to hold the host's database. Rule: the answer is bound to the integration (by the
//! [`KeySource`] the caller puts in the call context) and to the stream of the current `pull`
//! call (set by the engine); the guest can name neither. Only keys cross the boundary, never
//! record contents, at most [`MAX_KEYS`] per call, and only live (not deleted) ones.

use std::sync::Arc;

/// Most keys one `stored-keys` call returns.
pub const MAX_KEYS: usize = 1000;

/// The host's stored keys of one integration.
pub trait KeySource: Send + Sync {
    /// Live keys of `stream`, ascending, greater than `after`, at most `limit`.
    fn live_keys_after(
        &self,
        stream: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String>;
}

/// What one call may read: a key source and the stream it is pulling, when both exist.
#[derive(Clone, Default)]
pub struct KeyAccess {
    source: Option<Arc<dyn KeySource>>,
    stream: Option<String>,
}

impl KeyAccess {
    /// Access for a `pull` of `stream`; without a source every answer is empty.
    pub fn new(source: Option<Arc<dyn KeySource>>, stream: Option<String>) -> Self {
        Self { source, stream }
    }

    /// Answers the guest: empty outside `pull` or without a source; an error of the source
    /// traps the call, so a failed read can never look like "nothing stored".
    pub fn keys(&self, after: Option<&str>, limit: u32) -> wasmtime::Result<Vec<String>> {
        let (Some(source), Some(stream)) = (&self.source, &self.stream) else {
            return Ok(Vec::new());
        };
        let limit = (limit as usize).min(MAX_KEYS);
        source
            .live_keys_after(stream, after, limit)
            .map_err(|e| wasmtime::format_err!("reading the stored keys of {stream}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Result<Vec<String>, String>);

    impl KeySource for Fixed {
        fn live_keys_after(
            &self,
            stream: &str,
            _after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<String>, String> {
            assert_eq!(stream, "Case");
            assert!(limit <= MAX_KEYS);
            self.0.clone()
        }
    }

    #[test]
    fn answers_only_inside_pull_and_traps_on_a_failed_read() {
        let ok: Arc<dyn KeySource> = Arc::new(Fixed(Ok(vec!["a".into()])));
        let outside = KeyAccess::new(Some(ok.clone()), None);
        assert!(outside.keys(None, 10).unwrap().is_empty());
        let none = KeyAccess::new(None, Some("Case".into()));
        assert!(none.keys(None, 10).unwrap().is_empty());
        let pull = KeyAccess::new(Some(ok), Some("Case".into()));
        assert_eq!(pull.keys(None, u32::MAX).unwrap(), vec!["a"]);
        let broken: Arc<dyn KeySource> = Arc::new(Fixed(Err("disk I/O error".into())));
        let err = KeyAccess::new(Some(broken), Some("Case".into()))
            .keys(None, 10)
            .unwrap_err();
        assert!(err.to_string().contains("disk I/O error"), "{err}");
    }
}
