//! Just enough X.509 to show a certificate's validity and names and to
//! re-issue it: a DER walk over the fields `cert show` and `cert rotate`
//! need (rcgen writes certificates but, without its x509-parser feature,
//! does not read them; that parser would be a heavy dependency for this).

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub common_name: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Subject alternative names: DNS names and IP addresses, as text.
    pub hosts: Vec<String>,
    /// The DER of the subject and issuer names, and of the public key.
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub public_key: Vec<u8>,
}

/// The first certificate of a PEM file.
pub fn read_pem(path: &Path) -> anyhow::Result<CertInfo> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let der = rustls_pemfile::certs(&mut text.as_slice())
        .next()
        .with_context(|| format!("{} holds no certificate", path.display()))?
        .with_context(|| format!("{} is not PEM", path.display()))?;
    parse(&der).with_context(|| format!("{} is not a certificate dsync can read", path.display()))
}

/// One DER element: its tag, its contents, and the whole encoding.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Splits the first element off `input`.
fn next(input: &[u8]) -> anyhow::Result<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first().context("truncated DER")?;
    let (&first, rest) = rest.split_first().context("truncated DER")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            bail!("unsupported DER length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        bail!("truncated DER");
    }
    let header = input.len() - rest.len();
    let element = Element {
        tag,
        content: &rest[..len],
        whole: &input[..header + len],
    };
    Ok((element, &rest[len..]))
}

/// Splits the first element off `input`, which must carry `tag`.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> anyhow::Result<(Element<'a>, &'a [u8])> {
    let (e, rest) = next(input)?;
    if e.tag != tag {
        bail!("{what}: expected DER tag {tag:#04x}, found {:#04x}", e.tag);
    }
    Ok((e, rest))
}

const SEQUENCE: u8 = 0x30;
/// 2.5.4.3, commonName.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17, subjectAltName.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

