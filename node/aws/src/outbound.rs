//! The one blocking HTTP(S) client shape for the calls a leader makes outside the cluster:
//! CloudWatch's `DescribeAlarms`, Prometheus queries and webhook deliveries. rustls on
//! ring, checked against the system's roots as the AWS SDK's client loads them
//! (`rustls-native-certs`: `SSL_CERT_FILE`, `SSL_CERT_DIR`, else the platform's bundle).
//! No roots found: HTTPS calls fail with a TLS error naming the certificate, plain HTTP
//! works. HTTP error statuses are answers, not errors: each caller reads its own.

use std::time::Duration;

/// An agent whose every call (connect to last byte) ends within `timeout`, following at
/// most `redirects` redirects.
pub fn outbound_agent(timeout: Duration, redirects: u32) -> ureq::Agent {
    let roots: Vec<_> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    // Always set, even empty: ureq's default (its bundled WebPKI roots) is not in this
    // build and panics at the first HTTPS call; an empty set fails that call instead.
    let roots = ureq::tls::RootCerts::new_with_certs(&roots);
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(redirects)
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .build()
        .into()
}
