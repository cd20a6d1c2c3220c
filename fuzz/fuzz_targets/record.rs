//! Record body decoding: total on any bytes; decode(encode(r)) == r.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::record(data) {
        panic!("{v}");
    }
});