pub fn parse(der: &[u8]) -> anyhow::Result<CertInfo> {
    let (cert, _) = expect(der, SEQUENCE, "certificate")?;
    let (tbs, _) = expect(cert.content, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs.content;
    // [0] version, then the serial number and the signature algorithm.
    let (first, after) = next(rest)?;
    if first.tag == 0xa0 {
        rest = after;
    }
    let (_, rest) = expect(rest, 0x02, "serial")?;
    let (_, rest) = expect(rest, SEQUENCE, "signature algorithm")?;
    let (issuer, rest) = expect(rest, SEQUENCE, "issuer")?;
    let (validity, rest) = expect(rest, SEQUENCE, "validity")?;
    let (subject, rest) = expect(rest, SEQUENCE, "subject")?;
    let (public_key, mut rest) = expect(rest, SEQUENCE, "public key")?;
    let (not_before, after) = next(validity.content)?;
    let (not_after, _) = next(after)?;
    let mut hosts = Vec::new();
    while !rest.is_empty() {
        let (e, after) = next(rest)?;
        rest = after;
        if e.tag == 0xa3 {
            hosts = alt_names(e.content)?;
        }
    }
    Ok(CertInfo {
        common_name: common_name(subject.content)?,
        not_before: time_of(&not_before)?,
        not_after: time_of(&not_after)?,
        hosts,
        subject: subject.whole.to_vec(),
        issuer: issuer.whole.to_vec(),
        public_key: public_key.whole.to_vec(),
    })
}

/// The first commonName of a Name (a sequence of sets of type-value pairs).
fn common_name(mut name: &[u8]) -> anyhow::Result<Option<String>> {
    while !name.is_empty() {
        let (set, after) = next(name)?;
        name = after;
        let (pair, _) = expect(set.content, SEQUENCE, "name attribute")?;
        let (oid, value) = expect(pair.content, 0x06, "attribute type")?;
        if oid.content == OID_CN {
            let (value, _) = next(value)?;
            return Ok(Some(String::from_utf8_lossy(value.content).into_owned()));
        }
    }
    Ok(None)
}

/// The DNS names and IP addresses of the subjectAltName extension.
fn alt_names(extensions: &[u8]) -> anyhow::Result<Vec<String>> {
    let (list, _) = expect(extensions, SEQUENCE, "extensions")?;
    let mut rest = list.content;
    while !rest.is_empty() {
        let (ext, after) = expect(rest, SEQUENCE, "extension")?;
        rest = after;
        let (oid, mut fields) = expect(ext.content, 0x06, "extension id")?;
        if oid.content != OID_SAN {
            continue;
        }
        let (critical, after) = next(fields)?;
        if critical.tag == 0x01 {
            fields = after;
        }
        let (value, _) = expect(fields, 0x04, "extension value")?;
        let (names, _) = expect(value.content, SEQUENCE, "alt names")?;
        let mut out = Vec::new();
        let mut names = names.content;
        while !names.is_empty() {
            let (n, after) = next(names)?;
            names = after;
            match n.tag {
                0x82 => out.push(String::from_utf8_lossy(n.content).into_owned()),
                0x87 => {
                    let ip = match n.content.len() {
                        4 => <[u8; 4]>::try_from(n.content).map(IpAddr::from)?,
                        16 => <[u8; 16]>::try_from(n.content).map(IpAddr::from)?,
                        _ => bail!("an IP address of {} bytes", n.content.len()),
                    };
                    out.push(ip.to_string());
                }
                _ => {}
            }
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time_of(e: &Element<'_>) -> anyhow::Result<OffsetDateTime> {
    let text = std::str::from_utf8(e.content).context("a time that is not text")?;
    let digits = text
        .strip_suffix('Z')
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .with_context(|| format!("unsupported time {text:?}"))?;
    let num = |s: &str| s.parse::<u32>().map_err(anyhow::Error::from);
    let (year, rest) = match (e.tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2])?;
            // RFC 5280: two-digit years 50-99 are 19xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4])?, &digits[4..]),
        _ => bail!("unsupported time {text:?}"),
    };
    let part = |i: usize| num(&rest[i..i + 2]);
    let month = Month::try_from(u8::try_from(part(0)?)?)?;
    let date = Date::from_calendar_date(i32::try_from(year)?, month, u8::try_from(part(2)?)?)?;
    let time = Time::from_hms(
        u8::try_from(part(4)?)?,
        u8::try_from(part(6)?)?,
        u8::try_from(part(8)?)?,
    )?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc())
}

/// `2026-12-02 15:04 UTC`.
pub fn display(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(hosts: &[&str], not_before: OffsetDateTime, not_after: OffsetDateTime) -> Vec<u8> {
        let mut p = CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "dsync node 3");
        p.not_before = not_before;
        p.not_after = not_after;
        p.self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    fn at(y: i32, m: u8, d: u8, h: u8) -> OffsetDateTime {
        let date = Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
        PrimitiveDateTime::new(date, Time::from_hms(h, 7, 9).unwrap()).assume_utc()
    }

    #[test]
    fn validity_names_and_keys_are_read_back() {
        let (from, until) = (at(2025, 3, 4, 5), at(2026, 3, 4, 5));
        let info = parse(&cert(&["localhost", "127.0.0.1", "::1"], from, until)).unwrap();
        assert_eq!(info.not_before, from);
        assert_eq!(info.not_after, until);
        assert_eq!(info.common_name.as_deref(), Some("dsync node 3"));
        assert_eq!(info.hosts, ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(info.subject, info.issuer, "self-signed");
        assert_eq!(display(until), "2026-03-04 05:07 UTC");
    }

    #[test]
    fn generalized_times_after_2049_are_read() {
        let until = at(2071, 12, 31, 23);
        let info = parse(&cert(&["a"], at(2049, 1, 1, 0), until)).unwrap();
        assert_eq!(info.not_after, until);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = cert(&["a"], at(2025, 1, 1, 0), at(2026, 1, 1, 0));
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &good[..good.len() / 2],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
