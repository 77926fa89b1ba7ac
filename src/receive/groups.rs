//! Delta groups as they arrive: queued, then rebuilt several at once on
//! both cores (decoded against their bases, checked against their BLAKE3,
//! cut into chunks and encoded for the store), and stored in pack order.
//! An update pack is mostly groups, so rebuilding them one at a time left
//! a core idle for most of an unpack.

use super::Unpacker;
use super::rebuild;
use crate::error::Result;
use crate::pack::GroupRecord;
use crate::pack::recipe::Src;

/// Groups rebuilt together at most.
const GROUPS_AT_ONCE: usize = 16;
/// Output bytes of the groups queued, from which they are rebuilt.
const GROUP_BYTES: u64 = 8 << 20;

impl Unpacker<'_, '_> {
    /// Queues a group record, rebuilding the queue when it is full. A group
    /// whose bases include chunks of a group still queued has that one
    /// stored first, so its bases resolve.
    pub(super) fn queue_group(&mut self, g: GroupRecord) -> Result<()> {
        let placed = self.tables.first + self.tables.pack.len() as u64;
        if g.bases
            .iter()
            .any(|b| b.src == Src::Pack && b.index >= placed)
        {
            self.store_groups()?;
        }
        self.groups.push(g);
        let queued: u64 = self.groups.iter().map(GroupRecord::out_len).sum();
        if self.groups.len() >= GROUPS_AT_ONCE || queued >= GROUP_BYTES {
            self.store_groups()?;
        }
        Ok(())
    }

    /// Rebuilds the queued groups and stores those of their chunks the
    /// store lacks, in pack order.
    pub(super) fn store_groups(&mut self) -> Result<()> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let groups = std::mem::take(&mut self.groups);
        let rebuilt =
            rebuild::rebuild_groups(self.txn, &mut self.data, &groups, &self.tables, self.label)?;
        for (g, r) in groups.iter().zip(rebuilt) {
            self.report.delta_bytes += g.wire_len as u64;
            for (k, (id, (codec, payload))) in r.ids.iter().zip(r.encoded).enumerate() {
                self.report.chunks += 1;
                self.report.delta_chunks += 1;
                // A chunk the store holds (from another pack, or repeated
                // within this one) is stored once.
                let row = match self.txn.chunk_rowid(id)? {
                    Some(row) => row,
                    None => self.store_new(id, codec, g.lens[k], &payload)?,
                };
                self.tables.pack.push(Some(row));
            }
        }
        Ok(())
    }
}
