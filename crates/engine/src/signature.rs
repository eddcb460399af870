//! Webhook authentication (`orchestrator.md` §4): GitHub's `X-Hub-Signature-256`, the generic
//! source's verification methods (`hmac_sha256`, `bearer_token`/`api_key`, `ip_allowlist`,
//! `none`) and the universal-git presets' schemes.
//!
//! Every comparison of a secret-derived value runs in constant time, and no error message
//! carries a secret, an expected value or the value the sender presented: an error only says
//! *which* header is wrong and *how*.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::provider::{GitPreset, Headers};

/// GitHub's signature header (App webhooks and the `github-repo` preset).
pub const GITHUB_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// Default header of the generic `hmac_sha256` method.
pub const DEFAULT_HMAC_HEADER: &str = "x-signature-256";
/// Default header of the generic `bearer_token` method.
pub const DEFAULT_TOKEN_HEADER: &str = "authorization";

/// Why a request was refused. Messages name the header and the problem, never a secret, the
/// expected value or the presented value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {header}")]
    MissingHeader { header: String },
    #[error("malformed {header} header: {problem}")]
    MalformedHeader {
        header: String,
        problem: &'static str,
    },
    #[error("the signature in {header} does not match the request body")]
    SignatureMismatch { header: String },
    #[error("the token in {header} is not valid")]
    TokenMismatch { header: String },
    /// A configuration problem of the source, not of the request; still a refusal, because
    /// accepting unverifiable requests would be worse.
    #[error("no verification secret is configured for this source")]
    NoSecret,
    #[error("client address {ip} is not in the source's allowlist")]
    AddressNotAllowed { ip: IpAddr },
    #[error("unauthenticated requests are accepted only from a loopback address (client {ip})")]
    RemoteUnauthenticated { ip: IpAddr },
    #[error("verification method `none` is allowed only for local sources")]
    NoneNotAllowed,
    #[error("cannot determine the client address: {problem}")]
    ClientAddress { problem: String },
}

/// How the signature header spells the hex digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFormat {
    /// `sha256=<64 hex>` (GitHub).
    Prefixed,
    /// `sha256=<hex>` or bare hex (the generic `hmac_sha256` method).
    PrefixOptional,
    /// Bare hex only (Gitea, Forgejo, Gogs).
    Bare,
}

/// HMAC-SHA256 of `body` under `secret`.
pub fn hmac_sha256(secret: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `X-Hub-Signature-256` value a sender puts on `body` (`sha256=<hex>`); used by our own
/// senders (`trigger-local`, tests).
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, body)))
}

/// Verifies an HMAC-SHA256 signature header over the raw body bytes against every candidate
/// secret (the current one and, during rotation, the previous one).
///
/// `value` is the header value as received (`None` when absent). Every candidate is compared
/// even after a match so the time taken does not reveal which secret matched.
pub fn verify_hmac_sha256(
    header: &str,
    value: Option<&str>,
    format: SignatureFormat,
    body: &[u8],
    secrets: &[&[u8]],
) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let value = value.ok_or_else(|| VerifyError::MissingHeader {
        header: header.to_string(),
    })?;
    let malformed = |problem| VerifyError::MalformedHeader {
        header: header.to_string(),
        problem,
    };
    let value = value.trim();
    let hex_digest = match format {
        SignatureFormat::Prefixed => value
            .strip_prefix("sha256=")
            .ok_or_else(|| malformed("expected sha256=<64 hex digits>"))?,
        SignatureFormat::PrefixOptional => value.strip_prefix("sha256=").unwrap_or(value),
        SignatureFormat::Bare => value,
    };
    let expected_shape = match format {
        SignatureFormat::Prefixed => "expected sha256=<64 hex digits>",
        SignatureFormat::PrefixOptional => "expected sha256=<64 hex digits> or 64 hex digits",
        SignatureFormat::Bare => "expected 64 hex digits",
    };
    // The length is public (it is the digest size), so checking it first leaks nothing.
    if hex_digest.len() != 64 {
        return Err(malformed(expected_shape));
    }
    let mut presented = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut presented).map_err(|_| malformed(expected_shape))?;
    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        matched |= hmac_sha256(secret, body).ct_eq(&presented);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch {
            header: header.to_string(),
        })
    }
}

