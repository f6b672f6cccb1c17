//! Integration tests of octo-fileserver over real TCP and Unix sockets and a real temp directory.

mod escape;
mod gateway;
mod ops;
mod process;
mod util;
mod watch;
