//! A private OCI registry for tests: Debian's docker-registry (distribution
//! 2.8) started on a free loopback port with its storage in a temp dir,
//! optionally behind htpasswd auth, filled with skopeo and hand-built
//! manifests, and killed at the end.

use std::io::{Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::token::{ISSUER, SERVICE, TokenServer};
use crate::common::{skip, tool};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Proxy variables curl and skopeo would otherwise honour.
pub const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

pub struct Registry {
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The user and password when started with [`Registry::start_with_auth`].
    pub auth: Option<(String, String)>,
    /// The CA that signed its certificate, when started with
    /// [`Registry::start_tls`] (it then speaks HTTPS only).
    pub ca: Option<PathBuf>,
    child: Option<Child>,
}

/// What the registry answered to [`Registry::request`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    /// The `Docker-Content-Digest` header, empty when absent.
    pub digest: String,
    /// The `Location` header, empty when absent.
    pub location: String,
    pub body: Vec<u8>,
}

impl Registry {
    /// Starts an open registry, or reports a skip of `test` (see [`skip`])
    /// and returns None when docker-registry, skopeo or curl is missing.
    pub fn start(test: &str) -> Option<Registry> {
        Self::launch(test, None)
    }

    /// Like [`Registry::start`], behind htpasswd auth with one user.
    pub fn start_with_auth(test: &str, user: &str, pass: &str) -> Option<Registry> {
        Self::launch(test, Some((user, pass)))
    }

    /// Like [`Registry::start`], serving HTTPS with a certificate for
    /// 127.0.0.1 signed by a CA made for it (`ca`).
    pub fn start_tls(test: &str) -> Option<Registry> {
        if tool("openssl").is_none() {
            skip(test, "openssl not installed (apt-get install openssl)");
            return None;
        }
        Self::launch_with(test, None, true, false)
    }

    /// Like [`Registry::start`], with bearer-token auth: clients get a
    /// token for one user from a token server started with it (see
    /// [`TokenServer`]).
    pub fn start_with_token(test: &str, user: &str, pass: &str) -> Option<Registry> {
        if tool("openssl").is_none() {
            skip(test, "openssl not installed (apt-get install openssl)");
            return None;
        }
        Self::launch_with(test, Some((user, pass)), false, true)
    }

    fn launch(test: &str, auth: Option<(&str, &str)>) -> Option<Registry> {
        Self::launch_with(test, auth, false, false)
    }

