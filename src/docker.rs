//! Talking to the Docker Engine through its API (bollard + tokio), with no
//! `docker` CLI and no temporary files: `save` streams GET /images/get
//! straight into the chunker, `load` verifies a snapshot and streams it into
//! POST /images/load, `images` lists what the daemon has.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use bollard::Docker;
use bollard::query_parameters::{ImportImageOptionsBuilder, ListImagesOptionsBuilder};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::add::{self, AddOptions, AddReport, Source};
use crate::archive::image::{ImageInfo, Verified, verify};
use crate::checkout;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{Snapshot, Store};

pub mod compose;
pub mod context;

/// Long transfers must not hit a request timeout.
const TIMEOUT_SECS: u64 = 24 * 3600;

/// Bytes handed to the daemon per body frame during a load.
const FRAME: usize = 1 << 20;

/// The Docker host used when neither `--docker-host`, `$DOCKER_HOST` nor a
/// Docker context says.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// A connection to one Docker daemon.
pub struct Daemon {
    docker: Docker,
    host: String,
    rt: Runtime,
}

fn docker_err(host: &str, e: bollard::errors::Error) -> Error {
    let text = e.to_string();
    let lower = format!("{e:?} {text}").to_lowercase();
    if lower.contains("permission denied") {
        Error::Docker(format!(
            "permission denied on the Docker socket {host}: run as root or as a member of the docker group"
        ))
    } else if lower.contains("no such file")
        || lower.contains("socket not found")
        || lower.contains("connection refused")
        || lower.contains("connect")
    {
        Error::Docker(format!(
            "cannot reach the Docker daemon at {host} ({text}): start dockerd, or point --docker-host / DOCKER_HOST at a running one"
        ))
    } else {
        Error::Docker(format!("Docker daemon at {host}: {text}"))
    }
}

impl Daemon {
    /// Connects to `host` (`unix://PATH`, `tcp://HOST:PORT` or
    /// `http://HOST:PORT`), checks the daemon answers, and agrees on an API
    /// version both sides speak. Without a host, `$DOCKER_HOST` or the
    /// Docker context decides (see [`context`]).
    pub fn connect(host: Option<&str>) -> Result<Daemon> {
        let endpoint = context::resolve(host)?;
        let host = endpoint.host;
        // Failures name the context the host came from.
        let label = match &endpoint.context {
            Some(name) => format!("{host} (Docker context '{name}')"),
            None => host.clone(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, TIMEOUT_SECS, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, TIMEOUT_SECS, version)
        } else {
            return Err(Error::Invalid(format!(
                "Docker host '{label}' is not supported: use unix:///path/to/docker.sock or tcp://host:port"
            )));
        }
        .map_err(|e| docker_err(&label, e))?;
        let docker = rt.block_on(async {
            docker.ping().await?;
            docker.negotiate_version().await
        });
        let docker = docker.map_err(|e| docker_err(&label, e))?;
        Ok(Daemon { docker, host, rt })
    }

    /// The host this daemon was reached at.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The image a reference names: its ID and tags, or `None` if the daemon has no such image.
    pub fn inspect(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.rt.block_on(self.docker.inspect_image(reference)) {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                tags: i.repo_tags.unwrap_or_default(),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(docker_err(&self.host, e)),
        }
    }

    /// The daemon's size of an image (its layers' uncompressed bytes): an
    /// estimate of what exporting it streams, for progress only.
    fn image_size(&self, reference: &str) -> Option<u64> {
        let i = self
            .rt
            .block_on(self.docker.inspect_image(reference))
            .ok()?;
        u64::try_from(i.size?).ok()
    }

    /// Like [`Daemon::inspect`], failing clearly when the image is missing.
    pub fn require(&self, reference: &str) -> Result<ImageInfo> {
        self.inspect(reference)?.ok_or_else(|| {
            Error::Docker(format!(
                "the Docker daemon at {} has no image '{reference}': 'ferry images' lists what it has",
                self.host
            ))
        })
    }
}

/// What [`save`] did.
#[derive(Debug, Serialize)]
pub struct SaveReport {
    /// The images saved.
    pub images: Vec<ImageInfo>,
    /// The add itself (unchanged = already stored with the same image IDs).
    #[serde(flatten)]
    pub add: AddReport,
}

