//! Counters of the proxy for `/metrics`: requests by service and status, open WebSockets.
//! Lock-free: one atomic per (service, status code), so counting costs one `fetch_add`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Service;

/// Status codes 100..=599 have a counter each.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

/// The proxy's counters. Shared by every clone of [`super::Proxy`].
pub struct ProxyMetrics {
    requests: [Box<[AtomicU64; STATUSES]>; Service::ALL.len()],
    websockets_open: AtomicU64,
    websockets_total: AtomicU64,
    /// Previews' tunnels opened: shared with the tunnels' connector.
    pub(crate) tunnels: Arc<TunnelCounts>,
}

/// Tunnels to apps opened: connections the gateway handed over, and spliced ones.
#[derive(Debug, Default)]
pub(crate) struct TunnelCounts {
    pub(crate) handed_over: AtomicU64,
    pub(crate) spliced: AtomicU64,
}

impl std::fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyMetrics")
            .field("websockets_open", &self.websockets_open())
            .finish_non_exhaustive()
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| Box::new(std::array::from_fn(|_| AtomicU64::new(0)))),
            websockets_open: AtomicU64::new(0),
            websockets_total: AtomicU64::new(0),
            tunnels: Arc::default(),
        }
    }
}

impl ProxyMetrics {
    /// Fresh counters but the tunnels', which are `tunnels` (a proxy made from another keeps
    /// its tunnels' client).
    pub(crate) fn with_tunnels(tunnels: Arc<TunnelCounts>) -> Self {
        Self {
            tunnels,
            ..Self::default()
        }
    }

    /// Counts one answered request (any status: the container's, or octod's own error).
    pub fn record(&self, service: Service, status: u16) {
        if let Some(counter) = status
            .checked_sub(FIRST_STATUS)
            .and_then(|i| self.requests[service.index()].get(usize::from(i)))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests answered so far for `service` with `status`.
    pub fn requests(&self, service: Service, status: u16) -> u64 {
        status
            .checked_sub(FIRST_STATUS)
            .and_then(|i| self.requests[service.index()].get(usize::from(i)))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Proxied WebSockets open right now.
    pub fn websockets_open(&self) -> u64 {
        self.websockets_open.load(Ordering::Relaxed)
    }

    /// Marks a WebSocket open until the guard drops.
    pub(crate) fn websocket_opened(&self) -> WebSocketGuard<'_> {
        self.websockets_open.fetch_add(1, Ordering::Relaxed);
        self.websockets_total.fetch_add(1, Ordering::Relaxed);
        WebSocketGuard(self)
    }

    /// Appends the counters in the Prometheus text format (version 0.0.4).
    pub fn render_prometheus(&self, out: &mut String) {
        out.push_str(
            "# HELP octod_proxy_requests_total Requests to a session's services, by service and status.\n\
             # TYPE octod_proxy_requests_total counter\n",
        );
        for service in Service::ALL {
            for (i, counter) in self.requests[service.index()].iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let status = usize::from(FIRST_STATUS) + i;
                    let _ = writeln!(
                        out,
                        "octod_proxy_requests_total{{service=\"{}\",status=\"{status}\"}} {n}",
                        service.as_str()
                    );
                }
            }
        }
        let _ = write!(
            out,
            "# HELP octod_proxy_websockets_open Proxied terminal WebSockets open now.\n\
             # TYPE octod_proxy_websockets_open gauge\n\
             octod_proxy_websockets_open {}\n\
             # HELP octod_proxy_websockets_total Proxied terminal WebSockets opened.\n\
             # TYPE octod_proxy_websockets_total counter\n\
             octod_proxy_websockets_total {}\n",
            self.websockets_open(),
            self.websockets_total.load(Ordering::Relaxed),
        );
        let _ = write!(
            out,
            "# HELP octod_proxy_preview_tunnels_total Connections to sessions' apps opened for \
             previews, by how: handed over by the gateway, or spliced by it.\n\
             # TYPE octod_proxy_preview_tunnels_total counter\n\
             octod_proxy_preview_tunnels_total{{how=\"handed_over\"}} {}\n\
             octod_proxy_preview_tunnels_total{{how=\"spliced\"}} {}\n",
            self.tunnels.handed_over.load(Ordering::Relaxed),
            self.tunnels.spliced.load(Ordering::Relaxed),
        );
    }
}

/// An open WebSocket; closing it (dropping the guard) lowers the gauge.
pub(crate) struct WebSocketGuard<'a>(&'a ProxyMetrics);

impl Drop for WebSocketGuard<'_> {
    fn drop(&mut self) {
        self.0.websockets_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_non_zero_counters_and_the_gauge() {
        let metrics = ProxyMetrics::default();
        metrics.record(Service::Files, 200);
        metrics.record(Service::Files, 200);
        metrics.record(Service::Opencode, 502);
        metrics.record(Service::Terminal, 99); // out of range: ignored
        metrics.record(Service::Terminal, 600);
        let guard = metrics.websocket_opened();
        metrics.tunnels.handed_over.fetch_add(3, Ordering::Relaxed);
        let mut out = String::new();
        metrics.render_prometheus(&mut out);
        drop(guard);
        assert_eq!(
            out,
            "# HELP octod_proxy_requests_total Requests to a session's services, by service and status.\n\
             # TYPE octod_proxy_requests_total counter\n\
             octod_proxy_requests_total{service=\"opencode\",status=\"502\"} 1\n\
             octod_proxy_requests_total{service=\"files\",status=\"200\"} 2\n\
             # HELP octod_proxy_websockets_open Proxied terminal WebSockets open now.\n\
             # TYPE octod_proxy_websockets_open gauge\n\
             octod_proxy_websockets_open 1\n\
             # HELP octod_proxy_websockets_total Proxied terminal WebSockets opened.\n\
             # TYPE octod_proxy_websockets_total counter\n\
             octod_proxy_websockets_total 1\n\
             # HELP octod_proxy_preview_tunnels_total Connections to sessions' apps opened for \
             previews, by how: handed over by the gateway, or spliced by it.\n\
             # TYPE octod_proxy_preview_tunnels_total counter\n\
             octod_proxy_preview_tunnels_total{how=\"handed_over\"} 3\n\
             octod_proxy_preview_tunnels_total{how=\"spliced\"} 0\n"
        );
        assert_eq!(metrics.websockets_open(), 0);
        assert_eq!(metrics.requests(Service::Files, 200), 2);
    }
}
