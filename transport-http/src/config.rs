//! Configuration of [`HttpTransport`](crate::HttpTransport).

use std::time::Duration;

use ipnet::IpNet;

/// Settings for [`HttpTransport::new`](crate::HttpTransport::new).
///
/// Start from [`HttpConfig::default()`] and change what you need with the builder setters:
///
/// ```
/// use std::time::Duration;
/// use hookline_transport_http::HttpConfig;
///
/// let config = HttpConfig::default()
///     .allow_networks(vec!["10.20.0.0/16".parse().unwrap()])
///     .connect_timeout(Duration::from_secs(3));
/// assert!(!config.allow_http);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Networks exempt from the SSRF guard: addresses inside them may be connected to even when
    /// [`is_public`](crate::is_public) says no. Default: none.
    pub allow_networks: Vec<IpNet>,
    /// Whether plain `http://` URLs may be used. Default: `false` (only `https://`).
    pub allow_http: bool,
    /// Idle pooled connections kept per host. Default: 64.
    pub pool_idle_per_host: usize,
    /// Limit for DNS resolution plus TCP connect (plus TLS handshake). Default: 5 s.
    pub connect_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allow_networks: Vec::new(),
            allow_http: false,
            pool_idle_per_host: 64,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl HttpConfig {
    /// Sets [`allow_networks`](Self::allow_networks).
    #[must_use]
    pub fn allow_networks(mut self, networks: Vec<IpNet>) -> Self {
        self.allow_networks = networks;
        self
    }

    /// Sets [`allow_http`](Self::allow_http).
    #[must_use]
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Sets [`pool_idle_per_host`](Self::pool_idle_per_host).
    #[must_use]
    pub fn pool_idle_per_host(mut self, max: usize) -> Self {
        self.pool_idle_per_host = max;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}
