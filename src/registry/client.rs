//! One connection to an OCI registry (the distribution API, through the
//! `oci-client` crate): transport and credentials as the user gave them or
//! `docker login` left them, manifests fetched raw, blobs as verified
//! streams, and registry failures turned into one line that says what to do.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use futures_util::TryStreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::credentials::docker_credentials;
use crate::error::{Error, Result};

/// The four manifest media types a pull accepts.
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How long a connection may take to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How to reach registries and who to be there.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Talk plain HTTP (a registry without TLS).
    pub insecure: bool,
    /// Also trust this CA (PEM).
    pub ca_cert: Option<PathBuf>,
    /// User name (with `password`); else the Docker config's credentials.
    pub username: Option<String>,
    /// Password or token for `username`.
    pub password: Option<String>,
}

/// A registry client with its own async runtime.
pub struct Remote {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) client: Client,
    pub(super) opts: RemoteOptions,
    /// The same transport, for the requests made here (monolithic uploads).
    pub(super) http: reqwest::Client,
    /// The Authorization header each `registry/repository` takes for a
    /// push (None: none), once known.
    pub(super) push_headers: Mutex<HashMap<String, Option<String>>>,
    /// Set once a registry refused a monolithic upload: blobs go in chunks.
    pub(super) chunked: AtomicBool,
}

