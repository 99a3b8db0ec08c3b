//! Field types, cell values, and the date/number text formats Salesforce uses.

use std::fmt::Write as _;
use std::sync::Arc;

/// Describe-level field type (the subset the emulator models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Id,
    Reference,
    String,
    TextArea,
    LongTextArea,
    /// Rich text area (`textarea` with `htmlFormatted: true`).
    RichText,
    Picklist,
    Email,
    Phone,
    Url,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    Address,
    /// A list of record Ids (describe `junctionidlist`, such as Task's `TaskWhoIds`), held as
    /// one string of Ids joined by [`JUNCTION_JOIN`].
    JunctionIdList,
}

/// What joins the Ids of a stored `junctionidlist` value. Ids are letters and digits, so no
/// Id contains it; REST and Bulk render their own forms from it.
pub const JUNCTION_JOIN: char = ',';

/// The Ids of a stored `junctionidlist` value.
pub fn junction_ids(stored: &str) -> impl Iterator<Item = &str> {
    stored.split(JUNCTION_JOIN).filter(|id| !id.is_empty())
}

impl FieldType {
    /// Types whose literals are quoted strings and compare case-insensitively.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::TextArea
                | FieldType::LongTextArea
                | FieldType::RichText
                | FieldType::Picklist
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
        )
    }
    pub fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference)
    }
    pub fn is_number(self) -> bool {
        matches!(
            self,
            FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent
        )
    }
    /// Floating types render with Java `Double.toString` rules (`300.0`, `1.5E7`).
    pub fn is_floating(self) -> bool {
        matches!(
            self,
            FieldType::Double | FieldType::Currency | FieldType::Percent
        )
    }
    /// The word Salesforce uses in "must be of type X" messages.
    pub(crate) fn soql_type_word(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "id",
            FieldType::Boolean => "boolean",
            FieldType::Int => "integer",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "dateTime",
            FieldType::Address => "address",
            _ => "string",
        }
    }
}

/// Compound address value (REST renders it as an object, or `null` when all parts are null).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub state_code: Option<String>,
    pub country_code: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub geocode_accuracy: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self.street.is_none()
            && self.city.is_none()
            && self.state.is_none()
            && self.postal_code.is_none()
            && self.country.is_none()
            && self.state_code.is_none()
            && self.country_code.is_none()
            && self.latitude.is_none()
            && self.longitude.is_none()
            && self.geocode_accuracy.is_none()
    }
}

/// One cell. `Str` also carries ids, picklist values and HTML.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Arc<str>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since the epoch, UTC.
    DateTime(i64),
    Address(Arc<Address>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// Numeric view used for ordering and range comparisons.
    pub(crate) fn num_key(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Double(d) => Some(d),
            Value::Date(d) => Some(d as f64),
            Value::DateTime(ms) => Some(ms as f64),
            Value::Bool(b) => Some(b as i64 as f64),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Calendar helpers (proleptic Gregorian, UTC).

pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 for a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn push_year(out: &mut Vec<u8>, y: i64) {
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push_2(out, y / 100);
        push_2(out, y % 100);
    } else {
        let _ = write!(VecWriter(out), "{y}");
    }
}

/// Appends `YYYY-MM-DD`.
pub fn write_date(out: &mut Vec<u8>, days: i32) {
    let (y, m, d) = civil_from_days(days as i64);
    push_year(out, y);
    out.push(b'-');
    push_2(out, m);
    out.push(b'-');
    push_2(out, d);
}

/// Appends `YYYY-MM-DDTHH:MM:SS.sss+0000` (the REST datetime format).
pub fn write_datetime(out: &mut Vec<u8>, ms: i64) {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY) as u32;
    write_date(out, days as i32);
    out.push(b'T');
    push_2(out, rem / 3_600_000);
    out.push(b':');
    push_2(out, rem / 60_000 % 60);
    out.push(b':');
    push_2(out, rem / 1000 % 60);
    out.push(b'.');
    let milli = rem % 1000;
    out.push(b'0' + (milli / 100) as u8);
    push_2(out, milli % 100);
    out.extend_from_slice(b"+0000");
}

