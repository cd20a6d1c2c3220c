//! A consent receipt file: verify never panics; what verifies is canonical.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::receipt(data) {
        panic!("{v}");
    }
});