/// Adds a reference's default tag form: `app` means `app:latest`.
fn normalize(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// Image IDs recorded in a snapshot's metadata.
pub fn snapshot_images(s: &Snapshot) -> Vec<ImageInfo> {
    s.meta.images().to_vec()
}

/// Exports `references` from the daemon (one archive; shared layers once)
/// and adds the stream to the store. An image already stored under the
/// same name with the same image IDs is a no-op that reads nothing.
pub fn save(
    store: &mut Store,
    daemon: &Daemon,
    references: &[String],
    name: Option<String>,
    tar_split: bool,
    progress: &dyn Progress,
) -> Result<SaveReport> {
    if references.is_empty() {
        return Err(Error::Invalid("name at least one image to save".into()));
    }
    // One archive entry per reference: `app` and `app:latest` are one.
    let mut seen = BTreeSet::new();
    let references: Vec<String> = references
        .iter()
        .filter(|r| seen.insert(normalize(r)))
        .cloned()
        .collect();
    let references = references.as_slice();
    let images = references
        .iter()
        .map(|r| daemon.require(r))
        .collect::<Result<Vec<_>>>()?;
    let first = normalize(&references[0]);
    let name = match name {
        Some(n) => n,
        None if images[0].tags.contains(&first) => first,
        None => images[0].tags.first().cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "image {} has no tag to name the snapshot by: pass --name",
                references[0]
            ))
        })?,
    };
    add::validate_name(&name)?;
    let wanted: BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    if let Some(old) = store.snapshot(&name)? {
        let have = snapshot_images(&old);
        if have.iter().map(|i| i.id.as_str()).collect::<BTreeSet<_>>() == wanted {
            return Ok(SaveReport {
                images,
                add: AddReport {
                    name,
                    size: old.size,
                    blake3: old.blake3,
                    chunks: old.entries,
                    new_chunks: 0,
                    new_bytes: 0,
                    compression: "none",
                    unchanged: true,
                    replaced: false,
                    repaired: 0,
                    previous: None,
                    kept_as: None,
                },
            });
        }
    }
    let refs: Vec<&str> = references.iter().map(String::as_str).collect();
    // The export's size is known only once it ends: the daemon's image
    // sizes estimate it (the bar's total grows if the stream runs past).
    let estimate = refs
        .iter()
        .map(|r| daemon.image_size(r))
        .sum::<Option<u64>>()
        .filter(|&n| n > 0);
    let what = match estimate {
        Some(_) => format!("saving {name} (estimated size)"),
        None => format!("saving {name}"),
    };
    let phase = crate::progress::Relabel::new(progress, what, estimate);
    let host = daemon.host.clone();
    let stream = daemon
        .docker
        .export_images(&refs)
        .map_err(move |e| std::io::Error::other(docker_err(&host, e).to_string()));
    let reader = tokio_util::io::StreamReader::new(stream);
    let reader = tokio_util::io::SyncIoBridge::new_with_handle(reader, daemon.rt.handle().clone());
    let opts = AddOptions {
        name: Some(name),
        // A changed image under the same tag moves the tag (the daemon is
        // the source of truth for what a tag means); the old snapshot stays
        // under TAG@DIGEST, a delta base for the new one, until removed.
        replace: false,
        tar_split,
    };
    let report = add::add(
        store,
        Source::Reader {
            label: format!("docker:{}", references.join(",")),
            reader: Box::new(reader),
        },
        &opts,
        &phase,
    )?;
    Ok(SaveReport {
        images,
        add: report,
    })
}

/// What [`load`] did.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    /// Snapshot loaded.
    pub snapshot: String,
    /// Bytes streamed to the daemon.
    pub size: u64,
    /// Images now present in the daemon, with IDs and tags confirmed.
    pub images: Vec<ImageInfo>,
    /// Layer blobs whose digests were checked before streaming.
    pub layers_verified: usize,
    /// "legacy" or "oci".
    pub layout: String,
}

/// A `Write` that hands 1 MiB frames to the async request body.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: BytesMut,
}

impl BodyWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let frame = self.buf.split().freeze();
        self.tx.blocking_send(Ok(frame)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the Docker daemon stopped reading the image",
            )
        })
    }
}

