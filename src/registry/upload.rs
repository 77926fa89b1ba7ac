//! Blob uploads as registries take them fastest: one monolithic PUT per
//! blob, its body streamed from the store as it is sent. A registry (or the
//! proxy in front of it) that refuses a PUT that large or that shape is
//! sent PATCH chunks from then on.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use super::client::{Remote, registry_err, transport};
use super::credentials::basic_header;
use crate::error::{Error, Result};

/// A blob's bytes on their way to a request.
type Pieces = tokio_stream::wrappers::ReceiverStream<std::io::Result<bytes::Bytes>>;

/// What the body of an upload is read in.
const PIECE: usize = 1 << 20;

impl Remote {
    /// Uploads blob `digest` (`size` bytes) to `r`'s repository, its bytes
    /// read from `body` as they are sent; the registry checks the digest.
    /// When the registry refuses a monolithic upload, this one fails and
    /// [`Remote::uploads_in_chunks`] turns true: the caller runs again, and
    /// every later upload goes in chunks.
    pub fn upload(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        body: &mut dyn Read,
    ) -> Result<()> {
        if self.uploads_in_chunks() {
            return self.upload_chunked(r, digest, body);
        }
        let location = self.begin_upload(r)?;
        self.put_blob(r, location, digest, size, body)
    }

    /// True once a registry refused a monolithic upload.
    pub fn uploads_in_chunks(&self) -> bool {
        self.chunked.load(Ordering::Relaxed)
    }

    /// The Authorization header a push to `r`'s repository takes: a bearer
    /// token when the registry hands them out, else the user's Basic
    /// credentials, else none. Asked again when `fresh`.
    fn push_header(&self, r: &Reference, fresh: bool) -> Result<Option<String>> {
        let key = format!("{}/{}", r.resolve_registry(), r.repository());
        if !fresh && let Some(h) = self.push_headers.lock().expect("not poisoned").get(&key) {
            return Ok(h.clone());
        }
        let auth = self.auth(r);
        let token = self.retry(r, || self.client.auth(r, &auth, RegistryOperation::Push))?;
        let header = match (token, &auth) {
            (Some(t), _) => Some(format!("Bearer {t}")),
            (None, RegistryAuth::Basic(u, p)) => Some(basic_header(u, p)),
            (None, _) => None,
        };
        self.push_headers
            .lock()
            .expect("not poisoned")
            .insert(key, header.clone());
        Ok(header)
    }

