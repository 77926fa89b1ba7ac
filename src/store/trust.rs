//! The trust list: public keys whose signed packs this store accepts.

use rusqlite::params;
use serde::Serialize;

use super::schema::Table;
use super::{Store, Txn, now};
use crate::error::Result;

/// A trusted public key.
#[derive(Debug, Clone, Serialize)]
pub struct TrustedKey {
    /// The key, hex.
    #[serde(serialize_with = "hex_key")]
    pub key: [u8; 32],
    /// Comment from its .pub file.
    pub comment: String,
    /// When it was trusted (Unix seconds).
    pub added_at: i64,
}

fn hex_key<S: serde::Serializer>(k: &[u8; 32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::hex(k))
}

impl Store {
    /// The trusted keys, oldest first (none: any pack is accepted, signed
    /// or not).
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKey>> {
        if !self.schema.has(Table::TrustedKeys) {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT key, comment, added_at FROM trusted_keys ORDER BY added_at, key")?;
        let rows = stmt.query_map([], |r| {
            let key: Vec<u8> = r.get(0)?;
            Ok(TrustedKey {
                key: key.as_slice().try_into().unwrap_or([0; 32]),
                comment: r.get(1)?,
                added_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Txn<'_> {
    /// Trusts `key`; true when it was not trusted already.
    pub fn trust_key(&mut self, key: &[u8; 32], comment: &str) -> Result<bool> {
        let n = self.store.conn.execute(
            "INSERT OR IGNORE INTO trusted_keys (key, comment, added_at) VALUES (?1, ?2, ?3)",
            params![&key[..], comment, now()],
        )?;
        Ok(n > 0)
    }

    /// Stops trusting `key`; true when it was trusted.
    pub fn untrust_key(&mut self, key: &[u8; 32]) -> Result<bool> {
        let n = self
            .store
            .conn
            .execute("DELETE FROM trusted_keys WHERE key = ?1", [&key[..]])?;
        Ok(n > 0)
    }
}
