//! CSV import rows through the real import path: counts add up, re-import changes nothing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(v) = phonevault::fuzzing::csv_import(data) {
        panic!("{v}");
    }
});
