#![no_main]
//! See `mcp_session_binding_fuzz::scan` (fuzz/src/lib.rs) for the input layout and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_session_binding_fuzz::scan(data));
