//! Reading mail back from the SMTP sink (`aiosmtpd`) that `scripts/test.sh` starts.

use std::path::Path;
use std::time::{Duration, Instant};

use portcullis::mail::{SmtpConfig, SmtpMailer, SmtpSecurity};

/// A mailer for the sink at `address` (`host:port`), in plain SMTP.
pub fn sink_mailer(address: &str) -> SmtpMailer {
    let (host, port) = address.rsplit_once(':').unwrap();
    let config = SmtpConfig::new(
        host,
        port.parse().unwrap(),
        SmtpSecurity::Plain,
        "Portcullis Test <no-reply@example.com>",
    );
    SmtpMailer::new(config).unwrap()
}

/// A recipient no other test writes to.
pub fn recipient(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}@example.com", std::process::id())
}

/// The raw message the sink delivered to `to`, waiting up to 10 s for it.
pub async fn delivered(maildir: &Path, to: &str) -> String {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(entries) = std::fs::read_dir(maildir.join("new")) {
            for entry in entries.flatten() {
                let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if raw.contains(&format!("To: {to}")) {
                    return raw;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no message to {to} reached the sink within 10 s");
}

/// Undoes quoted-printable encoding (RFC 2045 §6.7): soft line breaks and `=XX` escapes.
pub fn unquote(encoded: &str) -> String {
    let joined = encoded.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
