//! The `octo-fileserver` binary.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("octo-fileserver: not built yet")
}
