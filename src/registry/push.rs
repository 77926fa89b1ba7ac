//! `ferry push`: a snapshot's images put into a registry. Blobs the
//! registry has are skipped (HEAD); the others stream from the store
//! straight into one PUT each. Manifests and indexes go byte-exact, after
//! every blob they name, and tags last, so an interrupted push never leaves
//! a tag naming something missing, and a second run sends only what did
//! not arrive. A legacy `docker save` archive (no OCI layout) gets an OCI
//! manifest built for its uncompressed layers: its digests are new.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use oci_client::{Reference, RegistryOperation};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::client::Remote;
use super::layout::{Entry, Scan, Target, legacy_images, oci_images, retarget, select};
use super::pipe::{ChannelReader, ChannelWriter, channel};
use super::pull::{megabytes, short};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::Store;

/// Where to push and under which tags.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `REGISTRY/REPOSITORY[:TAG]` to push to (for several images,
    /// `REGISTRY[/PREFIX]`); default: where the images' own tags point.
    pub target: Option<String>,
    /// Tags to push under, instead of the images' own.
    pub tags: Vec<String>,
}

/// An image reference pushed, and the digest it names.
#[derive(Debug, Serialize)]
pub struct Pushed {
    /// `registry/repository:tag`.
    pub reference: String,
    /// The manifest or index digest it names.
    pub digest: String,
}

/// What [`push`] did.
#[derive(Debug, Serialize)]
pub struct PushReport {
    /// The snapshot pushed.
    pub snapshot: String,
    /// Tags pushed.
    pub pushed: Vec<Pushed>,
    /// Blobs uploaded (or mounted from another repository).
    pub blobs_sent: usize,
    /// Bytes uploaded.
    pub bytes_sent: u64,
    /// Blobs the registry had already.
    pub blobs_skipped: usize,
    /// Manifests built here for a legacy archive (their digests are new).
    pub built_manifests: usize,
    /// What the user should know (a partial index, built manifests).
    pub notes: Vec<String>,
}

const SMALL: u64 = 4 << 20;

/// Blobs sent and skipped so far, and which a repository now holds.
#[derive(Default)]
struct Tally {
    sent: usize,
    bytes: u64,
    skipped: usize,
    /// (repository, digest) known to be in the registry.
    present: HashSet<(String, String)>,
}

impl Tally {
    fn has(&self, r: &Reference, d: &str) -> bool {
        self.present
            .contains(&(r.repository().to_string(), d.to_string()))
    }
    fn add(&mut self, r: &Reference, d: &str) {
        self.present
            .insert((r.repository().to_string(), d.to_string()));
    }
}

/// Pushes snapshot `name`'s images to a registry. A registry that refuses
/// monolithic uploads gets the push again in chunks (blobs that arrived
/// are skipped).
pub fn push(
    store: &Store,
    remote: &Remote,
    name: &str,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let chunked = remote.uploads_in_chunks();
    match push_once(store, remote, name, opts, progress) {
        Err(Error::Registry(why)) if !chunked && remote.uploads_in_chunks() => {
            let mut report = push_once(store, remote, name, opts, progress)?;
            report.notes.push(why);
            Ok(report)
        }
        other => other,
    }
}

