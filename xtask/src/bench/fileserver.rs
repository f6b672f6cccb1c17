//! `cargo xtask bench fileserver`: octo-fileserver against Caddy's `file_server`.

pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("bench fileserver: not written yet")
}
