//! Who to be at a registry when the user named no one: what `docker login`
//! left in the Docker CLI's config.json, asked of the credential helper it
//! names (`credHelpers`, `credsStore`) or read from its `auths`.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

/// The user and password the Docker CLI would use for `registry`: its
/// credential helper for that registry, else its credentials store, else
/// the `auths` entry. None when none of them knows the registry.
pub fn docker_credentials(registry: &str) -> Option<(String, String)> {
    let path = crate::docker::context::config_dir().join("config.json");
    let text = std::fs::read_to_string(path).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let keys = server_keys(registry);
    let helper = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| keys.iter().find_map(|k| h.get(k)))
        .or_else(|| config.get("credsStore"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty());
    if let Some(helper) = helper {
        return ask_helper(helper, &keys[0]);
    }
    let auths = config.get("auths")?.as_object()?;
    let entry = keys.iter().find_map(|k| auths.get(k))?;
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str())
        && let Ok(decoded) = STANDARD_PAD_INDIFFERENT.decode(auth)
        && let Ok(text) = String::from_utf8(decoded)
        && let Some((u, p)) = text.split_once(':')
    {
        return Some((u.to_string(), p.to_string()));
    }
    let u = entry.get("username")?.as_str()?;
    let p = entry.get("password")?.as_str()?;
    Some((u.to_string(), p.to_string()))
}

/// `Basic` credentials as an Authorization header value.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The names config.json may file `registry` under, the one the Docker CLI
/// writes first (and hands to a credential helper).
fn server_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io" || registry == "index.docker.io" {
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
    }
}

/// Runs `docker-credential-HELPER get` with the server's name on stdin, as
/// the Docker CLI does; its JSON answer holds `Username` and `Secret`. A
/// helper that is missing, fails or does not know the server gives none.
fn ask_helper(helper: &str, server: &str) -> Option<(String, String)> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let user = answer.get("Username")?.as_str()?;
    let secret = answer.get("Secret")?.as_str()?;
    (!secret.is_empty()).then(|| (user.to_string(), secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_docker_login_writes_it() {
        for (text, want) in [("dXNlcjpwYXNz", "user:pass"), ("YQ==", "a"), ("YQ", "a")] {
            let got = STANDARD_PAD_INDIFFERENT.decode(text).unwrap();
            assert_eq!(got, want.as_bytes());
        }
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}
