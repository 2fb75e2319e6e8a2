//! The daemons' OpenMetrics endpoints: `GET /metrics`, served by axum (the HTTP stack tonic
//! already brings), the text encoded by `prometheus-client` from the same status each daemon's
//! gRPC service answers with. Read-only, unauthenticated, like chrony's and node_exporter's:
//! bind it to an address only the scraper reaches.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// The OpenMetrics content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value escaped as the OpenMetrics text format requires (`\\`, `\"`, `\n`):
/// `prometheus-client` writes label values as they are, and ids and addresses come from
/// configuration.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Escaped(pub String);

impl EncodeLabelValue for Escaped {
    fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => e.write_str("\\\\")?,
                '"' => e.write_str("\\\"")?,
                '\n' => e.write_str("\\n")?,
                c => e.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// The text of `reg` (writing into a `String` cannot fail).
pub fn encode(reg: &prometheus_client::registry::Registry) -> String {
    let mut o = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut o, reg);
    o
}

/// What a scrape answers: the daemon's current metrics text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `/metrics` on `addr` until the runtime shuts down; a bind failure is logged and the
/// daemon runs on without metrics.
pub async fn serve(addr: SocketAddr, render: Render) {
    use axum::http::header;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("metrics: cannot listen on {addr}: {e}; metrics are off");
            return;
        }
    };
    tracing::info!("metrics on http://{addr}/metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()) }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics: {e}; metrics are off");
    }
}
