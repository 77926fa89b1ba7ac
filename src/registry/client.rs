//! One connection to an OCI registry (the distribution API, through the
//! `oci-client` crate): transport and credentials as the user gave them or
//! `docker login` left them, manifests fetched raw, blobs as verified
//! streams, and registry failures turned into one line that says what to do.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::error::{Error, Result};

/// The four manifest media types a pull accepts.
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

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
    rt: tokio::runtime::Runtime,
    client: Client,
    opts: RemoteOptions,
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
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            max_concurrent_download: 4,
            max_concurrent_upload: 4,
            ..ClientConfig::default()
        };
        if let Some(ca) = &opts.ca_cert {
            let data = std::fs::read(ca).map_err(|e| {
                Error::Invalid(format!("cannot read --ca-cert {}: {e}", ca.display()))
            })?;
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the registry client: {e}")))?;
        Ok(Remote {
            rt,
            client: Client::new(config),
            opts: opts.clone(),
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
    fn auth(&self, r: &Reference) -> RegistryAuth {
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
    fn retry<T, F: std::future::Future<Output = oci_client::errors::Result<T>>>(
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

    /// Uploads blob `digest` to `r`'s repository, its bytes
    /// read from `body` as they are sent (PATCHes of the client's chunk
    /// size, then the PUT that names the digest, which the registry checks).
    pub fn upload(&self, r: &Reference, digest: &str, body: &mut dyn Read) -> Result<()> {
        use futures_util::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|b| b.map_err(OciDistributionError::IoError));
        let client = self.client.clone();
        let (target, d) = (r.clone(), digest.to_string());
        let task = self
            .rt
            .spawn(async move { client.push_blob_stream(&target, stream, &d).await });
        let mut buf = vec![0u8; 1 << 20];
        let mut fed = Ok(());
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    let _ = tx.blocking_send(Err(e));
                    fed = Err(Error::Invalid(format!(
                        "reading blob {digest} from the store: {text}"
                    )));
                    break;
                }
            }
        }
        drop(tx);
        let sent = self
            .rt
            .block_on(task)
            .map_err(|e| Error::Registry(format!("the upload of {digest} stopped: {e}")))?;
        fed?;
        let creds = !matches!(self.auth(r), RegistryAuth::Anonymous);
        sent.map(|_| ()).map_err(|e| registry_err(r, e, creds))
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
fn transport(host: &str, e: &reqwest::Error) -> String {
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

/// The Docker CLI's config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(Path::new(&dir).join("config.json")),
        _ => dirs::home_dir().map(|h| h.join(".docker/config.json")),
    }
}

/// The user and password `docker login` stored for `registry` in
/// config.json's `auths` (credential helpers are not asked).
pub fn docker_credentials(registry: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(docker_config_path()?).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let keys: Vec<String> = if registry == "docker.io" || registry == "index.docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
            format!("https://{registry}/v1/"),
        ]
    };
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str())
        && let Some(decoded) = base64_decode(auth)
        && let Ok(text) = String::from_utf8(decoded)
        && let Some((u, p)) = text.split_once(':')
    {
        return Some((u.to_string(), p.to_string()));
    }
    let u = entry.get("username")?.as_str()?;
    let p = entry.get("password")?.as_str()?;
    Some((u.to_string(), p.to_string()))
}

/// Standard base64 (with or without padding), as config.json holds it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_docker_login_writes_it() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("a*b").is_none());
    }
}