/// REST datetime text, e.g. `2024-01-02T03:04:05.000+0000`.
pub fn format_datetime(ms: i64) -> String {
    let mut v = Vec::with_capacity(28);
    write_datetime(&mut v, ms);
    String::from_utf8(v).expect("ascii")
}

/// `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let mut v = Vec::with_capacity(10);
    write_date(&mut v, days);
    String::from_utf8(v).expect("ascii")
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 {
        return None;
    }
    let (days, n) = scan_date(b)?;
    (n == 10).then_some(days)
}

/// Parses an ISO-8601 datetime as clients and SOQL send it:
/// `YYYY-MM-DDThh:mm:ss[.f+](Z|±hh:mm|±hhmm)`. Returns ms since the epoch (UTC).
pub fn parse_datetime(s: &str) -> Option<i64> {
    match scan_datetime(s.as_bytes()) {
        DtScan::Ok(ms, n) if n == s.len() => Some(ms),
        _ => None,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// `YYYY-MM-DD` at the start of `b` (validated). Returns (days, bytes consumed).
pub(crate) fn scan_date(b: &[u8]) -> Option<(i32, usize)> {
    let y = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let m = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i64, m) {
        return None;
    }
    Some((days_from_civil(y as i64, m, d) as i32, 10))
}

pub(crate) enum DtScan {
    /// ms since epoch, bytes consumed
    Ok(i64, usize),
    /// Shape is wrong at this byte offset (lexer error position).
    BadAt(usize),
    /// Well-formed but out of range (e.g. month 13).
    Invalid(usize),
}

/// Scans a datetime starting at `b[0]` (which must begin with `YYYY-MM-DDT`).
pub(crate) fn scan_datetime(b: &[u8]) -> DtScan {
    // Date part (shape first, validity later).
    for (i, c) in b.iter().take(10).enumerate() {
        let ok = if i == 4 || i == 7 {
            *c == b'-'
        } else {
            c.is_ascii_digit()
        };
        if !ok {
            return DtScan::BadAt(i);
        }
    }
    if b.len() < 10 {
        return DtScan::BadAt(b.len());
    }
    if b.get(10) != Some(&b'T') {
        return DtScan::BadAt(10);
    }
    let mut i = 11;
    let mut hms = [0u32; 3];
    for (k, slot) in hms.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b':') {
                return DtScan::BadAt(i);
            }
            i += 1;
        }
        for j in 0..2 {
            match b.get(i + j) {
                Some(c) if c.is_ascii_digit() => {}
                _ => return DtScan::BadAt(i + j),
            }
        }
        *slot = digits(b, i, 2).unwrap_or(0);
        i += 2;
    }
    let mut frac_ms = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            if i - start < 3 {
                frac_ms = frac_ms * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        if i == start {
            return DtScan::BadAt(i);
        }
        for _ in (i - start)..3 {
            frac_ms *= 10;
        }
    }
    let offset_min: i64;
    match b.get(i) {
        Some(b'Z') | Some(b'z') => {
            offset_min = 0;
            i += 1;
        }
        Some(&c @ (b'+' | b'-')) => {
            let sign = if c == b'-' { -1 } else { 1 };
            i += 1;
            let Some(hh) = digits(b, i, 2) else {
                return DtScan::BadAt(first_non_digit(b, i, 2));
            };
            i += 2;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            let Some(mm) = digits(b, i, 2) else {
                return DtScan::BadAt(first_non_digit(b, i, 2));
            };
            i += 2;
            if hh > 23 || mm > 59 {
                return DtScan::Invalid(i);
            }
            offset_min = sign * (hh as i64 * 60 + mm as i64);
        }
        _ => return DtScan::BadAt(i),
    }
    let Some((days, _)) = scan_date(b) else {
        return DtScan::Invalid(i);
    };
    let [h, mi, s] = hms;
    if h > 23 || mi > 59 || s > 59 {
        return DtScan::Invalid(i);
    }
    let ms = days as i64 * MS_PER_DAY
        + (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1000
        + frac_ms as i64
        - offset_min * 60_000;
    DtScan::Ok(ms, i)
}

