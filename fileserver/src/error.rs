//! The one API error type: a stable machine code, an HTTP status and a short message.
//!
//! Error policy: every failure the client can see is an [`ApiError`] rendered as
//! `{"error":{"code":"…","message":"…"}}`. Codes are part of the API (README.md) and never
//! change meaning. Messages are for people; they name the path the client sent but never host
//! paths, tokens or errno internals of unexpected failures, which are logged instead.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nix::errno::Errno;
use serde::Serialize;

/// The stable error codes of the API. `as_str` is the wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: a malformed request (missing or invalid parameter).
    BadRequest,
    /// 400: a path with a NUL byte, an empty name where one is needed, or `..` as a name.
    InvalidPath,
    /// 400: a path or a name longer than the kernel allows.
    NameTooLong,
    /// 400: too many levels of symbolic links, or a symlink where none may be followed.
    SymlinkLoop,
    /// 400: moving a directory into itself.
    InvalidMove,
    /// 400: the path names something that is not a regular file or directory.
    NotAFile,
    /// 401: no or a wrong bearer token.
    Unauthorized,
    /// 403: the path resolves outside the workspace root.
    OutsideRoot,
    /// 403: the operating system refused the operation.
    PermissionDenied,
    /// 404: nothing at that path.
    NotFound,
    /// 404: no such API route.
    NoRoute,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the target exists and overwriting was not asked for.
    AlreadyExists,
    /// 409: a directory was expected.
    NotADirectory,
    /// 409: a directory was given where a file or an empty name was expected.
    IsADirectory,
    /// 409: deleting a non-empty directory without `recursive=true`.
    DirectoryNotEmpty,
    /// 409: rename across file systems.
    CrossDevice,
    /// 412: an `If-Match` / `If-Unmodified-Since` precondition failed.
    PreconditionFailed,
    /// 413: the upload exceeds the configured limit.
    PayloadTooLarge,
    /// 416: the `Range` lies outside the file.
    RangeNotSatisfiable,
    /// 500: anything unexpected; details are in the server log.
    Internal,
    /// 502: a relayed service (opencode, the terminal) failed to answer properly.
    BadGateway,
    /// 503: a relayed service is not accepting connections (yet); see `Retry-After`.
    UpstreamUnavailable,
    /// 502: nothing listens on the port a preview asked for.
    NothingListening,
    /// 507: the disk or the quota is full.
    InsufficientStorage,
}

impl Code {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::InvalidPath => "invalid_path",
            Code::NameTooLong => "name_too_long",
            Code::SymlinkLoop => "symlink_loop",
            Code::InvalidMove => "invalid_move",
            Code::NotAFile => "not_a_file",
            Code::Unauthorized => "unauthorized",
            Code::OutsideRoot => "outside_root",
            Code::PermissionDenied => "permission_denied",
            Code::NotFound => "not_found",
            Code::NoRoute => "no_route",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::AlreadyExists => "already_exists",
            Code::NotADirectory => "not_a_directory",
            Code::IsADirectory => "is_a_directory",
            Code::DirectoryNotEmpty => "directory_not_empty",
            Code::CrossDevice => "cross_device",
            Code::PreconditionFailed => "precondition_failed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RangeNotSatisfiable => "range_not_satisfiable",
            Code::Internal => "internal",
            Code::BadGateway => "bad_gateway",
            Code::UpstreamUnavailable => "upstream_unavailable",
            Code::NothingListening => "nothing_listening",
            Code::InsufficientStorage => "insufficient_storage",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BadRequest
            | Code::InvalidPath
            | Code::NameTooLong
            | Code::SymlinkLoop
            | Code::InvalidMove
            | Code::NotAFile => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::OutsideRoot | Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound | Code::NoRoute => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::AlreadyExists
            | Code::NotADirectory
            | Code::IsADirectory
            | Code::DirectoryNotEmpty
            | Code::CrossDevice => StatusCode::CONFLICT,
            Code::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::BadGateway | Code::NothingListening => StatusCode::BAD_GATEWAY,
            Code::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

/// An error on its way to the client. Build one with [`ApiError::new`] or from an [`Errno`]
/// with [`ApiError::fs`].
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The stable code.
    pub code: Code,
    /// A short human-readable message.
    pub message: String,
    /// Extra headers for the response (`Content-Range` on 416, `Allow` on 405).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Maps an errno from a file-system call on `what` (the client's path, for the message).
    ///
    /// `EXDEV` means "escapes the root" here because that is what `openat2` with
    /// `RESOLVE_BENEATH` reports; callers that rename map it themselves first.
    pub fn fs(errno: Errno, what: &str) -> Self {
        let (code, msg) = match errno {
            Errno::ENOENT => (Code::NotFound, "no such file or directory"),
            Errno::EXDEV => (Code::OutsideRoot, "path resolves outside the workspace"),
            Errno::ELOOP => (Code::SymlinkLoop, "too many or disallowed symbolic links"),
            Errno::EACCES | Errno::EPERM => (Code::PermissionDenied, "permission denied"),
            Errno::EROFS => (Code::PermissionDenied, "read-only file system"),
            Errno::EEXIST => (Code::AlreadyExists, "already exists"),
            Errno::ENOTEMPTY => (Code::DirectoryNotEmpty, "directory not empty"),
            Errno::ENOTDIR => (Code::NotADirectory, "not a directory"),
            Errno::EISDIR => (Code::IsADirectory, "is a directory"),
            Errno::ENAMETOOLONG => (Code::NameTooLong, "name too long"),
            Errno::ENOSPC | Errno::EDQUOT => (Code::InsufficientStorage, "no space left"),
            Errno::EINVAL => (Code::BadRequest, "invalid argument"),
            other => {
                tracing::error!(errno = %other, path = what, "unexpected file-system error");
                (Code::Internal, "internal error")
            }
        };
        ApiError::new(code, format!("{what}: {msg}"))
    }

    /// An internal error: logged in full, shown to the client as a short message.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        ApiError::new(Code::Internal, format!("{context}: internal error"))
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code.as_str(), message = %self.message, "request failed");
        } else {
            tracing::debug!(code = self.code.as_str(), message = %self.message, "request refused");
        }
        let body = Body {
            error: Inner {
                code: self.code.as_str(),
                message: &self.message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<Errno> for ApiError {
    fn from(errno: Errno) -> Self {
        ApiError::fs(errno, "path")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_wire_name() {
        let all = [
            Code::BadRequest,
            Code::InvalidPath,
            Code::NameTooLong,
            Code::SymlinkLoop,
            Code::InvalidMove,
            Code::NotAFile,
            Code::Unauthorized,
            Code::OutsideRoot,
            Code::PermissionDenied,
            Code::NotFound,
            Code::NoRoute,
            Code::MethodNotAllowed,
            Code::AlreadyExists,
            Code::NotADirectory,
            Code::IsADirectory,
            Code::DirectoryNotEmpty,
            Code::CrossDevice,
            Code::PreconditionFailed,
            Code::PayloadTooLarge,
            Code::RangeNotSatisfiable,
            Code::Internal,
            Code::BadGateway,
            Code::UpstreamUnavailable,
            Code::InsufficientStorage,
        ];
        let mut names: Vec<_> = all.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn escape_errno_maps_to_outside_root() {
        let e = ApiError::fs(Errno::EXDEV, "a/b");
        assert_eq!(e.code, Code::OutsideRoot);
        assert_eq!(e.code.status(), StatusCode::FORBIDDEN);
        assert!(e.message.starts_with("a/b:"));
    }
}
