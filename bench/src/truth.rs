//! The check every pull of the bench ends with: the Case keys the store holds are exactly the
//! live Case Ids the emulator serves. A bench that pulled the wrong records fast measures
//! nothing, so a difference fails the run.

use std::collections::BTreeSet;

use anyhow::bail;
use sluice::app::App;

/// Keys read from the store per query.
const KEYS_PER_READ: usize = 10_000;

/// The live Case Ids of `emulator`, read in process (over the control API a WAN profile would
/// charge its round trips and bandwidth to the check).
pub(crate) fn emulator_case_ids(
    emulator: &sf_emulator::Emulator,
) -> anyhow::Result<BTreeSet<String>> {
    let store = emulator
        .state
        .store
        .read()
        .map_err(|_| anyhow::anyhow!("the emulator's store lock is poisoned"))?;
    let Some(table) = store.table("Case") else {
        bail!("the emulator has no Case table");
    };
    let now = sf_emulator::dt::now_ms();
    let mut ids = BTreeSet::new();
    for n in 0..table.len() as u32 {
        if !table.visible(n, now) || table.is_deleted(n) {
            continue;
        }
        let Some(row) = table.row(n) else { continue };
        match row.values().get(table.sys.id) {
            Some(sf_emulator::data::Val::Str(id)) => ids.insert(id.to_string()),
            other => bail!("the emulator's Case row {n} has no Id: {other:?}"),
        };
    }
    Ok(ids)
}

/// Fails unless integration `id` stores exactly the Case keys in `truth`, naming the first
/// missing and the first extra key.
pub(crate) fn check_stored_cases(
    app: &App,
    id: &str,
    truth: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let mut stored = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let keys = app
            .store()
            .live_keys_after(id, "Case", after.as_deref(), KEYS_PER_READ)?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        stored.extend(keys);
        after = Some(last);
    }
    compare(id, &stored, truth)
}

/// Fails unless `stored` (integration `id`'s keys) equals `truth`.
fn compare(id: &str, stored: &BTreeSet<String>, truth: &BTreeSet<String>) -> anyhow::Result<()> {
    if stored == truth {
        return Ok(());
    }
    let missing = truth.difference(stored).next();
    let extra = stored.difference(truth).next();
    bail!(
        "integration {id} stores {} Case keys, the emulator serves {} live Cases \
         (first missing: {missing:?}, first not in the emulator: {extra:?})",
        stored.len(),
        truth.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn a_missing_or_an_extra_key_fails_and_is_named() {
        let truth = keys(&["500A", "500B"]);
        assert!(compare("i", &keys(&["500A", "500B"]), &truth).is_ok());
        let missing = compare("i", &keys(&["500A"]), &truth)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("first missing: Some(\"500B\")"),
            "{missing}"
        );
        let extra = compare("i", &keys(&["500A", "500B", "500C"]), &truth)
            .unwrap_err()
            .to_string();
        assert!(
            extra.contains("first not in the emulator: Some(\"500C\")"),
            "{extra}"
        );
    }
}
