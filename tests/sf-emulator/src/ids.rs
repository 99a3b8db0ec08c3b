//! Salesforce record ids: 15-character case-sensitive ids and their 18-character
//! case-insensitive-safe form.
//!
//! Emulator ids are `{keyPrefix}{pod}{10 base-62 digits}` so that the row number can be
//! decoded back from an id without any lookup table (the store relies on that for its
//! O(1) id lookups on million-row tables).

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
/// Two "instance" characters every emulator id carries after its key prefix.
const POD: &str = "5e";

/// The three-character suffix that turns a 15-character id into its 18-character form.
///
/// Each 5-character chunk yields one character: bit `i` is set when character `i` of the
/// chunk is an upper-case ASCII letter.
pub fn checksum(id15: &str) -> [u8; 3] {
    let bytes = id15.as_bytes();
    let mut out = [0u8; 3];
    for (chunk, slot) in out.iter_mut().enumerate() {
        let mut bits = 0usize;
        for i in 0..5 {
            if bytes.get(chunk * 5 + i).is_some_and(u8::is_ascii_uppercase) {
                bits |= 1 << i;
            }
        }
        *slot = CHECKSUM[bits];
    }
    out
}

/// Extends a 15-character id to 18 characters; other lengths are returned unchanged.
pub fn to18(id: &str) -> String {
    if id.len() != 15 {
        return id.to_string();
    }
    let mut s = String::with_capacity(18);
    s.push_str(id);
    for b in checksum(id) {
        s.push(b as char);
    }
    s
}

/// Builds the 18-character id of row number `n` for an object with `prefix`.
pub fn make(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 10];
    let mut v = n;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    let mut s = String::with_capacity(18);
    s.push_str(prefix);
    s.push_str(POD);
    s.push_str(std::str::from_utf8(&digits).expect("ascii"));
    let sum = checksum(&s);
    for b in sum {
        s.push(b as char);
    }
    s
}

/// Decodes `(key prefix, row number)` from a 15- or 18-character emulator id.
///
/// Returns `None` for ids that were not minted by [`make`], or whose 18-character
/// checksum does not match.
pub fn parse(id: &str) -> Option<(&str, u64)> {
    if !id.is_ascii() || !(id.len() == 15 || id.len() == 18) {
        return None;
    }
    if id.len() == 18 && checksum(&id[..15]) != id.as_bytes()[15..18] {
        return None;
    }
    if &id[3..5] != POD {
        return None;
    }
    let mut n: u64 = 0;
    for b in id[5..15].bytes() {
        let d = BASE62.iter().position(|&c| c == b)? as u64;
        n = n.checked_mul(62)?.checked_add(d)?;
    }
    Some((&id[..3], n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_checksums() {
        // Ids from Salesforce's documentation and recorded responses.
        assert_eq!(to18("001D000000IRFma"), "001D000000IRFmaIAH");
        assert_eq!(to18("5005e00000AbCdE"), "5005e00000AbCdEAAV");
    }

    #[test]
    fn round_trip() {
        for n in [0u64, 1, 61, 62, 999_999, 123_456_789] {
            let id = make("500", n);
            assert_eq!(id.len(), 18);
            assert_eq!(parse(&id), Some(("500", n)));
            assert_eq!(parse(&id[..15]), Some(("500", n)));
        }
        assert_eq!(parse("500000000000000AAA"), None);
    }
}
