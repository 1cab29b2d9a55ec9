//! Reading blobs from the forge: `git/blobs/{sha}` one by one, or up to 50 a
//! call with `git/blobs?shas=` where the forge serves it (Forgejo 12 and
//! later, asked once with `GET /version`); and a blob over the forge's size
//! cap (sent without content) as the file at the listed commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::wire::{Blob, BlobContent, blob_content, check_object_id};
use super::{ForgeSource, Inner};
use crate::source::{FileBody, FileEntry, SourceError};

/// Most blobs asked in one batch call (Forgejo's limit).
const BATCH: usize = 50;

#[derive(Deserialize)]
struct Version {
    version: Option<String>,
}

impl ForgeSource {
    /// Whether the forge reads up to 50 blobs a call (Forgejo 12 and later);
    /// asks `GET /version` the first time.
    pub async fn reads_in_batches(&self) -> bool {
        self.inner.serves_blob_batches().await
    }

    /// Bodies of `files` in order; files over `max_bytes` are not downloaded.
    /// `head` is the commit the files were listed at: a blob the forge sends
    /// without content (over its size cap) is read as that commit's file.
    pub async fn read(
        &self,
        head: &str,
        files: &[FileEntry],
        max_bytes: u64,
    ) -> Result<Vec<FileBody>, SourceError> {
        let mut bodies: Vec<Option<FileBody>> = vec![None; files.len()];
        let mut wanted = Vec::with_capacity(files.len());
        for (index, file) in files.iter().enumerate() {
            match file.size.filter(|s| *s > max_bytes) {
                Some(size) => bodies[index] = Some(FileBody::TooLarge { size }),
                None => wanted.push(index),
            }
        }
        if wanted.len() > 1 && self.inner.serves_blob_batches().await {
            for chunk in wanted.chunks(BATCH) {
                for (index, body) in self.inner.read_batch(head, files, chunk, max_bytes).await? {
                    bodies[index] = Some(body);
                }
            }
        } else {
            self.read_singles(head, files, wanted, max_bytes, &mut bodies)
                .await?;
        }
        Ok(bodies
            .into_iter()
            .map(|b| b.expect("every file has a body when no download failed"))
            .collect())
    }

