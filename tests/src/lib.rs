//! End-to-end tests of Picket in network namespaces (see `tests/`).