impl Write for BodyWriter {
    /// Sends whole frames, always keeping the last [`FRAME`] bytes back
    /// (see [`BodyWriter::finish`]).
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while self.buf.len() >= 2 * FRAME {
            let frame = self.buf.split_to(FRAME).freeze();
            self.tx.blocking_send(Ok(frame)).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the Docker daemon stopped reading the image",
                )
            })?;
        }
        Ok(data.len())
    }
    /// Holds the last bytes back: only [`BodyWriter::finish`] sends them.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BodyWriter {
    /// Sends the bytes held back: the stream is complete and verified.
    fn finish(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Streams snapshot `name` into the daemon's image load while verifying it
/// (reassembly BLAKE3, and every layer and config digest the archive
/// names), then confirms the image IDs and tags it should have created.
/// The daemon cannot finish a load before it has the archive's last bytes,
/// and those are held back until everything verified: on a failure the
/// request is aborted and the daemon discards what it read.
pub fn load(
    store: &Store,
    daemon: &Daemon,
    name: &str,
    progress: &dyn Progress,
) -> Result<LoadReport> {
    let snap = store.require(name)?;
    let expected = snapshot_images(&snap);
    if expected.is_empty() {
        return Err(Error::Invalid(format!(
            "snapshot {name} is not a docker archive: 'ferry checkout {name} -o FILE' writes it out instead"
        )));
    }
    let (snap, verified) = daemon.stream_load(store, name, &expected, progress)?;
    daemon.confirm(&expected)?;
    Ok(LoadReport {
        snapshot: name.to_string(),
        size: snap.size,
        images: expected,
        layers_verified: verified.layers,
        layout: verified.layout.to_string(),
    })
}

/// The archive verifier's verdict on snapshot `name`, given how its
/// reassembly went (`verifier_stopped` when it failed because the verifier
/// stopped reading): it must hold every image the snapshot's metadata names.
fn verdict(
    name: &str,
    expected: &[ImageInfo],
    checked: Result<Snapshot>,
    verified: std::result::Result<Verified, String>,
    verifier_stopped: bool,
) -> Result<(Snapshot, Verified)> {
    let (snap, verified) = match (checked, verified) {
        (Ok(s), Ok(v)) => (s, v),
        // The verifier stopped reading for a reason: give it.
        (Err(_), Err(m)) if verifier_stopped => {
            return Err(Error::Integrity(format!("{name}: {m}")));
        }
        // Otherwise the reassembly's own error says most.
        (Err(e), _) => return Err(e),
        (Ok(_), Err(m)) => return Err(Error::Integrity(format!("{name}: {m}"))),
    };
    for want in expected {
        if !verified.images.iter().any(|v| v.id == want.id) {
            return Err(Error::Integrity(format!(
                "{name} should hold image {} but its archive does not",
                want.id
            )));
        }
    }
    Ok((snap, verified))
}

/// Hands every byte to the archive verifier and to the daemon, noting
/// which of them stopped taking bytes (its own account says why).
struct Tee<'a> {
    verifier: Option<std::io::PipeWriter>,
    body: &'a mut BodyWriter,
    verifier_stopped: bool,
    daemon_stopped: bool,
}

