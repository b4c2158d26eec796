//! `/metrics` and the middleware that times every request, over [`crate::metrics::Metrics`].

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::error::GatewayError;
use crate::state::GatewayState;

/// Times every request by its route's pattern (after routing, from the response).
pub(crate) async fn time_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let metrics = request
        .app_data::<web::Data<GatewayState>>()
        .map(|state| Arc::clone(&state.metrics));
    let method = request.method().to_string();
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        metrics
            .requests
            .get_or_create(&vec![("route".into(), route), ("method".into(), method)])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

/// The measurements, as Prometheus scrapes them.
#[utoipa::path(get, path = "/metrics", tag = "Gateway",
    responses((status = 200, description = "OpenMetrics text: request, fan-out and ledger-append times; event-to-notification and notification-to-acknowledgement times; open and overdue notifications by rule and team; the outboxes' depth. No person data.", content_type = "application/openmetrics-text")))]
pub(crate) async fn scrape(state: web::Data<GatewayState>) -> Result<HttpResponse, GatewayError> {
    let metrics = &state.metrics;
    let now = state.notifier.now().timestamp_millis();
    metrics.open.clear();
    metrics.overdue.clear();
    for (rule, org, role, open, overdue) in state.store.notification_counts(now).await? {
        let labels = vec![
            ("rule".to_owned(), rule),
            ("organisation".to_owned(), org),
            ("role".to_owned(), role),
        ];
        metrics.open.get_or_create(&labels).set(open);
        metrics.overdue.get_or_create(&labels).set(overdue);
    }
    let cursor = state.store.notify_cursor().await?;
    metrics
        .events_waiting
        .set(state.store.events_count_after(cursor, 1_000_000).await?);
    metrics
        .subscription_waiting
        .set(state.store.subscription_events_waiting().await?);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry)
        .map_err(|_| GatewayError::Export("the metrics could not be written".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
