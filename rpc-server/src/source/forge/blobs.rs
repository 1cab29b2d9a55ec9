//! Reading blobs from the forge: `git/blobs/{sha}`, and a blob over the
//! forge's size cap (sent without content) as the file at the listed commit.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{ForgeSource, Inner, check_id};
use crate::source::{FileBody, FileEntry, SourceError};

#[derive(Deserialize)]
struct Blob {
    content: Option<String>,
    encoding: Option<String>,
    sha: Option<String>,
    size: Option<u64>,
}

impl ForgeSource {
    /// Bodies of `files` in order; files over `max_bytes` are not downloaded.
    /// `head` is the commit the files were listed at: a blob the forge sends
    /// without content (over its size cap) is read as that commit's file.
    pub async fn read(
        &self,
        head: &str,
        files: &[FileEntry],
        max_bytes: u64,
    ) -> Result<Vec<FileBody>, SourceError> {
        let permits = Arc::new(Semaphore::new(self.inner.options.blob_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut bodies: Vec<Option<FileBody>> = vec![None; files.len()];
        for (index, file) in files.iter().enumerate() {
            if let Some(size) = file.size.filter(|s| *s > max_bytes) {
                bodies[index] = Some(FileBody::TooLarge { size });
                continue;
            }
            let inner = Arc::clone(&self.inner);
            let permits = Arc::clone(&permits);
            let file = file.clone();
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
        if let Some((_, e)) = first_error {
            return Err(e);
        }
        Ok(bodies
            .into_iter()
            .map(|b| b.expect("every file has a body when no download failed"))
            .collect())
    }
}

impl Inner {
    async fn read_blob(
        &self,
        file: &FileEntry,
        head: &str,
        max_bytes: u64,
    ) -> Result<FileBody, SourceError> {
        check_id(&file.blob_id).map_err(|e| self.error(format!("{}: {e}", file.path)))?;
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
        if let Some(size) = blob.size.filter(|s| *s > max_bytes) {
            return Ok(FileBody::TooLarge { size });
        }
        if let Some(sha) = blob.sha.as_deref()
            && !sha.eq_ignore_ascii_case(&file.blob_id)
        {
            return Err(self.error(format!("{what}: the forge answered with blob {sha}")));
        }
        match blob.encoding.as_deref() {
            Some("base64") => {}
            other => {
                let found = other.map_or("no encoding".to_string(), |e| format!("encoding {e}"));
                return Err(self.error(format!(
                    "{what}: the forge answered with {found}, expected base64; check that \
                     --forge-url points at a Forgejo or Gitea server (API v1)"
                )));
            }
        }
        let content = blob.content.unwrap_or_default();
        // Forgejo sends a blob over its `[api] DEFAULT_MAX_BLOB_SIZE` (10 MiB by
        // default) with empty content and its real size: read the file instead.
        let raw = content.is_empty() && blob.size.is_some_and(|s| s > 0);
        let bytes = if raw {
            self.read_raw(file, head, &what).await?
        } else {
            let compact: String = content
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| self.error(format!("{what}: content is not valid base64 ({e})")))?
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
