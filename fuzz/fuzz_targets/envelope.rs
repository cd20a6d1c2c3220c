//! The ciphertext envelope: header parsing and opening are total; tampering is refused.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::envelope(data) {
        panic!("{v}");
    }
});
