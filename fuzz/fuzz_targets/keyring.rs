//! Keyring and key-slot decoding (keys crate): total, canonical, round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault_keys::fuzzing::keyring(data) {
        panic!("{v}");
    }
});
