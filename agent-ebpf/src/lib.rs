//! Empty library target so the crate can be a build-dependency of `agent` (cache invalidation).
#![no_std]
