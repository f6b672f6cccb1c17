//! Development automation for Octo: `cargo xtask ci | demo | testhost … | bench …`.

mod bench;

fn main() -> anyhow::Result<()> {
    bench::fileserver::run()
}
