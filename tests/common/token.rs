//! A token server for a registry with bearer-token auth (distribution's
//! `auth.token`): the registry sends clients to its realm, which checks
//! their Basic credentials and hands back a JWT for the scopes they asked
//! for, signed RS256 by a key whose certificate the registry trusts
//! (`rootcertbundle`, named in the token's `x5c` header). Signed by the
//! openssl tool; served on a free loopback port by a thread of the test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

pub const SERVICE: &str = "ferry-test-registry";
pub const ISSUER: &str = "ferry-test-tokens";

pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate that signs tokens (the registry's root bundle).
    pub cert: PathBuf,
}

impl TokenServer {
    /// Starts serving tokens to `user` with `pass`; keys made in `dir`.
    pub fn start(dir: &Path, user: &str, pass: &str) -> TokenServer {
        let openssl = |args: &[&str]| super::registry::openssl(dir, args);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=ferry-tokens",
            "-days",
            "2",
            "-keyout",
            "token.key",
            "-out",
            "token.pem",
        ]);
        let der = openssl(&["x509", "-in", "token.pem", "-outform", "DER"]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let basic = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        let key = dir.join("token.key");
        let x5c = STANDARD.encode(der);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = serve(conn, &basic, &key, &x5c);
            }
        });
        TokenServer {
            realm,
            cert: dir.join("token.pem"),
        }
    }
}

/// Answers one request: a token for the asked scopes when the Basic
/// credentials are right, else 401.
fn serve(conn: TcpStream, basic: &str, key: &Path, x5c: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut authorized = false;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorized = value.trim() == basic;
        }
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let (status, body) = if authorized {
        let token = sign(key, x5c, access);
        (
            "200 OK",
            serde_json::json!({ "token": token, "expires_in": 300 }),
        )
    } else {
        (
            "401 Unauthorized",
            serde_json::json!({ "details": "wrong user or password" }),
        )
    };
    let body = body.to_string();
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A JWT for `access`, RS256-signed with `key`.
fn sign(key: &Path, x5c: &str, access: Vec<serde_json::Value>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5c": [x5c] });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "ops", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now - 10,
        "jti": format!("{now}-{}", access.len()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -sign failed");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
}

/// `%XX` escapes and `+` undone.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
