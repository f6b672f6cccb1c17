//! The HTTP floor under every HTTP edge of octod (the API, the account routes, the proxy and
//! the admin socket): the one error type and what each domain error means in HTTP ([`error`]),
//! the JSON body extractor ([`body`]) and the same-origin check ([`origin`]).
//!
//! It depends on the domain (engine, accounts, services) and on none of the edges, which all
//! depend on it.

pub mod body;
pub mod error;
pub mod origin;
pub mod peer;

pub use body::{JsonBody, read_small_bodies};
pub use error::ApiError;
pub use origin::{has_bearer, is_same_origin, same_origin};
