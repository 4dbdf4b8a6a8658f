//! One webhook delivery: the body, its signature, the addresses a delivery
//! may go to, the backoff between attempts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::WebhooksConfig;
use crate::store::events::StreamEvent;

/// The body of a delivery: the same bytes on every attempt.
pub fn body(delivery: &str, webhook: &str, ev: &StreamEvent) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "delivery": delivery,
        "webhook": webhook,
        "event": format!("document.{}", ev.stage),
        "data": ev,
    }))
    .unwrap_or_default()
}

/// `sha256=HEX`, HEX = HMAC-SHA256(secret, timestamp + "." + body).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// The wait after `attempts` failed attempts: the initial backoff, doubled
/// for each attempt after the first, at most the maximum.
pub fn backoff(cfg: &WebhooksConfig, attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(30);
    let ms = cfg
        .initial_backoff_ms
        .saturating_mul(1u64 << shift)
        .min(cfg.max_backoff_ms);
    Duration::from_millis(ms)
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, shared, multicast, documentation or otherwise reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b)) // NAT64 (reaches IPv4 anywhere)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240)
}

/// Why a webhook's URL is not one docpipe sends to.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("url {url:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("url {url:?}: only http and https are sent to"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "url {url:?}: credentials in the URL are not kept; sign with the secret instead"
        ));
    }
    let ip = match u.host() {
        None => return Err(format!("url {url:?} has no host")),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            if !allow_private && (d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"))
            {
                return Err(private(url));
            }
            None
        }
    };
    if let Some(ip) = ip {
        if !allow_private && !is_public(ip) {
            return Err(private(url));
        }
    }
    Ok(u)
}

fn private(url: &str) -> String {
    format!(
        "url {url:?} is a loopback or private address; set [webhooks] allow_private = true to allow it"
    )
}

/// The resolver of the deliveries' client: it drops every address that is
/// not public, so that a name cannot lead a delivery to the host's own
/// services (checked at each connection, not once at creation).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} has no public address (set [webhooks] allow_private = true to send to private ones)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client every delivery goes out on: no redirects followed (a
/// redirect could lead anywhere), no proxy, the attempt's time limit.
pub fn client(cfg: &WebhooksConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(5_000)))
        .user_agent(concat!("docpipe/", env!("CARGO_PKG_VERSION")));
    if !cfg.allow_private {
        b = b.dns_resolver(Arc::new(PublicOnly));
    }
    Ok(b.build()?)
}

/// One attempt: Ok, or the status (if any answer came) and what went wrong.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    delivery: &str,
    attempt: u32,
    body: Vec<u8>,
) -> Result<(), (Option<u16>, String)> {
    let ts = crate::model::now_ms() / 1000;
    let sig = signature(secret, ts, &body);
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-docpipe-delivery", delivery)
        .header("x-docpipe-timestamp", ts.to_string())
        .header("x-docpipe-signature", sig)
        .header("x-docpipe-attempt", attempt.to_string())
        .body(body)
        .send()
        .await;
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => {
            let status = resp.status();
            Err((
                Some(status.as_u16()),
                format!("the receiver answered {status}"),
            ))
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            Err((None, msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently, as a receiver would (Python):
        // hmac.new(b"key", b"1700000000.{}", "sha256").hexdigest()
        assert_eq!(
            signature("key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let cfg = WebhooksConfig {
            initial_backoff_ms: 1000,
            max_backoff_ms: 5000,
            ..Default::default()
        };
        let ms: Vec<u64> = (1..=5)
            .map(|a| backoff(&cfg, a).as_millis() as u64)
            .collect();
        assert_eq!(ms, [1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn private_and_loopback_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
        ] {
            let e = check_url(url, false).unwrap_err();
            assert!(e.contains("allow_private"), "{url}: {e}");
            assert!(check_url(url, true).is_ok(), "{url}");
        }
        assert!(check_url("https://hooks.example.com/docpipe", false).is_ok());
        assert!(check_url("http://93.184.216.34/", false).is_ok());
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://u:p@example.com/",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }
}
