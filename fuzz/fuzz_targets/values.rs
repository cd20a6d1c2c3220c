//! Every parser of a command-line or JSON value: never panics, never repeats digits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::values(data) {
        panic!("{v}");
    }
});