fn first_non_digit(b: &[u8], from: usize, n: usize) -> usize {
    (from..from + n)
        .find(|&k| !b.get(k).is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(from + n)
}

// ---------------------------------------------------------------------------
// Number text.

pub(crate) struct VecWriter<'a>(pub &'a mut Vec<u8>);
impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

struct StackBuf {
    buf: [u8; 64],
    len: usize,
}
impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let b = s.as_bytes();
        let end = self.len + b.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

/// Appends an integer.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Appends a double the way Salesforce's Java serializer does (`Double.toString`):
/// plain `123.0` / `0.5` for 1e-3 <= |v| < 1e7, otherwise `1.5E7` / `1.0E-4`.
/// Digits are the shortest round-trip representation. NaN/inf render as `null`.
pub fn write_double(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return;
    }
    let mut sb = StackBuf {
        buf: [0; 64],
        len: 0,
    };
    // Shortest round-trip digits in scientific form, e.g. "-1.2345e-7".
    let _ = write!(sb, "{v:e}");
    let s = &sb.buf[..sb.len];
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let epos = s.iter().position(|&c| c == b'e').unwrap_or(s.len());
    let mant = &s[..epos];
    let exp: i32 = std::str::from_utf8(&s[epos + 1..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let mut dig = [0u8; 32];
    let mut nd = 0;
    for &c in mant {
        if c.is_ascii_digit() && nd < dig.len() {
            dig[nd] = c;
            nd += 1;
        }
    }
    let dig = &dig[..nd];
    if neg {
        out.push(b'-');
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            for k in 0..int_len {
                out.push(*dig.get(k).unwrap_or(&b'0'));
            }
            out.push(b'.');
            if dig.len() > int_len {
                out.extend_from_slice(&dig[int_len..]);
            } else {
                out.push(b'0');
            }
        } else {
            out.extend_from_slice(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.extend_from_slice(dig);
        }
    } else {
        out.push(dig[0]);
        out.push(b'.');
        if dig.len() > 1 {
            out.extend_from_slice(&dig[1..]);
        } else {
            out.push(b'0');
        }
        out.push(b'E');
        write_int(out, exp as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: f64) -> String {
        let mut o = Vec::new();
        write_double(&mut o, v);
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn java_doubles() {
        assert_eq!(d(300.0), "300.0");
        assert_eq!(d(0.5), "0.5");
        assert_eq!(d(-12.25), "-12.25");
        assert_eq!(d(1234567.0), "1234567.0");
        assert_eq!(d(1.0e7), "1.0E7");
        assert_eq!(d(1.39e9), "1.39E9");
        assert_eq!(d(0.001), "0.001");
        assert_eq!(d(0.0001), "1.0E-4");
        assert_eq!(d(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(d(0.0), "0.0");
        assert_eq!(d(f64::NAN), "null");
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(format_date(19_723), "2024-01-01");
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(format_datetime(-1), "1969-12-31T23:59:59.999+0000");
        let ms = parse_datetime("2024-01-02T03:04:05.678Z").unwrap();
        assert_eq!(format_datetime(ms), "2024-01-02T03:04:05.678+0000");
        assert_eq!(
            parse_datetime("2024-01-02T05:04:05+02:00"),
            parse_datetime("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            parse_datetime("2024-01-02T03:04:05.000+0000"),
            parse_datetime("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            parse_datetime("2024-01-01T23:30:00-05:30"),
            parse_datetime("2024-01-02T05:00:00Z")
        );
        assert_eq!(parse_datetime("2024-01-02T03:04:05"), None);
        assert_eq!(
            parse_datetime("2024-01-02T03:04:05.5Z").map(|m| m % 1000),
            Some(500)
        );
    }
}