/// Verifies GitHub's `X-Hub-Signature-256: sha256=<64 hex>` over the raw body.
pub fn verify_github_signature(
    value: Option<&str>,
    body: &[u8],
    secrets: &[&[u8]],
) -> Result<(), VerifyError> {
    verify_hmac_sha256(
        GITHUB_SIGNATURE_HEADER,
        value,
        SignatureFormat::Prefixed,
        body,
        secrets,
    )
}

/// Verifies a shared token header against every candidate token. With `strip_bearer`, an
/// optional `Bearer ` prefix (any case) is removed first.
pub fn verify_token(
    header: &str,
    value: Option<&str>,
    strip_bearer: bool,
    tokens: &[&[u8]],
) -> Result<(), VerifyError> {
    if tokens.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let value = value.ok_or_else(|| VerifyError::MissingHeader {
        header: header.to_string(),
    })?;
    let presented = if strip_bearer {
        strip_bearer_prefix(value)
    } else {
        value
    };
    let mut matched = subtle::Choice::from(0u8);
    for token in tokens {
        matched |= constant_time_eq_choice(presented.as_bytes(), token);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::TokenMismatch {
            header: header.to_string(),
        })
    }
}

fn strip_bearer_prefix(value: &str) -> &str {
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => value,
    }
}

/// Constant-time equality of two byte strings of any lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(constant_time_eq_choice(a, b))
}

fn constant_time_eq_choice(a: &[u8], b: &[u8]) -> subtle::Choice {
    // Comparing digests instead of the values hides the secret's length, which a plain
    // length check followed by `ct_eq` would reveal.
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    da.as_slice().ct_eq(db.as_slice())
}

/// The verification method of a generic (or custom-preset) source, as stored in the source's
/// `config.verification` (non-secret part; secrets come from `scoped_secrets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "method",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Verification {
    #[serde(alias = "hmac-sha256")]
    HmacSha256 {
        #[serde(default = "default_hmac_header")]
        header_name: String,
    },
    #[serde(alias = "api_key", alias = "api-key", alias = "bearer-token")]
    BearerToken {
        #[serde(default = "default_token_header")]
        header_name: String,
    },
    #[serde(alias = "ip-allowlist")]
    IpAllowlist {
        #[serde(default)]
        allowlist: Vec<String>,
    },
    None,
}

fn default_hmac_header() -> String {
    DEFAULT_HMAC_HEADER.to_string()
}

fn default_token_header() -> String {
    DEFAULT_TOKEN_HEADER.to_string()
}

impl Verification {
    /// Checks the non-secret configuration when a source is created or updated, so a typo in
    /// an allowlist is reported then rather than silently never matching.
    pub fn validate(&self) -> Result<(), AllowlistError> {
        if let Verification::IpAllowlist { allowlist } = self {
            for entry in allowlist {
                IpRange::parse(entry)?;
            }
        }
        Ok(())
    }
}

/// What the ingress knows about one request, for [`verify_request`].
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub headers: &'a Headers,
    /// The raw body bytes, exactly as received.
    pub body: &'a [u8],
    /// The client address as resolved by [`client_ip`].
    pub client_ip: IpAddr,
}

/// Facts about the source that only the `none` method needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NonePolicy {
    pub source_is_local: bool,
    pub allow_remote_unauthenticated: bool,
}

