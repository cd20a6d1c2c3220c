//! Phone normalization: never panics; a valid result re-normalizes to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::phone(data) {
        panic!("{v}");
    }
});