    /// `POST /v2/REPO/blobs/uploads/`: the upload session's URL. Retried
    /// after 0.5, 1 and 2 s when the registry is unreachable or answers
    /// 5xx; asked once more with a fresh token after a 401.
    fn begin_upload(&self, r: &Reference) -> Result<Url> {
        let host = r.resolve_registry().to_string();
        let scheme = if self.opts.insecure { "http" } else { "https" };
        let url = Url::parse(&format!(
            "{scheme}://{host}/v2/{}/blobs/uploads/",
            r.repository()
        ))
        .map_err(|e| Error::Invalid(format!("{}: not a registry address: {e}", r.whole())))?;
        let (mut wait, mut fresh) = (Duration::from_millis(500), false);
        for attempt in 0.. {
            let mut req = self.http.post(url.clone()).header(CONTENT_LENGTH, 0);
            if let Some(h) = self.push_header(r, fresh)? {
                req = req.header(AUTHORIZATION, h);
            }
            match self.rt.block_on(req.send()) {
                Ok(res) if res.status() == StatusCode::UNAUTHORIZED && !fresh => fresh = true,
                Ok(res) if res.status().is_server_error() && attempt < 3 => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Ok(res) if res.status() == StatusCode::ACCEPTED => {
                    let location = res
                        .headers()
                        .get(LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .and_then(|l| url.join(l).ok());
                    return location.ok_or_else(|| {
                        Error::Registry(format!(
                            "registry {host} started an upload without saying where to send it (no Location): it does not follow the distribution API"
                        ))
                    });
                }
                Ok(res) => return Err(self.refused(r, res, "starting an upload")),
                Err(e) if attempt < 3 && (e.is_connect() || e.is_timeout()) => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                Err(e) => return Err(Error::Registry(transport(&host, &e))),
            }
        }
        unreachable!("the loop returns")
    }

    /// `PUT LOCATION?digest=D` with the whole blob as its body, streamed.
    fn put_blob(
        &self,
        r: &Reference,
        mut url: Url,
        digest: &str,
        size: u64,
        body: &mut dyn Read,
    ) -> Result<()> {
        url.query_pairs_mut().append_pair("digest", digest);
        let header = self.push_header(r, false)?;
        let http = self.http.clone();
        let sent = self.streamed(body, digest, move |stream| {
            let mut req = http
                .put(url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(stream));
            if let Some(h) = header {
                req = req.header(AUTHORIZATION, h);
            }
            async move { req.send().await }
        })?;
        let host = r.resolve_registry().to_string();
        let res = sent.map_err(|e| Error::Registry(transport(&host, &e)))?;
        if res.status() == StatusCode::CREATED {
            return Ok(());
        }
        let status = res.status();
        let refused = self.refused(r, res, &format!("uploading blob {digest}"));
        let text = refused.to_string();
        let shape = matches!(status.as_u16(), 405 | 411 | 413 | 501)
            || (status == StatusCode::BAD_REQUEST
                && !text.contains("DIGEST_INVALID")
                && !text.contains("SIZE_INVALID"));
        if shape {
            self.chunked.store(true, Ordering::Relaxed);
            return Err(Error::Registry(format!(
                "registry {host} refused blob {digest} in one request ({status}): sending blobs in chunks instead"
            )));
        }
        Err(refused)
    }

    /// An upload in PATCH chunks of the client's chunk size, then the PUT
    /// that names the digest.
    fn upload_chunked(&self, r: &Reference, digest: &str, body: &mut dyn Read) -> Result<()> {
        use futures_util::StreamExt;
        let client = self.client.clone();
        let (target, d) = (r.clone(), digest.to_string());
        let sent = self.streamed(body, digest, move |stream| {
            let stream = stream.map(|b| b.map_err(OciDistributionError::IoError));
            async move { client.push_blob_stream(&target, stream, &d).await }
        })?;
        let creds = !matches!(self.auth(r), RegistryAuth::Anonymous);
        sent.map(|_| ()).map_err(|e| registry_err(r, e, creds))
    }

    /// Runs the request `start` makes of a stream of `body`'s bytes, fed
    /// from this thread as the request sends them; its outcome, unless
    /// reading `body` failed first.
    fn streamed<T, F>(
        &self,
        body: &mut dyn Read,
        digest: &str,
        start: impl FnOnce(Pieces) -> F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let task = self
            .rt
            .spawn(start(tokio_stream::wrappers::ReceiverStream::new(rx)));
        let fed = feed(body, digest, |piece| tx.blocking_send(piece).is_ok());
        drop(tx);
        let sent = self
            .rt
            .block_on(task)
            .map_err(|e| Error::Registry(format!("the upload of {digest} stopped: {e}")))?;
        fed?;
        Ok(sent)
    }

    /// A refusal as one line (the registry's own words at its end).
    fn refused(&self, r: &Reference, res: reqwest::Response, doing: &str) -> Error {
        let host = r.resolve_registry().to_string();
        let status = res.status();
        let text = self.rt.block_on(res.text()).unwrap_or_default();
        let said: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let said: String = said.chars().take(300).collect();
        let creds = !matches!(self.auth(r), RegistryAuth::Anonymous);
        Error::Registry(match status.as_u16() {
            401 | 403 if creds => format!(
                "registry {host} refused the credentials for pushing {}: check --username/--password-stdin or 'docker login {host}'",
                r.whole()
            ),
            401 | 403 => format!(
                "registry {host} needs credentials for pushing {}: pass --username and --password-stdin, or run 'docker login {host}'",
                r.whole()
            ),
            _ => format!(
                "registry {host} answered {status} to {doing} for {}: {said}",
                r.whole()
            ),
        })
    }
}

/// Reads `body` to its end in pieces handed to `send` (false: the request
/// ended, stop). A read error is handed on too, so the request fails.
fn feed(
    body: &mut dyn Read,
    digest: &str,
    send: impl Fn(std::io::Result<bytes::Bytes>) -> bool,
) -> Result<()> {
    let mut buf = vec![0u8; PIECE];
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !send(Ok(bytes::Bytes::copy_from_slice(&buf[..n]))) {
                    return Ok(());
                }
            }
            Err(e) => {
                let text = e.to_string();
                send(Err(e));
                return Err(Error::Invalid(format!(
                    "reading blob {digest} from the store: {text}"
                )));
            }
        }
    }
}
