//! Integration tests of octo-fileserver over a real TCP socket and a real temp directory.

mod escape;
mod ops;
mod process;
mod util;