    /// Reads `files[i]` for each `i` of `wanted` one blob at a time, a few in
    /// flight, into `bodies`; the first failing file (in file order) is the error.
    async fn read_singles(
        &self,
        head: &str,
        files: &[FileEntry],
        wanted: Vec<usize>,
        max_bytes: u64,
        bodies: &mut [Option<FileBody>],
    ) -> Result<(), SourceError> {
        let permits = Arc::new(Semaphore::new(self.inner.options.blob_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for index in wanted {
            let inner = Arc::clone(&self.inner);
            let permits = Arc::clone(&permits);
            let file = files[index].clone();
            let head = head.to_string();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("never closed");
                (index, inner.read_blob(&file, &head, max_bytes).await)
            });
        }
        let mut first_error: Option<(usize, SourceError)> = None;
        while let Some(joined) = tasks.join_next().await {
            let (index, result) = match joined {
                Ok(done) => done,
                // Cancelled by `abort_all` below: the failure that caused it is the one to report.
                Err(e) if e.is_cancelled() && first_error.is_some() => continue,
                Err(e) => {
                    return Err(self.inner.error(format!(
                        "downloading {} blob(s) stopped: a download task failed ({e}); \
                         the next pass retries, report it if it keeps happening",
                        files.len()
                    )));
                }
            };
            match result {
                Ok(body) => bodies[index] = Some(body),
                Err(e) => {
                    // Stop downloading the rest: this node is halted for this pass anyway.
                    tasks.abort_all();
                    if first_error.as_ref().is_none_or(|(i, _)| index < *i) {
                        first_error = Some((index, e));
                    }
                }
            }
        }
        match first_error {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

impl Inner {
    async fn read_blob(
        &self,
        file: &FileEntry,
        head: &str,
        max_bytes: u64,
    ) -> Result<FileBody, SourceError> {
        check_object_id(&file.blob_id).map_err(|e| self.error(format!("{}: {e}", file.path)))?;
        let what = format!("{} (blob {})", file.path, file.blob_id);
        let blob = self
            .get_json::<Blob>(&["git", "blobs", &file.blob_id], &[], &what)
            .await?
            .ok_or_else(|| {
                self.error(format!(
                    "{what} was not found; the branch was probably force-pushed meanwhile, \
                     the next pass reads the new head"
                ))
            })?;
        self.finish_blob(file, head, blob, max_bytes).await
    }

    /// Whether the forge serves `git/blobs?shas=` (Forgejo 12 and later),
    /// from `GET /version`, asked once per source; no answer means no.
    async fn serves_blob_batches(&self) -> bool {
        if self.batches_refused.load(Ordering::Relaxed) {
            return false;
        }
        if let Some(known) = self.blob_batches.get() {
            return *known;
        }
        let mut url = self.api.clone();
        url.path_segments_mut()
            .expect("http(s) URLs can be a base")
            .pop_if_empty()
            .push("version");
        let version = match self.get_with_retries(&url, "the forge version").await {
            Ok(Some(body)) => serde_json::from_slice::<Version>(&body)
                .ok()
                .and_then(|v| v.version),
            _ => None,
        };
        let major = version.as_deref().and_then(|v| {
            v.trim_start_matches('v')
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
        let batches = major.is_some_and(|m| m >= 12);
        tracing::debug!(version = ?version, batches, "forge version");
        *self.blob_batches.get_or_init(|| batches)
    }

    /// Reads `files[i]` for each `i` of `chunk` (at most 50) in one call. When
    /// the call fails (one unknown sha fails it whole, with 400), or leaves a
    /// blob out, those files are read one by one, which names the one that fails.
    async fn read_batch(
        &self,
        head: &str,
        files: &[FileEntry],
        chunk: &[usize],
        max_bytes: u64,
    ) -> Result<Vec<(usize, FileBody)>, SourceError> {
        let mut shas = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let file = &files[i];
            check_object_id(&file.blob_id)
                .map_err(|e| self.error(format!("{}: {e}", file.path)))?;
            shas.push(file.blob_id.as_str());
        }
        let what = format!(
            "{} blobs of {} … {}",
            chunk.len(),
            files[chunk[0]].path,
            files[chunk[chunk.len() - 1]].path
        );
        let answer = self
            .get_json::<Vec<Blob>>(&["git", "blobs"], &[("shas", shas.join(","))], &what)
            .await;
        let mut by_sha: HashMap<String, Blob> = match answer {
            Ok(Some(blobs)) => blobs
                .into_iter()
                .filter_map(|b| Some((b.sha.clone()?.to_ascii_lowercase(), b)))
                .collect(),
            Ok(None) => {
                // Forgejo answers unknown shas with 400: a 404 (or 405) is the
                // endpoint itself missing, whatever the version said.
                if !self.batches_refused.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        forge = %self.shown,
                        repo = %format!("{}/{}", self.owner, self.name),
                        "the forge has no batch blob endpoint (git/blobs?shas= answered 404 or 405); reading blobs one by one"
                    );
                }
                HashMap::new()
            }
            Err(_) => HashMap::new(),
        };
        let mut out = Vec::with_capacity(chunk.len());
        for &i in chunk {
            let file = &files[i];
            let body = match by_sha.remove(&file.blob_id.to_ascii_lowercase()) {
                Some(blob) => self.finish_blob(file, head, blob, max_bytes).await?,
                None => self.read_blob(file, head, max_bytes).await?,
            };
            out.push((i, body));
        }
        Ok(out)
    }

    /// Checks a blob answer and returns the file's bytes: from its base64
    /// content, or read as the file at `head` when the forge sent it without
    /// content (over its size cap); they must hash to the blob id.
    async fn finish_blob(
        &self,
        file: &FileEntry,
        head: &str,
        blob: Blob,
        max_bytes: u64,
    ) -> Result<FileBody, SourceError> {
        let what = format!("{} (blob {})", file.path, file.blob_id);
        if let Some(size) = blob.size.filter(|s| *s > max_bytes) {
            return Ok(FileBody::TooLarge { size });
        }
        let (bytes, raw) = match blob_content(blob, &file.blob_id)
            .map_err(|e| self.error(format!("{what}: {e}")))?
        {
            BlobContent::Bytes(bytes) => (bytes, false),
            BlobContent::OverCap => (self.read_raw(file, head, &what).await?, true),
        };
        if bytes.len() as u64 > max_bytes {
            return Ok(FileBody::TooLarge {
                size: bytes.len() as u64,
            });
        }
        // The blob id is the hash of the content: a mismatch means a damaged answer.
        let actual = gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, &bytes)
            .map_err(|e| self.error(format!("{what}: cannot hash the content ({e})")))?;
        if !actual.to_string().eq_ignore_ascii_case(&file.blob_id) {
            return Err(self.error(if raw {
                format!(
                    "{what}: the forge sent this blob without content (it is over the server's \
                     [api] DEFAULT_MAX_BLOB_SIZE), and the file read instead at commit {head} \
                     hashes to {actual}, not to the blob id; the answer was damaged or a proxy \
                     changed it. The next pass retries; raising DEFAULT_MAX_BLOB_SIZE on the \
                     forge above --max-file-bytes lets the blob itself be read"
                )
            } else {
                format!(
                    "{what}: downloaded content hashes to {actual}, not to the blob id; the \
                     answer was damaged"
                )
            }));
        }
        Ok(FileBody::Data(bytes))
    }

    /// The bytes of `file` at commit `head`, through the raw file endpoint,
    /// which serves files of any size.
    async fn read_raw(
        &self,
        file: &FileEntry,
        head: &str,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let mut segments = vec!["raw"];
        segments.extend(file.path.split('/'));
        let url = self.url(&segments, &[("ref", head.to_string())]);
        self.get_with_retries(&url, what).await?.ok_or_else(|| {
            self.error(format!(
                "{what}: the forge sent this blob without content (it is over the server's \
                 [api] DEFAULT_MAX_BLOB_SIZE), and the file at commit {head} was not found \
                 (404 on GET {}); the branch was probably force-pushed meanwhile, the next pass \
                 reads the new head",
                url.path()
            ))
        })
    }
}