impl Remote {
    /// A client for the registries `opts` describe.
    pub fn new(opts: &RemoteOptions) -> Result<Remote> {
        let mut config = ClientConfig {
            protocol: if opts.insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(CONNECT_TIMEOUT),
            max_concurrent_download: 4,
            max_concurrent_upload: 4,
            ..ClientConfig::default()
        };
        let mut http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        if let Some(ca) = &opts.ca_cert {
            let data = std::fs::read(ca).map_err(|e| {
                Error::Invalid(format!("cannot read --ca-cert {}: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&data).map_err(|e| {
                Error::Invalid(format!(
                    "--ca-cert {} is not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            http = http.add_root_certificate(cert);
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let http = http
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the registry client: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the registry client: {e}")))?;
        Ok(Remote {
            rt,
            client: Client::new(config),
            opts: opts.clone(),
            http,
            push_headers: Mutex::new(HashMap::new()),
            chunked: AtomicBool::new(false),
        })
    }

    /// Parses an image reference as docker does (`app` is
    /// `docker.io/library/app:latest`).
    pub fn reference(text: &str) -> Result<Reference> {
        text.parse::<Reference>().map_err(|e| {
            Error::Invalid(format!(
                "'{text}' is not an image reference ({e}): give REGISTRY/REPOSITORY:TAG or @sha256:DIGEST"
            ))
        })
    }

    /// The credentials for `r`'s registry: the flags, else `docker login`'s.
    pub(super) fn auth(&self, r: &Reference) -> RegistryAuth {
        if let (Some(u), Some(p)) = (&self.opts.username, &self.opts.password) {
            return RegistryAuth::Basic(u.clone(), p.clone());
        }
        match docker_credentials(r.resolve_registry()) {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Authenticates for `op` on `r`'s repository (a bearer token when the
    /// registry asks for one).
    pub fn login(&self, r: &Reference, op: RegistryOperation) -> Result<()> {
        let auth = self.auth(r);
        self.retry(r, || self.client.auth(r, &auth, op)).map(|_| ())
    }

    /// Runs a request, again after 0.5, 1 and 2 s when it failed in a way
    /// that may pass (the registry unreachable for a moment, timed out, or
    /// answering 5xx); never after a refusal.
    pub(super) fn retry<T, F: std::future::Future<Output = oci_client::errors::Result<T>>>(
        &self,
        r: &Reference,
        f: impl Fn() -> F,
    ) -> Result<T> {
        let mut wait = std::time::Duration::from_millis(500);
        for attempt in 0.. {
            match self.rt.block_on(f()) {
                Ok(v) => return Ok(v),
                Err(e) if attempt < 3 && transient(&e) => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err(e) => {
                    let creds = !matches!(self.auth(r), RegistryAuth::Anonymous);
                    return Err(registry_err(r, e, creds));
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// A manifest or index, byte for byte as the registry serves it, and
    /// its digest (checked against the bytes).
    pub fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, String)> {
        let auth = self.auth(r);
        let (body, digest) = self.retry(r, || {
            self.client.pull_manifest_raw(r, &auth, &MANIFEST_TYPES)
        })?;
        Ok((body.to_vec(), digest))
    }

    /// A blob of `r`'s repository as a stream, checked against `digest` as
    /// it is read (a mismatch is a read error at its end).
    pub fn blob(&self, r: &Reference, digest: &str) -> Result<Box<dyn Read + Send>> {
        let stream = self
            .retry(r, || self.client.pull_blob_stream(r, digest))
            .map_err(|e| match e {
                Error::Registry(m) if m.contains("no such image") || m.contains("names a blob") => {
                    Error::Registry(format!(
                        "registry {} has no blob {digest}, which {} names: the image there is broken; push it to the registry again",
                        r.resolve_registry(),
                        r.whole()
                    ))
                }
                other => other,
            })?;
        let reader =
            tokio_util::io::StreamReader::new(stream.stream.map_err(std::io::Error::other));
        Ok(Box::new(tokio_util::io::SyncIoBridge::new_with_handle(
            reader,
            self.rt.handle().clone(),
        )))
    }
}

impl Remote {
    /// True when `r`'s repository already holds blob `digest`.
    pub fn has_blob(&self, r: &Reference, digest: &str) -> Result<bool> {
        self.retry(r, || self.client.blob_exists(r, digest))
    }

    /// Makes blob `digest` of `from`'s repository part of `r`'s (same
    /// registry), without sending it again.
    pub fn mount(&self, r: &Reference, from: &Reference, digest: &str) -> Result<()> {
        self.retry(r, || self.client.mount_blob(r, from, digest))
    }

    /// Puts a manifest or index, byte for byte, under `r` (a tag or its
    /// digest); returns the digest the registry gives it.
    pub fn put_manifest(&self, r: &Reference, bytes: &[u8], media_type: &str) -> Result<String> {
        let ct = reqwest::header::HeaderValue::from_str(media_type)
            .map_err(|e| Error::Invalid(format!("media type {media_type}: {e}")))?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.retry(r, || {
            self.client.push_manifest_raw(r, body.clone(), ct.clone())
        })
    }
}

/// A failure that may pass if the request is made again.
fn transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(re) => re.is_connect() || re.is_timeout(),
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        _ => false,
    }
}

/// A registry failure as one line: what went wrong, and what to do
/// (`creds`: credentials were offered).
pub fn registry_err(r: &Reference, e: OciDistributionError, creds: bool) -> Error {
    let host = r.resolve_registry().to_string();
    let what = r.whole();
    let msg = match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            format!("{what}: no such image in registry {host}: check the repository and tag")
        }
        OciDistributionError::AuthenticationFailure(_) if !creds => format!(
            "registry {host} needs credentials for {what}: pass --username and --password-stdin, or run 'docker login {host}'"
        ),
        OciDistributionError::AuthenticationFailure(m) => format!(
            "registry {host} refused the credentials ({m}): check --username/--password-stdin or 'docker login {host}'"
        ),
        OciDistributionError::UnauthorizedError { .. } if creds => format!(
            "registry {host} refused the credentials for {what}: check --username/--password-stdin or 'docker login {host}'"
        ),
        OciDistributionError::UnauthorizedError { .. } => format!(
            "registry {host} needs credentials for {what}: pass --username and --password-stdin, or run 'docker login {host}'"
        ),
        OciDistributionError::RegistryError { envelope, .. } => {
            let text = envelope.to_string();
            let codes = format!("{envelope:?} {text}")
                .to_ascii_lowercase()
                .replace(['_', ' '], "");
            if codes.contains("manifestunknown") || codes.contains("nameunknown") {
                format!("{what}: no such image in registry {host}: check the repository and tag")
            } else if codes.contains("unauthorized") || codes.contains("denied") {
                format!(
                    "registry {host} denied access to {what}: check the credentials (--username/--password-stdin, or 'docker login {host}')"
                )
            } else if codes.contains("blobunknown") {
                format!(
                    "registry {host} names a blob of {what} it does not have: the image in the registry is broken; push it again there"
                )
            } else {
                format!("registry {host} answered an error for {what}: {text}")
            }
        }
        OciDistributionError::RequestError(re)
            if re
                .status()
                .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
        {
            if creds {
                format!(
                    "registry {host} refused the credentials for {what}: check --username/--password-stdin or 'docker login {host}'"
                )
            } else {
                format!(
                    "registry {host} needs credentials for {what}: pass --username and --password-stdin, or run 'docker login {host}'"
                )
            }
        }
        OciDistributionError::RequestError(re) => transport(&host, re),
        OciDistributionError::DigestError(_) => format!(
            "registry {host} served bytes for {what} that do not match their digest: try again; if it persists, the registry's storage is damaged"
        ),
        other => format!("registry {host}: {what}: {other}"),
    };
    Error::Registry(msg)
}

/// A transport failure: unreachable, TLS, or timed out.
pub(super) fn transport(host: &str, e: &reqwest::Error) -> String {
    let chain = error_chain(e);
    if e.is_connect()
        && (chain.contains("certificate")
            || chain.contains("ssl")
            || chain.contains("tls")
            || chain.contains("wrong version number"))
    {
        return format!(
            "cannot talk TLS to registry {host} ({chain}): pass --ca-cert FILE for a private CA, or --insecure if it serves plain HTTP"
        );
    }
    if e.is_connect() {
        return format!(
            "cannot reach registry {host} ({chain}): check the address and that the registry is running"
        );
    }
    if e.is_timeout() {
        return format!("registry {host} did not answer in time ({chain}): try again");
    }
    format!("registry {host}: {chain}")
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}
