#![no_main]
//! See `mcp_session_binding_fuzz::dpop` (fuzz/src/lib.rs) for the input and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_session_binding_fuzz::dpop(data));
