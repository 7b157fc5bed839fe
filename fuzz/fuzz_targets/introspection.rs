#![no_main]
//! See `mcp_session_binding_fuzz::introspection` (fuzz/src/lib.rs) for the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_session_binding_fuzz::introspection(data));
