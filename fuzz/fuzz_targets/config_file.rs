#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::config_file(data));