fn push_once(
    store: &Store,
    remote: &Remote,
    name: &str,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let snap = store.require(name)?;
    let mut notes = Vec::new();
    let mut tally = Tally::default();
    let oci = snap.meta.docker.as_ref().is_some_and(|d| d.layout == "oci");
    let (scan, targets, built) = if oci {
        // One pass: layers go to the first repository as they stream by
        // (their digests are their names); the rest follows from
        // index.json at the archive's end.
        let images = snap.meta.images();
        let own = images
            .iter()
            .find(|i| i.tags.iter().any(|t| t == name))
            .map(|_| name.to_string())
            .or_else(|| images.iter().find_map(|i| i.tags.first().cloned()))
            .unwrap_or_default();
        let names = vec![(own, Target::empty()?)];
        let first = retarget(names, opts)?.remove(0).repo;
        remote.login(&first, RegistryOperation::Push)?;
        let scan = stream_oci(store, remote, &snap.name, &first, &mut tally, progress)?;
        let index = scan.small.get("index.json").ok_or_else(|| {
            Error::Invalid(format!(
                "snapshot {} has no index.json: it cannot be pushed",
                snap.name
            ))
        })?;
        let (images, built) = oci_images(&scan, index, &mut notes)?;
        (
            scan,
            retarget(select(images, name, &snap.name), opts)?,
            built,
        )
    } else {
        let scan = scan(store, &snap.name, progress)?;
        let (images, built) = match scan.small.get("index.json") {
            Some(index) => oci_images(&scan, index, &mut notes)?,
            None => legacy_images(&scan, &mut notes)?,
        };
        (
            scan,
            retarget(select(images, name, &snap.name), opts)?,
            built,
        )
    };
    let missing = complete(remote, &scan, &targets, &mut tally)?;
    if !missing.is_empty() {
        let (n, bytes) = upload(store, remote, &snap.name, &scan, &missing, progress)?;
        tally.sent += n;
        tally.bytes += bytes;
    }
    let pushed = put_manifests(remote, &targets)?;
    Ok(PushReport {
        snapshot: snap.name,
        pushed,
        blobs_sent: tally.sent,
        bytes_sent: tally.bytes,
        blobs_skipped: tally.skipped,
        built_manifests: built,
        notes,
    })
}

/// Makes every target's blobs present where they can be without reading
/// the archive again: a HEAD, small blobs from memory, a mount from a
/// repository of the same registry that has it. HEADs and small uploads
/// go several at once. Returns what is still missing.
fn complete(
    remote: &Remote,
    scan: &Scan,
    targets: &[Target],
    tally: &mut Tally,
) -> Result<HashMap<String, Vec<Reference>>> {
    let mut asks: Vec<(&Reference, &str, u64)> = Vec::new();
    let mut asked = HashSet::new();
    for t in targets {
        remote.login(&t.repo, RegistryOperation::Push)?;
        for (d, size) in &t.blobs {
            if !tally.has(&t.repo, d)
                && asked.insert((t.repo.resolve_registry(), t.repo.repository(), d.as_str()))
            {
                asks.push((&t.repo, d, *size));
            }
        }
    }
    let there = at_once(&asks, |&(r, d, _)| remote.has_blob(r, d))?;
    let mut small = Vec::new();
    let mut missing: HashMap<String, Vec<Reference>> = HashMap::new();
    for (&(r, d, size), there) in asks.iter().zip(there) {
        if there {
            tally.skipped += 1;
            tally.add(r, d);
        } else if let Some(bytes) = scan.small.get(&blob_path(d)) {
            small.push((r, d, size, bytes));
        }
    }
    at_once(&small, |&(r, d, size, bytes)| {
        remote.upload(r, d, size, &mut &bytes[..])
    })?;
    for (r, d, size, _) in small {
        tally.sent += 1;
        tally.bytes += size;
        tally.add(r, d);
    }
    // The rest is in the archive; a repository of the same registry that
    // has a blob lends it by a mount.
    for &(r, d, _) in &asks {
        if tally.has(r, d) {
            continue;
        }
        let holder = tally.present.iter().find_map(|(repo, pd)| {
            let t = targets.iter().find(|t| t.repo.repository() == repo)?;
            (pd == d && t.repo.resolve_registry() == r.resolve_registry()).then_some(&t.repo)
        });
        match holder {
            Some(from) => {
                let from = from.clone();
                remote.mount(r, &from, d)?;
                tally.sent += 1;
                tally.add(r, d);
            }
            None => missing.entry(d.to_string()).or_default().push(r.clone()),
        }
    }
    Ok(missing)
}

/// How many requests go to a registry at once.
const AT_ONCE: usize = 4;