impl Write for Tee<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(v) = &mut self.verifier {
            v.write_all(data)
                .inspect_err(|_| self.verifier_stopped = true)?;
        }
        self.body
            .write_all(data)
            .inspect_err(|_| self.daemon_stopped = true)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Daemon {
    /// Streams snapshot `name` into POST /images/load, through the archive
    /// verifier on the way, and reads the daemon's answer to the end (load
    /// errors arrive inside the response stream). The last frame is sent
    /// only once the reassembly and the verifier both passed; otherwise the
    /// request body is aborted, so the daemon discards the partial image.
    fn stream_load(
        &self,
        store: &Store,
        name: &str,
        expected: &[ImageInfo],
        progress: &dyn Progress,
    ) -> Result<(Snapshot, Verified)> {
        let (pipe_r, pipe_w) = std::io::pipe().map_err(|e| Error::io("creating a pipe", e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
        let body = tokio_stream::wrappers::ReceiverStream::new(rx);
        let answer = self
            .rt
            .spawn(load_answer(self.docker.clone(), self.host.clone(), body));
        let mut writer = BodyWriter {
            tx,
            buf: BytesMut::with_capacity(2 * FRAME),
        };
        let mut daemon_stopped = false;
        let result = std::thread::scope(|scope| {
            let verifier =
                scope.spawn(move || verify(std::io::BufReader::with_capacity(1 << 20, pipe_r)));
            let mut tee = Tee {
                verifier: Some(pipe_w),
                body: &mut writer,
                verifier_stopped: false,
                daemon_stopped: false,
            };
            // The verifier and the daemon take the same bytes as they come.
            let phase = crate::progress::Relabel::new(
                progress,
                format!("verifying {name} and sending it to the daemon"),
                None,
            );
            let checked = checkout::checkout(store, name, &mut tee, &phase);
            tee.verifier = None;
            let (verifier_stopped, stopped) = (tee.verifier_stopped, tee.daemon_stopped);
            daemon_stopped = stopped;
            let verified = verifier
                .join()
                .unwrap_or_else(|_| Err("the archive verifier failed (a ferry bug)".into()));
            verdict(name, expected, checked, verified, verifier_stopped)
        });
        let streamed = result.and_then(|r| {
            writer
                .finish()
                .map_err(|e| Error::io("streaming to the Docker daemon", e))?;
            Ok(r)
        });
        if let Err(e) = &streamed {
            // Abort the request body so the daemon discards a partial image.
            let _ = writer.tx.blocking_send(Err(std::io::Error::other(format!(
                "ferry aborted the load: {e}"
            ))));
        }
        drop(writer);
        // The daemon imports the layers only once it has the whole archive.
        if streamed.is_ok() {
            progress.start(&format!("daemon importing {name}"), None);
        }
        let answer = self.rt.block_on(answer);
        progress.finish();
        let answer = answer.map_err(|e| Error::Docker(format!("load task failed: {e}")))?;
        match (streamed, answer) {
            // The daemon stopped reading: its answer says why.
            (Err(_), Err(e)) if daemon_stopped => Err(e),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(r), Ok(_)) => Ok(r),
        }
    }

    /// Confirms from the daemon that each expected image is present and
    /// that each of its tags names it.
    fn confirm(&self, expected: &[ImageInfo]) -> Result<()> {
        for want in expected {
            self.require(&want.id)?;
            for tag in &want.tags {
                let tagged = self.require(tag)?;
                if tagged.id != want.id {
                    return Err(Error::Docker(format!(
                        "after loading, {tag} in the Docker daemon is {} instead of {}",
                        tagged.id, want.id
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Sends `body` as an image load and reads the daemon's answer to its end:
/// the progress messages, or the error it reports inside the stream.
async fn load_answer(
    docker: Docker,
    host: String,
    body: tokio_stream::wrappers::ReceiverStream<std::io::Result<Bytes>>,
) -> Result<Vec<String>> {
    let options = ImportImageOptionsBuilder::new().quiet(true).build();
    let mut responses = docker.import_image_stream(options, body, None);
    let mut messages = Vec::new();
    while let Some(item) = responses.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(Error::Docker(format!(
                        "the Docker daemon at {host} rejected the image: {}",
                        detail.message.unwrap_or_default()
                    )));
                }
                if let Some(s) = info.stream {
                    messages.push(s.trim().to_string());
                }
            }
            Err(
                bollard::errors::Error::DockerResponseServerError { message, .. }
                | bollard::errors::Error::DockerStreamError { error: message },
            ) => {
                return Err(Error::Docker(format!(
                    "the Docker daemon at {host} rejected the image: {message}"
                )));
            }
            Err(e) => return Err(docker_err(&host, e)),
        }
    }
    Ok(messages)
}

/// One image of the daemon, as `ferry images` lists it.
#[derive(Debug, Serialize)]
pub struct ImageRow {
    /// Image ID.
    pub id: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Size the daemon reports.
    pub size: i64,
    /// Created (Unix seconds).
    pub created: i64,
    /// Snapshots in the store holding this image.
    pub in_store: Vec<String>,
}

/// The daemon's images, each marked with the snapshots that hold it.
pub fn images(daemon: &Daemon, store: Option<&Store>) -> Result<Vec<ImageRow>> {
    let list = daemon
        .rt
        .block_on(
            daemon
                .docker
                .list_images(Some(ListImagesOptionsBuilder::new().all(false).build())),
        )
        .map_err(|e| docker_err(&daemon.host, e))?;
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(store) = store {
        for s in store.snapshots()? {
            for i in snapshot_images(&s) {
                held.entry(i.id).or_default().push(s.name.clone());
            }
        }
    }
    Ok(list
        .into_iter()
        .map(|i| ImageRow {
            in_store: held.get(&i.id).cloned().unwrap_or_default(),
            tags: i
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            id: i.id,
            size: i.size,
            created: i.created,
        })
        .collect())
}
