//! What a pack's header must satisfy before anything is imported: the
//! store's chunker, usable snapshot names, the bases and inventory chunks
//! it relies on, and the store's trust list.

use std::path::Path;

use crate::chunker;
use crate::error::{Error, Result};
use crate::pack::{BaseRef, Header};
use crate::store::{ChunkRow, RecipeSummary, Store};

/// Refuses a pack cut with another chunker or other parameters.
pub(super) fn check_chunker(store: &Store, h: &Header, label: &Path) -> Result<()> {
    if h.algorithm != chunker::ALGORITHM || h.params != store.params() {
        return Err(Error::pack(
            label,
            format!(
                "pack was cut with chunker {} min={} avg={} max={}, this store uses {}: it came from an incompatible ferry",
                h.algorithm,
                h.params.min,
                h.params.avg,
                h.params.max,
                store.params()
            ),
        ));
    }
    Ok(())
}

/// The checks that need only the header and the store's settings (trust
/// list, chunker, names), made before a pack is read any further.
pub(super) fn check_header(store: &Store, h: &Header, label: &Path) -> Result<Option<String>> {
    let signer = check_trust(store, h, label)?;
    check_chunker(store, h, label)?;
    check_names(h, label)?;
    Ok(signer)
}

/// Refuses a pack that names a snapshot (carried, or a base) by a name
/// this store would refuse at `add`: control or bidirectional-text
/// characters would garble or disguise it in every listing.
pub(super) fn check_names(h: &Header, label: &Path) -> Result<()> {
    let names = h.snapshots.iter().chain(h.bases.iter().map(|b| &b.name));
    for name in names {
        if let Some(why) = crate::add::name_problem(name) {
            return Err(Error::pack(
                label,
                format!(
                    "pack names a snapshot '{}' that this store refuses: {why}; nothing was imported: ask the sender to pack it under another name",
                    name.escape_debug()
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a pack whose bases this store lacks (by stream hash).
pub(super) fn check_bases(store: &Store, h: &Header, label: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for b in &h.bases {
        if store.snapshots_by_hash(&b.hash)?.is_empty() {
            missing.push(b);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = |f: &dyn Fn(&BaseRef) -> String| {
        missing.iter().map(|b| f(b)).collect::<Vec<_>>().join(", ")
    };
    Err(Error::MissingBase {
        path: label.to_path_buf(),
        missing: list(&|b| format!("{} (blake3 {})", b.name, b.hash.short())),
        names: list(&|b| b.name.clone()),
    })
}

/// How this store holds a base a pack names.
pub(super) enum BaseMatch {
    /// A snapshot with the base's bytes, split as the sender split it.
    Found(RecipeSummary),
    /// Only snapshots (the first named) with the same bytes, split otherwise.
    SplitDifferently(String),
    /// No snapshot with the base's bytes.
    Missing,
}

/// Finds the base `b` in the store by its stream hash, with the recipe the
/// sender indexed (packs of format `version` 1 name no recipe).
pub(super) fn find_base(store: &Store, b: &BaseRef, version: u32) -> Result<BaseMatch> {
    // Only version-1 packs come without base recipe digests.
    let any_recipe = version == 1 && b.recipe == [0; 32];
    // Several snapshots may hold the same bytes; any stored the way the
    // sender stored its base will do.
    let mut first = None;
    for snap in store.snapshots_by_hash(&b.hash)? {
        let sum = store.recipe_summary(snap.rowid)?;
        if any_recipe || sum.digest == b.recipe {
            return Ok(BaseMatch::Found(sum));
        }
        first.get_or_insert(snap.name);
    }
    Ok(first.map_or(BaseMatch::Missing, BaseMatch::SplitDifferently))
}

/// The receiver's chunk table for compact recipes: the bases' chunk
/// tables, in the same order the sender indexed (which needs the same
/// recipe on both sides), then the chunks the sender knew this store
/// holds (from its inventory). `version` is the pack's format version.
pub(super) fn base_table(
    store: &Store,
    h: &Header,
    version: u32,
    label: &Path,
) -> Result<Vec<ChunkRow>> {
    let mut base_rows: Vec<ChunkRow> = Vec::new();
    for b in &h.bases {
        let sum = match find_base(store, b, version)? {
            BaseMatch::Found(sum) => sum,
            BaseMatch::SplitDifferently(name) => {
                return Err(Error::pack(
                    label,
                    format!(
                        "this store's copy of {name} holds the same bytes but was split differently (for example with --no-tar-split), so this delta cannot refer to it: ask for a pack without --base {}, or add {name} here the way the sender did",
                        b.name
                    ),
                ));
            }
            // Reported (with every other missing base) by check_bases.
            BaseMatch::Missing => return check_bases(store, h, label).map(|()| Vec::new()),
        };
        base_rows.extend(sum.order);
    }
    for id in &h.extra {
        match store.chunk(id)? {
            Some(c) => base_rows.push(c.rowid),
            None => {
                return Err(Error::pack(
                    label,
                    format!(
                        "pack relies on chunk {} from this store's inventory, but the store does not hold it: the inventory came from another store; ask for a pack made with a fresh 'ferry inventory' of this one",
                        id.short()
                    ),
                ));
            }
        }
    }
    Ok(base_rows)
}

/// Refuses a pack the store's trust list does not accept; returns the
/// signer's key (hex) when a trusted key signed it. The signature itself is
/// checked by the reader when it reaches the trailer.
pub(super) fn check_trust(store: &Store, h: &Header, label: &Path) -> Result<Option<String>> {
    let trusted = crate::keys::trusted(store)?;
    let signer = h.signer.map(|k| crate::hex(&k));
    if trusted.is_empty() {
        return Ok(None);
    }
    match &h.signer {
        None => Err(Error::pack(
            label,
            "pack is not signed, and this store accepts only packs signed by a trusted key (see 'ferry trust list'): ask the sender for a pack made with --sign",
        )),
        Some(k) if !trusted.iter().any(|t| t.key == *k) => Err(Error::pack(
            label,
            format!(
                "pack is signed by key {}, which this store does not trust: if it is the sender's, add its .pub file with 'ferry trust add'",
                &crate::hex(k)[..16]
            ),
        )),
        Some(_) => Ok(signer),
    }
}
