//! Typed Podman Quadlet units (`.container`, `.volume`): validation, rendering and a parser for tests.
