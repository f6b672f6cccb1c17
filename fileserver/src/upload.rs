//! Uploads: the request body streamed to a staged file beside the target, synced, then
//! renamed into place.
//!
//! The body is never held in memory: chunks go through a small bounded channel to a writer
//! on the blocking pool. The size limit is enforced while streaming (and up front from
//! `Content-Length`). Any failure — the limit, a dropped connection, a full disk, the
//! handler being cancelled — drops the [`Staged`] file, which removes it, so a failed upload
//! leaves neither a partial target nor a stray temporary file. An upload that would pass the
//! user's storage quota (octod's `X-Octo-Quota`, [`crate::usage`]) is refused with 507 the
//! same way: up front from `Content-Length`, else as soon as the bytes cross it.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::confine::RelPath;
use crate::error::{ApiError, Code};
use crate::fsops::{self, Entry, Staged};
use crate::{AppState, blocking};

/// Chunks queued between the connection and the disk writer.
const QUEUE: usize = 16;
/// The writer's buffer: hyper's chunks are often small; the disk likes large writes.
const WRITE_BUFFER: usize = 1024 * 1024;

/// What the caller asked for.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Replace an existing file.
    pub overwrite: bool,
    /// Create missing parent directories.
    pub parents: bool,
}

/// `PUT /api/upload?path=…`: returns the new entry and whether something was replaced.
pub async fn upload(
    state: &Arc<AppState>,
    path: RelPath,
    opts: UploadOptions,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Entry), ApiError> {
    let limit = state.max_upload_bytes;
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!(
                "{}: upload larger than the limit of {limit} bytes",
                path.display()
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    // The user's storage quota, as octod measured it (none without the header).
    let quota = headers
        .get(crate::usage::QUOTA_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::usage::Quota::parse);
    let over_quota = |bytes: u64| {
        quota.filter(|q| q.refuses(bytes)).map(|q| {
            ApiError::new(
                Code::InsufficientStorage,
                format!(
                    "{}: the storage quota is full: {} of {} used, {} left; delete files to make room",
                    path.display(),
                    crate::usage::size(q.used),
                    crate::usage::size(q.limit),
                    crate::usage::size(q.remaining()),
                ),
            )
        })
    };
    if let Some(error) = over_quota(declared.unwrap_or(0)) {
        return Err(error);
    }

    let st = state.clone();
    let p = path.clone();
    let (staged, file, name) = blocking(move || {
        if opts.parents {
            fsops::mkdir_parents(&st.root, &p.parent())?;
        }
        let (dir, name) = st.root.parent(&p)?;
        let name = name.to_vec();
        if !opts.overwrite {
            fsops::refuse_existing(&dir, &name, &p)?;
        }
        let (staged, file) = Staged::file(dir, 0o666).map_err(|e| ApiError::fs(e, &p.display()))?;
        Ok((staged, file, name))
    })
    .await?;

    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        let file = out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        // Durable before it becomes visible under its name.
        file.sync_all()
    });

    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::info!(path = %path.display(), error = %e, "upload body failed");
            ApiError::new(
                Code::BadRequest,
                format!("{}: the upload was interrupted", path.display()),
            )
        })?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(too_large());
        }
        if let Some(error) = over_quota(total) {
            return Err(error);
        }
        if tx.send(chunk).await.is_err() {
            break; // the writer failed; its error is reported below
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ApiError::internal("upload writer", &e))?;
    if let Err(e) = written {
        return Err(match e.raw_os_error() {
            Some(n) => ApiError::fs(nix::errno::Errno::from_raw(n), &path.display()),
            None => ApiError::internal("writing upload", &e),
        });
    }
    if declared.is_some_and(|n| n != total) {
        return Err(ApiError::new(
            Code::BadRequest,
            "body shorter than Content-Length",
        ));
    }

    let st = state.clone();
    blocking(move || {
        let replaced = staged.commit(&name, opts.overwrite, &path)?;
        let entry = fsops::stat(&st.root, &path)?;
        Ok((
            if replaced {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            entry,
        ))
    })
    .await
}
