//! Which Docker daemon to talk to, in the docker CLI's order:
//! `--docker-host` / `$DOCKER_HOST`, then the context `$DOCKER_CONTEXT`
//! names, then the `currentContext` of `$DOCKER_CONFIG/config.json`
//! (default `~/.docker/config.json`), then the default socket. A named
//! context's endpoint is read from
//! `$DOCKER_CONFIG/contexts/meta/<sha256 of its name>/meta.json`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::DEFAULT_HOST;

/// The daemon to reach, and the context that named it (if one did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix://PATH`, `tcp://HOST:PORT`, ...
    pub host: String,
    /// The Docker context the host came from.
    pub context: Option<String>,
}

/// Resolves the daemon: `explicit` (`--docker-host`), else `$DOCKER_HOST`,
/// else the Docker context (`$DOCKER_CONTEXT`, else `currentContext`),
/// else the default socket. The context "default" is the default socket.
pub fn resolve(explicit: Option<&str>) -> Result<Endpoint> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(host) = explicit.filter(|h| !h.is_empty()).map(str::to_owned) {
        return Ok(Endpoint {
            host,
            context: None,
        });
    }
    if let Some(host) = var("DOCKER_HOST") {
        return Ok(Endpoint {
            host,
            context: None,
        });
    }
    let config = config_dir();
    let (name, from) = match var("DOCKER_CONTEXT") {
        Some(name) => (name, "$DOCKER_CONTEXT".to_string()),
        None => match current_context(&config) {
            Some(name) => (
                name,
                format!("currentContext in {}", config.join("config.json").display()),
            ),
            None => (String::from("default"), String::new()),
        },
    };
    if name == "default" {
        return Ok(Endpoint {
            host: DEFAULT_HOST.to_string(),
            context: None,
        });
    }
    let host = context_host(&config, &name, &from)?;
    Ok(Endpoint {
        host,
        context: Some(name),
    })
}

/// `$DOCKER_CONFIG`, else `~/.docker`.
pub(crate) fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs::home_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".docker"),
    }
}

/// The `currentContext` of `config.json`, if it names one. A missing or
/// unreadable file names none (the docker CLI only warns about one it
/// cannot parse).
fn current_context(config: &Path) -> Option<String> {
    let text = std::fs::read(config.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v.get("currentContext")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The directory name docker gives a context: the SHA-256 of its name, hex.
fn context_dir(name: &str) -> String {
    crate::hex(&Sha256::digest(name.as_bytes()))
}

/// The Docker endpoint of the context `name` (named by `from`).
fn context_host(config: &Path, name: &str, from: &str) -> Result<String> {
    let hash = context_dir(name);
    let meta = config.join("contexts/meta").join(&hash).join("meta.json");
    let text = match std::fs::read(&meta) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Docker(format!(
                "Docker context '{name}' (from {from}) does not exist in {}: 'docker context ls' lists the contexts; choose one with DOCKER_CONTEXT or 'docker context use', or give --docker-host",
                config.display()
            )));
        }
        Err(e) => return Err(Error::io(format!("reading {}", meta.display()), e)),
    };
    let bad = |why: &str| {
        Error::Docker(format!(
            "Docker context '{name}' ({}) {why}: 'docker context inspect {name}' shows it; give --docker-host to bypass it",
            meta.display()
        ))
    };
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|_| bad("is not valid JSON"))?;
    let host = v
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no Docker endpoint (Endpoints.docker.Host)"))?;
    let tls = config.join("contexts/tls").join(&hash).join("docker");
    if host.starts_with("tcp://") && tls.exists() {
        return Err(bad(
            "connects with TLS client certificates, which ferry does not support",
        ));
    }
    Ok(host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_directories_are_the_sha256_of_the_name() {
        // What `docker context create myctx` names its directory.
        assert_eq!(
            context_dir("myctx"),
            "b7dd5ada797513b6d710c626fc86ceafdc1747c4c4375a2213c763d9060c1720"
        );
    }

    #[test]
    fn a_context_reads_its_docker_host_and_a_missing_one_says_how_to_list() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("contexts/meta").join(context_dir("x"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("meta.json"),
            r#"{"Name":"x","Metadata":{},"Endpoints":{"docker":{"Host":"unix:///s","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        assert_eq!(context_host(t.path(), "x", "test").unwrap(), "unix:///s");
        let e = context_host(t.path(), "y", "test").unwrap_err().to_string();
        assert!(e.contains("'y'") && e.contains("docker context ls"), "{e}");
        std::fs::write(dir.join("meta.json"), r#"{"Name":"x","Endpoints":{}}"#).unwrap();
        let e = context_host(t.path(), "x", "test").unwrap_err().to_string();
        assert!(e.contains("no Docker endpoint"), "{e}");
        std::fs::write(t.path().join("config.json"), r#"{"currentContext":"x"}"#).unwrap();
        assert_eq!(current_context(t.path()).as_deref(), Some("x"));
    }
}