/// Verifies a request to a generic or local source (`orchestrator.md` §4.2 step 4).
/// `secrets` are the source's verification secrets, current first (unused by `ip_allowlist`
/// and `none`).
pub fn verify_request(
    method: &Verification,
    request: &RequestFacts<'_>,
    secrets: &[&[u8]],
    none_policy: NonePolicy,
) -> Result<(), VerifyError> {
    match method {
        Verification::HmacSha256 { header_name } => verify_hmac_sha256(
            header_name,
            request.headers.get(header_name),
            SignatureFormat::PrefixOptional,
            request.body,
            secrets,
        ),
        Verification::BearerToken { header_name } => {
            verify_token(header_name, request.headers.get(header_name), true, secrets)
        }
        Verification::IpAllowlist { allowlist } => {
            let ip = canonical(request.client_ip);
            // Invalid entries never match; `Verification::validate` reports them up front.
            let allowed = allowlist
                .iter()
                .filter_map(|e| IpRange::parse(e).ok())
                .any(|range| range.contains(ip));
            if allowed {
                Ok(())
            } else {
                Err(VerifyError::AddressNotAllowed { ip })
            }
        }
        Verification::None => {
            if !none_policy.source_is_local {
                Err(VerifyError::NoneNotAllowed)
            } else if canonical(request.client_ip).is_loopback()
                || none_policy.allow_remote_unauthenticated
            {
                Ok(())
            } else {
                Err(VerifyError::RemoteUnauthenticated {
                    ip: request.client_ip,
                })
            }
        }
    }
}

/// How a universal-git preset signs its deliveries (`orchestrator.md` §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresetScheme {
    Hmac {
        header: &'static str,
        format: SignatureFormat,
    },
    /// The header carries the shared secret itself (GitLab).
    Token { header: &'static str },
}

impl GitPreset {
    /// The preset's signature scheme; `None` for `custom`, which uses the source's configured
    /// [`Verification`].
    pub fn signature_scheme(self) -> Option<PresetScheme> {
        let hmac = |header, format| Some(PresetScheme::Hmac { header, format });
        match self {
            GitPreset::GithubRepo => hmac(GITHUB_SIGNATURE_HEADER, SignatureFormat::Prefixed),
            GitPreset::Gitea => hmac("X-Gitea-Signature", SignatureFormat::Bare),
            GitPreset::Forgejo => hmac("X-Forgejo-Signature", SignatureFormat::Bare),
            GitPreset::Gogs => hmac("X-Gogs-Signature", SignatureFormat::Bare),
            GitPreset::GitlabRepo => Some(PresetScheme::Token {
                header: "X-Gitlab-Token",
            }),
            GitPreset::Custom => None,
        }
    }
}

/// Verifies a delivery with a preset's scheme.
pub fn verify_preset(
    scheme: PresetScheme,
    headers: &Headers,
    body: &[u8],
    secrets: &[&[u8]],
) -> Result<(), VerifyError> {
    match scheme {
        PresetScheme::Hmac { header, format } => {
            verify_hmac_sha256(header, headers.get(header), format, body, secrets)
        }
        PresetScheme::Token { header } => verify_token(header, headers.get(header), false, secrets),
    }
}

/// An allowlist or trusted-proxy entry that is neither an IP address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address entry {entry:?}: {problem}")]
pub struct AllowlistError {
    pub entry: String,
    pub problem: &'static str,
}

/// One allowlist entry: a single address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `::1` or `fd00::/8`. Host bits below the prefix are
    /// ignored (`10.1.2.3/8` is `10.0.0.0/8`), as most tools do.
    pub fn parse(entry: &str) -> Result<IpRange, AllowlistError> {
        let err = |problem| AllowlistError {
            entry: entry.to_string(),
            problem,
        };
        let trimmed = entry.trim();
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (trimmed, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| err("expected an IP address or CIDR range"))?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                let p: u8 = p
                    .parse()
                    .map_err(|_| err("the prefix length must be a number"))?;
                if p > max {
                    return Err(err("the prefix length is too large for the address"));
                }
                p
            }
        };
        Ok(IpRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) compare
/// as IPv4, so an IPv4 allowlist works on dual-stack listeners.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The client address of a request: the socket peer, or — only when the peer is a trusted
/// proxy — the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
///
/// Walking from the right matters: every proxy appends, so only the entries added by our own
/// proxies are trustworthy and anything left of them may be forged by the client.
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted_proxies: &[IpRange],
) -> Result<IpAddr, VerifyError> {
    let peer = canonical(peer);
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|r| r.contains(ip));
    if !trusted(peer) {
        return Ok(peer);
    }
    let Some(header) = forwarded_for else {
        return Ok(peer);
    };
    let mut last = peer;
    for raw in header.rsplit(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let ip: IpAddr = parse_forwarded_entry(raw).ok_or_else(|| VerifyError::ClientAddress {
            problem: "X-Forwarded-For contains an entry that is not an IP address".to_string(),
        })?;
        let ip = canonical(ip);
        if !trusted(ip) {
            return Ok(ip);
        }
        last = ip;
    }
    // Every hop is one of ours: the left-most is the closest thing to a client we have.
    Ok(last)
}

