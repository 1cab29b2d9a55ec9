//! New objects collected into pack files.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

/// Flush the pack once this many compressed bytes are pending.
pub(super) const PACK_FLUSH_BYTES: usize = 64 * 1024 * 1024;

/// New objects, compressed and collected into one pack file instead of
/// thousands of loose files: far fewer filesystem operations for writer and
/// reader alike. The branch only moves after the pack holding its objects is
/// in place. Objects are stored whole (no deltas), which keeps writing simple.
pub(super) struct PackBuffer {
    /// Pack data so far: a 12-byte header (count patched at flush), then entries.
    bytes: Vec<u8>,
    count: u32,
    pub(super) pending_bytes: usize,
    /// Ids already added in this run (the repo cannot see unflushed ones).
    added: HashSet<gix::ObjectId>,
}

pub(super) const PACK_HEADER_LEN: usize = 12;

impl Default for PackBuffer {
    fn default() -> Self {
        PackBuffer {
            bytes: vec![0; PACK_HEADER_LEN],
            count: 0,
            pending_bytes: 0,
            added: HashSet::new(),
        }
    }
}

impl PackBuffer {
    pub(super) fn add_object(
        &mut self,
        repo: &gix::Repository,
        object: &impl gix::objs::WriteTo,
    ) -> anyhow::Result<gix::ObjectId> {
        let mut buf = Vec::new();
        object.write_to(&mut buf)?;
        self.add(repo, object.kind(), &buf)
    }

    pub(super) fn add(
        &mut self,
        repo: &gix::Repository,
        kind: gix::objs::Kind,
        data: &[u8],
    ) -> anyhow::Result<gix::ObjectId> {
        use std::io::Write;
        let id = gix::objs::compute_hash(repo.object_hash(), kind, data)?;
        if !self.added.insert(id) || repo.has_object(id) {
            return Ok(id);
        }
        let before = self.bytes.len();
        let type_id: u8 = match kind {
            gix::objs::Kind::Commit => 1,
            gix::objs::Kind::Tree => 2,
            gix::objs::Kind::Blob => 3,
            gix::objs::Kind::Tag => 4,
        };
        // Entry header: type and size, little-endian base-128 after the first 4 bits.
        let size = data.len() as u64;
        let mut byte = (type_id << 4) | (size & 0x0f) as u8;
        let mut rest = size >> 4;
        while rest != 0 {
            self.bytes.push(byte | 0x80);
            byte = (rest & 0x7f) as u8;
            rest >>= 7;
        }
        self.bytes.push(byte);
        let mut deflate = gix::zlib::stream::deflate::Write::new(
            std::mem::take(&mut self.bytes),
            gix::zlib::Compression::BEST_SPEED,
        );
        deflate.write_all(data)?;
        deflate.flush()?;
        self.bytes = deflate.into_inner();
        self.count += 1;
        self.pending_bytes += self.bytes.len() - before;
        Ok(id)
    }

    /// Writes the pending objects as one pack with its index.
    pub(super) fn flush(&mut self, repo: &gix::Repository) -> anyhow::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let mut bytes = std::mem::replace(&mut self.bytes, vec![0; PACK_HEADER_LEN]);
        let count = std::mem::take(&mut self.count);
        self.pending_bytes = 0;
        bytes[..4].copy_from_slice(b"PACK");
        bytes[4..8].copy_from_slice(&2u32.to_be_bytes());
        bytes[8..12].copy_from_slice(&count.to_be_bytes());
        let mut hasher = gix::hash::hasher(repo.object_hash());
        hasher.update(&bytes);
        bytes.extend_from_slice(hasher.try_finalize()?.as_bytes());

        let dir = repo.common_dir().join("objects").join("pack");
        std::fs::create_dir_all(&dir)?;
        gix::odb::pack::Bundle::write_to_directory(
            &mut bytes.as_slice(),
            Some(&dir),
            &mut gix::progress::Discard,
            &AtomicBool::new(false),
            None::<gix::objs::find::Never>,
            repo.object_hash(),
            gix::odb::pack::bundle::write::Options::default(),
        )?;
        Ok(())
    }
}
