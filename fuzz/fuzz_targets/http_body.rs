//! Socket API request bodies, every endpoint: total, and errors never echo values.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::http_body(data) {
        panic!("{v}");
    }
});
