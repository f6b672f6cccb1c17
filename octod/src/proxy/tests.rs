//! Tests of the proxy over real sockets.
