//! Random vault operation sequences checked against a model of the policy.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::ops(data) {
        panic!("{v}");
    }
});
