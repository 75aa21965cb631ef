//! Fingerprints: the stable hash every connector uses, and the location
//! fingerprint that lets a scanner's alert and the same result read from
//! another source (a code scanning alert and the SARIF upload behind it)
//! meet in reconciliation.

/// A 128-bit FNV-1a hash as 32 hex digits: stable across builds and
/// platforms, unlike `std`'s hasher.
pub fn stable_hash(parts: &[&str]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    const P: u128 = 0x0000000001000000000000000000013B;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(P);
        }
        for b in part.bytes() {
            h ^= u128::from(b);
            h = h.wrapping_mul(P);
        }
    }
    format!("{h:032x}")
}

/// The fingerprint of a result by where it is: tool (case-insensitive),
/// rule id, path and start line, hashed to 32 hex digits. A code scanning
/// alert and the SARIF result it was made from give the same value, so
/// the two link by (asset, fingerprint). The path is read as a relative
/// URI: a leading `./` is dropped and `%XX` escapes are decoded, as code
/// scanning shows them. `None` without a tool, rule or path.
pub fn location_fingerprint(
    tool: &str,
    rule: &str,
    path: &str,
    line: Option<u64>,
) -> Option<String> {
    if tool.is_empty() || rule.is_empty() || path.is_empty() {
        return None;
    }
    let path = percent_decode(path.strip_prefix("./").unwrap_or(path));
    let line = line.map(|l| l.to_string()).unwrap_or_default();
    Some(stable_hash(&[
        "loc",
        &tool.to_ascii_lowercase(),
        rule,
        &path,
        &line,
    ]))
}

/// `%XX` escapes decoded (invalid ones kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_result_by_location_has_the_same_fingerprint() {
        let a = location_fingerprint("CodeQL", "js/sql-injection", "src/db%20x.js", Some(10));
        let b = location_fingerprint("codeql", "js/sql-injection", "./src/db x.js", Some(10));
        assert_eq!(a, b);
        assert_eq!(a.as_deref().map(str::len), Some(32));
        assert_ne!(
            a,
            location_fingerprint("CodeQL", "js/sql-injection", "src/db x.js", Some(11))
        );
        assert_eq!(
            location_fingerprint("CodeQL", "", "src/a.js", Some(1)),
            None
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2Fb%zz"), "a/b%zz");
    }
}
