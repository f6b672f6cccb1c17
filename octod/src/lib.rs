//! octod: the Octo daemon. Sessions as rootless Podman Quadlet units controlled through
//! systemd, the HTTP API, and the proxy into each session.
//!
//! `main.rs` only parses arguments and sets up logging; everything else lives here so that
//! tests drive the same code.

pub mod admin;
pub mod agent;
pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod content;
pub mod disk;
pub mod engine;
pub mod http;
pub mod identity;
pub mod image;
pub mod journal;
pub mod limits;
pub mod listen;
pub mod llm;
pub mod metrics;
pub mod podman;
pub mod proxy;
pub mod render;
pub mod serve;
pub mod service;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod systemd;
pub mod templates;

/// The version of this build, reported by `/api/health` and `octoctl status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
