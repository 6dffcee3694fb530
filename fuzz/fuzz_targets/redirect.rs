//! Post-login redirects (`?next=`): `LocalRedirect::parse` never panics, and whatever it
//! accepts resolves, by the WHATWG URL rules browsers follow (the `url` crate), to the site's
//! own origin, also after one more round of percent-decoding (CWE-601).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::redirect::LocalRedirect;
use url::Url;

fn same_origin(base: &Url, target: &str) -> bool {
    base.join(target)
        .is_ok_and(|resolved| resolved.origin() == base.origin())
}

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(local) = LocalRedirect::parse(target) else {
        return;
    };
    let base = Url::parse("https://app.example/login").expect("valid base");
    let local = local.as_str();
    assert!(local.starts_with('/') && local.bytes().all(|b| b.is_ascii_graphic()));
    assert!(same_origin(&base, local), "{target:?} → {local:?}");
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(local).collect();
    assert!(
        same_origin(&base, &String::from_utf8_lossy(&decoded)),
        "{target:?} → {local:?}, decoded once"
    );
});
