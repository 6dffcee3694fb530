//! The opaque token parser: never panics; whatever it accepts has the documented shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::token::TokenFormat;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for format in [
        TokenFormat::new("smtk_").unwrap(),
        TokenFormat::new("kk-").unwrap().without_checksum(),
    ] {
        if let Ok(parsed) = format.parse(raw) {
            assert_eq!(raw.len(), format.token_len());
            assert!(raw.starts_with(format.prefix()));
            assert!(
                raw[format.prefix().len()..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric())
            );
            let _ = parsed.digest();
        }
        let _ = format.hint(raw);
    }
});