    fn launch_with(
        test: &str,
        auth: Option<(&str, &str)>,
        tls: bool,
        token: bool,
    ) -> Option<Registry> {
        for (name, package) in [
            ("docker-registry", "docker-registry"),
            ("skopeo", "skopeo"),
            ("curl", "curl"),
        ] {
            if tool(name).is_none() {
                skip(
                    test,
                    &format!("{name} not installed (apt-get install {package})"),
                );
                return None;
            }
        }
        if auth.is_some() && !token && tool("htpasswd").is_none() {
            skip(
                test,
                "htpasswd not installed (apt-get install apache2-utils)",
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("ferry-registry")
            .tempdir_in("/tmp")
            .unwrap();
        let mut auth_yaml = String::new();
        if let (Some((user, pass)), true) = (auth, token) {
            let server = TokenServer::start(dir.path(), user, pass);
            auth_yaml = format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                server.realm,
                server.cert.display()
            );
        } else if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("running htpasswd");
            assert!(
                out.status.success(),
                "htpasswd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: ferry\n    path: {}\n",
                file.display()
            );
        }
        let mut tls_yaml = String::new();
        let mut ca = None;
        if tls {
            let (cert, key, ca_path) = make_certificates(dir.path());
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            ca = Some(ca_path);
        }
        let mut registry = Registry {
            dir,
            addr: String::new(),
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
            ca,
            child: None,
        };
        // A port free now may be taken before the registry binds it: retry.
        for attempt in 1..=5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            registry.addr = format!("127.0.0.1:{port}");
            // A fixed secret: upload URLs stay valid across a restart.
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {}\n  secret: ferry-test-secret\n{tls_yaml}{auth_yaml}",
                registry.storage().display(),
                registry.addr,
            );
            std::fs::write(registry.config(), config).unwrap();
            if registry.spawn() {
                return Some(registry);
            }
            if attempt == 5 {
                panic!(
                    "docker-registry did not start on a free port:\n{}",
                    registry.log_tail()
                );
            }
        }
        unreachable!()
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    /// Starts the process and waits until `/v2/` answers; false when it
    /// exited first (its port taken).
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                return false;
            }
            // Whatever answered the connect may not have been this
            // registry (a parallel test's port probe can hold the port for
            // a moment): a request that fails means not ready yet.
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                let expected = if self.auth.is_some() { 401 } else { 200 };
                let got = self.try_request("GET", "/v2/", None, &[], None);
                if got.is_ok_and(|r| r.status == expected) {
                    return true;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not answer on {} within 30 s:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the registry at once (SIGKILL, as a crash would), leaving its
    /// storage as it is.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same port with the same storage
    /// (killing it first if it still runs).
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "docker-registry did not restart on {}:\n{}",
            self.addr,
            self.log_tail()
        );
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The storage root directory (`rootdirectory` of the config).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the registry keeps the blob `digest` (`sha256:...`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// How many blobs the storage holds (layers, configs and manifests:
    /// every `docker/registry/v2/blobs/sha256/*/*/data`).
    pub fn blob_count(&self) -> usize {
        let root = self.storage().join("docker/registry/v2/blobs/sha256");
        let Ok(prefixes) = std::fs::read_dir(root) else {
            return 0;
        };
        prefixes
            .flatten()
            .filter_map(|p| std::fs::read_dir(p.path()).ok())
            .flat_map(|blobs| blobs.flatten())
            .filter(|b| b.path().join("data").is_file())
            .count()
    }

    /// How many blob uploads of `repo` the storage holds unfinished.
    pub fn uploads(&self, repo: &str) -> usize {
        let dir = self
            .storage()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_uploads");
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    /// The registry's whole log (one line per request, with its method).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The last 40 lines of the registry's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The credentials of this registry, if it has auth.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Pushes a docker-save archive as `ADDR/reference` with skopeo (which
    /// gzips its layers on the way). Panics with skopeo's stderr on failure.
    pub fn push_archive(&self, archive: &Path, reference: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-tls-verify=false", "--insecure-policy"]);
        if let Some((user, pass)) = self.creds() {
            cmd.arg("--dest-creds").arg(format!("{user}:{pass}"));
        }
        cmd.arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{reference}", self.addr));
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        let out = cmd.stdin(Stdio::null()).output().expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {} to {reference} failed: {}\nregistry log:\n{}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
    }

    /// One HTTP request to this registry through curl: `path` starts with
    /// `/v2/` (or is a whole URL, such as an upload's `Location`), `headers` are `Name: value` lines, `creds` as given (pass
    /// [`Registry::creds`] to authenticate).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        creds: Option<(&str, &str)>,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> Response {
        self.try_request(method, path, creds, headers, body)
            .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", self.log_tail()))
    }

    /// [`Registry::request`], with curl's failure (no connection, a
    /// timeout) as the error.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        creds: Option<(&str, &str)>,
        headers: &[&str],
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "--noproxy",
            "*",
            "--max-time",
            "60",
            "-X",
            method,
            "-o",
            "-",
        ])
        .arg("-w")
        .arg(
            "%{stderr}%{http_code}\n%{content_type}\n\
                 %header{docker-content-digest}\n%header{location}\n",
        );
        if let Some((user, pass)) = creds {
            cmd.arg("-u").arg(format!("{user}:{pass}"));
        }
        for h in headers {
            cmd.arg("-H").arg(h);
        }
        // Not curl's default form content type: distribution would parse
        // the body as a form (and a blob PUT would fail with DIGEST_INVALID).
        let has = |name: &str| {
            headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with(name))
        };
        if !has("content-type:") {
            cmd.args(["-H", "Content-Type:"]);
        }
        if !has("expect:") {
            cmd.args(["-H", "Expect:"]);
        }
        let mut input = tempfile::tempfile().unwrap();
        if let Some(body) = body {
            cmd.args(["--data-binary", "@-"]);
            input.write_all(body).unwrap();
            input.seek(SeekFrom::Start(0)).unwrap();
        }
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        if path.starts_with("http://") || path.starts_with("https://") {
            cmd.arg(path);
        } else {
            cmd.arg(format!("{}{path}", self.url()));
        }
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        let out = cmd.stdin(input).output().expect("running curl");
        let meta = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut lines = meta.lines().map(|l| l.trim().to_string());
        let mut next = || lines.next().unwrap_or_default();
        let status = next().parse().unwrap_or(0);
        if !out.status.success() || status == 0 {
            return Err(format!(
                "curl {method} {path} failed ({}): {meta}",
                out.status
            ));
        }
        Ok(Response {
            status,
            content_type: next(),
            digest: next(),
            location: next(),
            body: out.stdout,
        })
    }

    /// The manifest or index `reference` (`repo:tag` or `repo@digest`)
    /// points to, as stored, and its media type (Content-Type).
    pub fn raw_manifest(&self, reference: &str) -> (Vec<u8>, String) {
        let (repo, tag) = split_reference(reference);
        let accept =
            format!("Accept: {OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_LIST}, {DOCKER_MANIFEST}");
        let r = self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{tag}"),
            self.creds(),
            &[&accept],
            None,
        );
        assert_eq!(
            r.status,
            200,
            "GET manifest {reference}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&r.body),
            self.log_tail()
        );
        (r.body, r.content_type)
    }

    /// PUTs a hand-built manifest or index as `repo:reference`; returns its
    /// digest (`sha256:...`, the sha256 of `body`).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            self.creds(),
            &[&format!("Content-Type: {media_type}")],
            Some(body),
        );
        assert_eq!(
            r.status,
            201,
            "PUT manifest {repo}:{reference}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&r.body),
            self.log_tail()
        );
        assert_eq!(
            r.digest,
            sha256_digest(body),
            "the registry's digest of {repo}:{reference}"
        );
        r.digest
    }

    /// Builds an OCI image index of manifests already pushed as
    /// `repo:TAG`, one per `(os/arch[/variant], TAG)`, PUTs it as
    /// `repo:tag` and returns its digest.
    pub fn image_index(&self, repo: &str, tag: &str, platforms: &[(&str, &str)]) -> String {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .map(|(platform, pushed)| {
                let (body, media_type) = self.raw_manifest(&format!("{repo}:{pushed}"));
                let mut parts = platform.split('/');
                let mut p = serde_json::json!({
                    "os": parts.next().unwrap(),
                    "architecture": parts.next().expect("os/arch[/variant]"),
                });
                if let Some(variant) = parts.next() {
                    p["variant"] = variant.into();
                }
                serde_json::json!({
                    "mediaType": media_type,
                    "digest": sha256_digest(&body),
                    "size": body.len(),
                    "platform": p,
                })
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        self.put_manifest(repo, tag, OCI_INDEX, index.to_string().as_bytes())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `sha256:` and the hex sha256 of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", ferry::hex(&Sha256::digest(data)))
}

/// `repo:tag` or `repo@digest` split into the repository and the tag or
/// digest.
fn split_reference(reference: &str) -> (&str, &str) {
    reference
        .split_once('@')
        .or_else(|| reference.rsplit_once(':'))
        .unwrap_or_else(|| panic!("{reference:?} is not repo:tag or repo@digest"))
}

/// Runs the openssl tool in `dir`, asserting success; its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA and a certificate for 127.0.0.1 it signed, made with openssl in
/// `dir`: (certificate, key, CA certificate).
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        openssl(dir, args);
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ferry test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    )
}