/// `f` of every item, up to [`AT_ONCE`] at a time (requests wait on the
/// network, not on the cores), in the items' order; the first failure.
fn at_once<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    use rayon::prelude::*;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(AT_ONCE)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the push's threads: {e}")))?;
    pool.install(|| items.par_iter().map(&f).collect())
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Puts each target's manifests by digest, then its tags.
fn put_manifests(remote: &Remote, targets: &[Target]) -> Result<Vec<Pushed>> {
    let mut pushed = Vec::new();
    for t in targets {
        for (bytes, media) in &t.children {
            let d = sha256(bytes);
            remote.put_manifest(&t.repo.clone_with_digest(d), bytes, media)?;
        }
        for tag in &t.tags {
            let r = Reference::with_tag(
                t.repo.registry().to_string(),
                t.repo.repository().to_string(),
                tag.clone(),
            );
            remote.put_manifest(&r, &t.top.0, &t.top.1)?;
            pushed.push(Pushed {
                reference: format!("{}/{}:{tag}", r.registry(), r.repository()),
                digest: sha256(&t.top.0),
            });
        }
    }
    Ok(pushed)
}

/// One read of an OCI layout snapshot: small files kept, each large blob
/// (a layer) uploaded to `first` as it streams by unless it is there.
fn stream_oci(
    store: &Store,
    remote: &Remote,
    name: &str,
    first: &Reference,
    tally: &mut Tally,
    progress: &dyn Progress,
) -> Result<Scan> {
    let phase = crate::progress::Relabel::new(progress, format!("pushing {name}"), None);
    let mut failed: Option<Error> = None;
    let got = stream_archive(store, name, &phase, |archive| {
        let mut scan = Scan::default();
        for e in archive.entries()? {
            let mut e = e?;
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = e.path()?.to_string_lossy().into_owned();
            let size = e.size();
            let digest = path
                .strip_prefix("blobs/sha256/")
                .map(|hex| format!("sha256:{hex}"))
                .unwrap_or_default();
            // Small blobs are read whole: JSON (manifests, configs) is kept
            // for the end; anything else is a layer, sent now.
            let mut held = None;
            if size <= SMALL || digest.is_empty() {
                let mut bytes = Vec::with_capacity(size as usize);
                e.read_to_end(&mut bytes)?;
                if digest.is_empty() || json_like(&bytes) {
                    scan.small.insert(path.clone(), bytes);
                } else {
                    held = Some(bytes);
                }
            }
            if scan.small.contains_key(&path) {
                scan.entries.push(Entry { path, size, digest });
                continue;
            }
            let what = format!("blob {} ({})", short(&digest), megabytes(size));
            let r = match remote.has_blob(first, &digest) {
                Ok(true) => {
                    phase.detail(&format!("{what} already there"));
                    tally.skipped += 1;
                    Ok(())
                }
                Ok(false) => {
                    phase.detail(&format!("{what} sending"));
                    match &held {
                        Some(bytes) => remote.upload(first, &digest, size, &mut &bytes[..]),
                        None => remote.upload(first, &digest, size, &mut e),
                    }
                }
                .map(|()| {
                    tally.sent += 1;
                    tally.bytes += size;
                }),
                Err(err) => Err(err),
            };
            if let Err(err) = r {
                failed = Some(err);
                return Err(io::Error::other("push failed"));
            }
            tally.add(first, &digest);
            scan.entries.push(Entry { path, size, digest });
        }
        Ok(scan)
    });
    match (got, failed) {
        (_, Some(e)) => Err(e),
        (got, None) => got,
    }
}

/// Reads the snapshot's archive once: every file's size and sha256, and
/// the bytes of the small ones.
fn scan(store: &Store, name: &str, progress: &dyn Progress) -> Result<Scan> {
    let phase = crate::progress::Relabel::new(progress, format!("reading {name}"), None);
    stream_archive(store, name, &phase, |archive| {
        let mut scan = Scan {
            entries: Vec::new(),
            small: HashMap::new(),
        };
        for e in archive.entries()? {
            let mut e = e?;
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = e.path()?.to_string_lossy().into_owned();
            let size = e.size();
            let mut h = Sha256::new();
            let mut keep = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = e.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                if size <= SMALL {
                    keep.extend_from_slice(&buf[..n]);
                }
            }
            // Only JSON is needed later (manifests, configs, index.json,
            // manifest.json): memory does not grow with small layers.
            if size <= SMALL && json_like(&keep) {
                scan.small.insert(path.clone(), keep);
            }
            let digest = format!("sha256:{}", crate::hex(&h.finalize()));
            scan.entries.push(Entry { path, size, digest });
        }
        Ok(scan)
    })
}

