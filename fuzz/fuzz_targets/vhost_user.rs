#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vswitch_fuzz::vhost_user(data));