/// Accepts `1.2.3.4`, `1.2.3.4:5678`, `::1` and `[::1]:5678`.
fn parse_forwarded_entry(raw: &str) -> Option<IpAddr> {
    if let Ok(ip) = raw.parse() {
        return Some(ip);
    }
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = raw.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GH_SECRET: &[u8] = b"It's a Secret to Everybody";
    const GH_BODY: &[u8] = b"Hello, World!";
    const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn github_documented_vector() {
        assert_eq!(sign_github(GH_SECRET, GH_BODY), GH_SIG);
        assert_eq!(
            verify_github_signature(Some(GH_SIG), GH_BODY, &[GH_SECRET]),
            Ok(())
        );
        // Upper-case hex is the same digest.
        let upper = format!("sha256={}", GH_SIG[7..].to_uppercase());
        assert_eq!(
            verify_github_signature(Some(&upper), GH_BODY, &[GH_SECRET]),
            Ok(())
        );
    }

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn github_errors_name_the_problem_without_secrets() {
        let missing = verify_github_signature(None, GH_BODY, &[GH_SECRET]).unwrap_err();
        assert_eq!(missing.to_string(), "missing header X-Hub-Signature-256");

        let bare = verify_github_signature(Some(&GH_SIG[7..]), GH_BODY, &[GH_SECRET]).unwrap_err();
        assert!(
            matches!(bare, VerifyError::MalformedHeader { .. }),
            "{bare}"
        );

        let short = verify_github_signature(Some("sha256=abcd"), GH_BODY, &[GH_SECRET]);
        assert!(matches!(short, Err(VerifyError::MalformedHeader { .. })));

        let not_hex = format!("sha256={}", "z".repeat(64));
        let not_hex = verify_github_signature(Some(&not_hex), GH_BODY, &[GH_SECRET]);
        assert!(matches!(not_hex, Err(VerifyError::MalformedHeader { .. })));

        let sha1 = verify_github_signature(
            Some("sha1=0123456789012345678901234567890123456789"),
            GH_BODY,
            &[GH_SECRET],
        );
        assert!(matches!(sha1, Err(VerifyError::MalformedHeader { .. })));

        let wrong = verify_github_signature(Some(GH_SIG), b"Hello, World?", &[GH_SECRET])
            .unwrap_err()
            .to_string();
        assert_eq!(
            wrong,
            "the signature in X-Hub-Signature-256 does not match the request body"
        );
        assert!(!wrong.contains("757107"));

        assert_eq!(
            verify_github_signature(Some(GH_SIG), GH_BODY, &[]),
            Err(VerifyError::NoSecret)
        );
        // Multi-byte UTF-8 of the right length must not panic the slicing.
        let odd = format!("sha256={}", "é".repeat(32));
        assert!(verify_github_signature(Some(&odd), GH_BODY, &[GH_SECRET]).is_err());
    }

    #[test]
    fn rotation_accepts_current_and_previous_secret() {
        let old = b"old secret".as_slice();
        let new = b"new secret".as_slice();
        let by_old = sign_github(old, GH_BODY);
        let by_new = sign_github(new, GH_BODY);
        assert_eq!(
            verify_github_signature(Some(&by_old), GH_BODY, &[new, old]),
            Ok(())
        );
        assert_eq!(
            verify_github_signature(Some(&by_new), GH_BODY, &[new, old]),
            Ok(())
        );
        assert!(verify_github_signature(Some(&by_old), GH_BODY, &[new]).is_err());
    }

    #[test]
    fn hmac_is_over_raw_bytes() {
        // Not valid UTF-8: a decode-then-sign implementation would compute something else
        // (fixes.md F10).
        let body = [0xff, 0xfe, b'{', b'}'];
        let sig = sign_github(GH_SECRET, &body);
        assert_eq!(
            verify_github_signature(Some(&sig), &body, &[GH_SECRET]),
            Ok(())
        );
        let lossy = String::from_utf8_lossy(&body).into_owned();
        assert!(verify_github_signature(Some(&sig), lossy.as_bytes(), &[GH_SECRET]).is_err());
    }

    fn facts<'a>(headers: &'a Headers, body: &'a [u8], ip: &str) -> RequestFacts<'a> {
        RequestFacts {
            headers,
            body,
            client_ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn generic_hmac_accepts_prefixed_and_bare_hex() {
        let method: Verification = serde_json::from_str(r#"{"method":"hmac_sha256"}"#).unwrap();
        let bare = GH_SIG[7..].to_string();
        for value in [GH_SIG, bare.as_str()] {
            let h = headers(&[("X-Signature-256", value)]);
            assert_eq!(
                verify_request(
                    &method,
                    &facts(&h, GH_BODY, "203.0.113.9"),
                    &[GH_SECRET],
                    NonePolicy::default()
                ),
                Ok(())
            );
        }
        let h = headers(&[]);
        assert_eq!(
            verify_request(
                &method,
                &facts(&h, GH_BODY, "203.0.113.9"),
                &[GH_SECRET],
                NonePolicy::default()
            ),
            Err(VerifyError::MissingHeader {
                header: "x-signature-256".into()
            })
        );
        let custom: Verification =
            serde_json::from_str(r#"{"method":"hmac_sha256","headerName":"X-Hook-Sig"}"#).unwrap();
        let h = headers(&[("x-hook-sig", GH_SIG)]);
        assert_eq!(
            verify_request(
                &custom,
                &facts(&h, GH_BODY, "203.0.113.9"),
                &[GH_SECRET],
                NonePolicy::default()
            ),
            Ok(())
        );
    }

    #[test]
    fn bearer_token_and_api_key_alias() {
        let method: Verification = serde_json::from_str(r#"{"method":"api_key"}"#).unwrap();
        assert_eq!(
            method,
            Verification::BearerToken {
                header_name: "authorization".into()
            }
        );
        for value in ["Bearer s3cret", "bearer s3cret", "s3cret"] {
            let h = headers(&[("Authorization", value)]);
            assert_eq!(
                verify_request(
                    &method,
                    &facts(&h, b"{}", "203.0.113.9"),
                    &[b"s3cret"],
                    NonePolicy::default()
                ),
                Ok(()),
                "{value}"
            );
        }
        for value in ["Bearer s3cre", "Bearer s3cret ", "Basic s3cret", ""] {
            let h = headers(&[("Authorization", value)]);
            let err = verify_request(
                &method,
                &facts(&h, b"{}", "203.0.113.9"),
                &[b"s3cret"],
                NonePolicy::default(),
            )
            .unwrap_err();
            assert_eq!(err.to_string(), "the token in authorization is not valid");
        }
        let x_api: Verification =
            serde_json::from_str(r#"{"method":"bearer_token","headerName":"x-api-key"}"#).unwrap();
        let h = headers(&[("X-Api-Key", "k")]);
        assert_eq!(
            verify_request(
                &x_api,
                &facts(&h, b"", "203.0.113.9"),
                &[b"k"],
                NonePolicy::default()
            ),
            Ok(())
        );
    }

    #[test]
    fn ip_allowlist_with_cidr() {
        let method: Verification = serde_json::from_str(
            r#"{"method":"ip_allowlist","allowlist":["192.0.2.7","10.0.0.0/8","2001:db8::/32","bogus"]}"#,
        )
        .unwrap();
        assert!(method.validate().is_err());
        let h = headers(&[]);
        let ok = |ip: &str| {
            verify_request(&method, &facts(&h, b"", ip), &[], NonePolicy::default()).is_ok()
        };
        assert!(ok("192.0.2.7"));
        assert!(!ok("192.0.2.8"));
        assert!(ok("10.200.3.4"));
        assert!(!ok("11.0.0.1"));
        assert!(ok("2001:db8:1::5"));
        assert!(!ok("2001:db9::1"));
        assert!(ok("::ffff:10.1.1.1"));
    }

    #[test]
    fn ip_ranges() {
        let r = IpRange::parse("192.168.1.0/23").unwrap();
        assert!(r.contains("192.168.0.255".parse().unwrap()));
        assert!(r.contains("192.168.1.1".parse().unwrap()));
        assert!(!r.contains("192.168.2.1".parse().unwrap()));
        assert!(
            IpRange::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(IpRange::parse("1.2.3.4/33").is_err());
        assert!(IpRange::parse("::/129").is_err());
        assert!(IpRange::parse("1.2.3.4/x").is_err());
        assert!(IpRange::parse("").is_err());
    }

    #[test]
    fn none_only_for_local_loopback() {
        let h = headers(&[]);
        let local = NonePolicy {
            source_is_local: true,
            allow_remote_unauthenticated: false,
        };
        let v = Verification::None;
        assert!(verify_request(&v, &facts(&h, b"", "127.0.0.1"), &[], local).is_ok());
        assert!(verify_request(&v, &facts(&h, b"", "::1"), &[], local).is_ok());
        assert!(matches!(
            verify_request(&v, &facts(&h, b"", "192.0.2.1"), &[], local),
            Err(VerifyError::RemoteUnauthenticated { .. })
        ));
        let remote_ok = NonePolicy {
            source_is_local: true,
            allow_remote_unauthenticated: true,
        };
        assert!(verify_request(&v, &facts(&h, b"", "192.0.2.1"), &[], remote_ok).is_ok());
        assert_eq!(
            verify_request(&v, &facts(&h, b"", "127.0.0.1"), &[], NonePolicy::default()),
            Err(VerifyError::NoneNotAllowed)
        );
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxies = [IpRange::parse("10.0.0.0/8").unwrap()];
        let peer = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_ip(peer("192.0.2.1"), Some("127.0.0.1"), &proxies),
            Ok(peer("192.0.2.1"))
        );
        // Trusted peer: right-most non-proxy entry; a forged left-most entry is ignored.
        assert_eq!(
            client_ip(
                peer("10.0.0.2"),
                Some("127.0.0.1, 198.51.100.4, 10.0.0.3"),
                &proxies
            ),
            Ok(peer("198.51.100.4"))
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), Some("[2001:db8::1]:443"), &proxies),
            Ok(peer("2001:db8::1"))
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), Some("198.51.100.4:8080"), &proxies),
            Ok(peer("198.51.100.4"))
        );
        assert_eq!(
            client_ip(peer("10.0.0.2"), None, &proxies),
            Ok(peer("10.0.0.2"))
        );
        assert!(client_ip(peer("10.0.0.2"), Some("nonsense"), &proxies).is_err());
    }

    #[test]
    fn presets() {
        let sig = GH_SIG[7..].to_string();
        let gitea = GitPreset::Gitea.signature_scheme().unwrap();
        let h = headers(&[("X-Gitea-Signature", &sig)]);
        assert_eq!(verify_preset(gitea, &h, GH_BODY, &[GH_SECRET]), Ok(()));
        // Gitea signs without a prefix; a prefixed value is malformed for it.
        let h = headers(&[("X-Gitea-Signature", GH_SIG)]);
        assert!(verify_preset(gitea, &h, GH_BODY, &[GH_SECRET]).is_err());

        let gh = GitPreset::GithubRepo.signature_scheme().unwrap();
        let h = headers(&[("x-hub-signature-256", GH_SIG)]);
        assert_eq!(verify_preset(gh, &h, GH_BODY, &[GH_SECRET]), Ok(()));

        let gitlab = GitPreset::GitlabRepo.signature_scheme().unwrap();
        let h = headers(&[("X-Gitlab-Token", "tok")]);
        assert_eq!(verify_preset(gitlab, &h, b"", &[b"tok"]), Ok(()));
        let h = headers(&[("X-Gitlab-Token", "Bearer tok")]);
        assert!(verify_preset(gitlab, &h, b"", &[b"tok"]).is_err());
        assert!(GitPreset::Custom.signature_scheme().is_none());
    }

    #[test]
    fn constant_time_eq_any_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
