//! An inbound SMS body: parser, keywords and signature check never panic nor echo digits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::inbound_sms(data) {
        panic!("{v}");
    }
});