/// Checks the snapshot out into a pipe and hands the reading end, as a
/// tar archive, to `read` on another thread.
fn stream_archive<T: Send>(
    store: &Store,
    name: &str,
    progress: &dyn Progress,
    read: impl FnOnce(&mut tar::Archive<ChannelReader>) -> io::Result<T> + Send,
) -> Result<T> {
    let (tx, rx) = channel();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut archive = tar::Archive::new(ChannelReader::new(rx));
            let r = read(&mut archive);
            // Drain, so the checkout finishes (and checks its BLAKE3); after
            // a failure, hang up, so it stops.
            if r.is_ok() {
                let _ = io::copy(archive.into_inner().by_ref(), &mut io::sink());
            }
            r
        });
        let mut w = ChannelWriter::new(tx);
        let out = crate::checkout::checkout(store, name, &mut w, progress);
        match &out {
            Ok(_) => {
                let _ = w.finish();
            }
            Err(e) => w.fail(io::Error::other(e.to_string())),
        }
        let got = reader.join().expect("the archive reader does not panic");
        let reading = |e: io::Error| {
            Error::Invalid(format!("reading snapshot {name} as an image archive: {e}"))
        };
        match (out, got) {
            // The reader hung up first: its error is the cause.
            (Err(e), Err(r)) if e.to_string().contains("stopped reading") => Err(reading(r)),
            (Err(e), _) => Err(e),
            (Ok(_), got) => got.map_err(reading),
        }
    })
}

/// Streams the archive again and uploads each blob some repository lacks.
fn upload(
    store: &Store,
    remote: &Remote,
    name: &str,
    scan: &Scan,
    missing: &HashMap<String, Vec<Reference>>,
    progress: &dyn Progress,
) -> Result<(usize, u64)> {
    let by_path: HashMap<&str, &str> = scan
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.digest.as_str()))
        .collect();
    let phase = crate::progress::Relabel::new(progress, format!("pushing {name}"), None);
    let result: Result<(usize, u64)> = stream_archive(store, name, &phase, |archive| {
        let mut done: HashSet<String> = HashSet::new();
        let (mut n, mut bytes) = (0, 0u64);
        for e in archive.entries()? {
            let mut e = e?;
            let path = e.path()?.to_string_lossy().into_owned();
            let Some(&digest) = by_path.get(path.as_str()) else {
                continue;
            };
            let Some(repos) = missing.get(digest) else {
                continue;
            };
            if !done.insert(digest.to_string()) {
                continue;
            }
            let size = e.size();
            let (first, others) = repos
                .split_first()
                .expect("a missing blob has a repository");
            remote
                .upload(first, digest, size, &mut e)
                .map_err(|err| io::Error::other(err.to_string()))?;
            n += 1;
            bytes += size;
            // Other repositories of the registry take it by a mount.
            for r in others {
                remote
                    .mount(r, first, digest)
                    .map_err(|err| io::Error::other(err.to_string()))?;
                n += 1;
            }
        }
        Ok((n, bytes))
    });
    let (n, bytes) = result.map_err(|e| match e {
        Error::Invalid(m) => Error::Registry(m.replace("reading snapshot", "pushing snapshot")),
        other => other,
    })?;
    let wanted: usize = missing.values().map(Vec::len).sum();
    if n != wanted {
        return Err(Error::Registry(format!(
            "snapshot {name} lacks {} of the blobs its manifests name: it cannot be pushed whole",
            wanted - n
        )));
    }
    Ok((n, bytes))
}

/// True for bytes that start, past white space, like a JSON object or array.
fn json_like(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|&c| c == b'{' || c == b'[')
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::hex(&Sha256::digest(bytes)))
}
