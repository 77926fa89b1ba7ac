//! Signing keys for packs: `ferry key generate` writes an ed25519 key pair
//! (secret key file, mode 0600, and `NAME.pub`), `ferry pack --sign NAME`
//! signs with it, and a receiving store's trust list (`ferry trust add`)
//! decides which signers `ferry unpack` accepts.
//!
//! Key files are one line of text: `ferry-ed25519-secret-v1 HEX` and
//! `ferry-ed25519-v1 HEX COMMENT`.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Error, IoContext, Result};
use crate::store::{Store, Txn};

const SECRET_TAG: &str = "ferry-ed25519-secret-v1";
const PUBLIC_TAG: &str = "ferry-ed25519-v1";

pub use crate::store::TrustedKey;

/// The path of the public half: `NAME.pub`.
pub fn public_path(secret: &Path) -> PathBuf {
    let mut p = secret.as_os_str().to_os_string();
    p.push(".pub");
    PathBuf::from(p)
}

/// Writes a new key pair: the secret key to `path` (mode 0600, never
/// overwriting) and the public key to `path.pub`. Returns the public key.
pub fn generate(path: &Path, comment: &str) -> Result<VerifyingKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Error::Invalid(format!("the system has no randomness to offer: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let public = public_path(path);
    for p in [path, public.as_path()] {
        if p.exists() {
            return Err(Error::Invalid(format!(
                "{} exists: choose another name (keys are never overwritten)",
                p.display()
            )));
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .ctx(|| format!("creating {}", path.display()))?;
    writeln!(f, "{SECRET_TAG} {}", crate::hex(key.as_bytes()))
        .and_then(|()| f.sync_all())
        .ctx(|| format!("writing {}", path.display()))?;
    let comment = comment.replace(['\n', '\r'], " ");
    std::fs::write(
        &public,
        format!(
            "{PUBLIC_TAG} {} {comment}\n",
            crate::hex(key.verifying_key().as_bytes())
        ),
    )
    .ctx(|| format!("writing {}", public.display()))?;
    Ok(key.verifying_key())
}

fn read_line(path: &Path, what: &str) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NotFound(path.to_path_buf()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Error::Invalid(format!(
            "{} is not a ferry {what} key file",
            path.display()
        ))),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Loads a secret key written by [`generate`].
pub fn load_secret(path: &Path) -> Result<SigningKey> {
    let text = read_line(path, "secret")?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next().and_then(crate::unhex32)) {
        (Some(SECRET_TAG), Some(bytes)) => Ok(SigningKey::from_bytes(&bytes)),
        (Some(PUBLIC_TAG), _) => Err(Error::Invalid(format!(
            "{} is a public key: --sign needs the secret key file (without .pub)",
            path.display()
        ))),
        _ => Err(Error::Invalid(format!(
            "{} is not a ferry secret key file (ferry key generate -o NAME makes one)",
            path.display()
        ))),
    }
}

/// Loads a public key (a `.pub` file) and its comment.
pub fn load_public(path: &Path) -> Result<(VerifyingKey, String)> {
    let text = read_line(path, "public")?;
    let line = text.lines().next().unwrap_or("");
    let mut words = line.splitn(3, ' ');
    match (words.next(), words.next().and_then(crate::unhex32)) {
        (Some(PUBLIC_TAG), Some(bytes)) => {
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
                Error::Invalid(format!("{} holds an invalid ed25519 key", path.display()))
            })?;
            Ok((key, words.next().unwrap_or("").trim().to_string()))
        }
        (Some(SECRET_TAG), _) => Err(Error::Invalid(format!(
            "{} is a secret key: trust its .pub file instead, and keep the secret one on the sending side",
            path.display()
        ))),
        _ => Err(Error::Invalid(format!(
            "{} is not a ferry public key file (NAME.pub from ferry key generate)",
            path.display()
        ))),
    }
}

/// The store's trusted keys (none: any pack is accepted, signed or not).
pub fn trusted(store: &Store) -> Result<Vec<TrustedKey>> {
    store.trusted_keys()
}

/// Trusts a key; true when it was new.
pub fn trust(txn: &mut Txn<'_>, key: &VerifyingKey, comment: &str) -> Result<bool> {
    txn.trust_key(key.as_bytes(), comment)
}

/// Stops trusting the key whose hex starts with `prefix`; returns it.
pub fn untrust(txn: &mut Txn<'_>, prefix: &str) -> Result<TrustedKey> {
    let matches: Vec<TrustedKey> = trusted(txn.store())?
        .into_iter()
        .filter(|k| crate::hex(&k.key).starts_with(&prefix.to_ascii_lowercase()))
        .collect();
    match matches.as_slice() {
        [k] => {
            txn.untrust_key(&k.key)?;
            Ok(k.clone())
        }
        [] => Err(Error::Invalid(format!(
            "no trusted key starts with '{prefix}': see 'ferry trust list'"
        ))),
        _ => Err(Error::Invalid(format!(
            "several trusted keys start with '{prefix}': give more of it"
        ))),
    }
}
