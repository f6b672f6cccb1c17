//! The one error shape of the API and the admin socket.

use serde::{Deserialize, Serialize};

/// The one error shape of the API: `{ "error": { "code", "message" } }`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorBody {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub error: ErrorDetail,
}

/// What failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable code; each operation lists its codes in `x-error-codes`.
    pub code: String,
    /// For people.
    pub message: String,
}
