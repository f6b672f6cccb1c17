//! The HTTP API of sessions and templates ([`sessions`]): thin handlers over
//! [`crate::service::sessions`]; the model gateway's usage book ([`usage`]). The accounts' routes are [`crate::auth::http`]; the router
//! that assembles them with the proxy, health and metrics is [`crate::app`].

pub mod sessions;
pub mod usage;
