//! OpenTelemetry traces end to end: the real binaries export spans over OTLP/HTTP to a real
//! receiver, and one notification makes one trace whose spans link up hop by hop:
//! HTTP request → outbox publish → Kafka consume (→ retry consume) → provider call, and the
//! projector's consume of each status event.

use std::time::Duration;

use crate::harness::{Stack, Tiers};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;
use test_support::{
    otlp::{OtlpReceiver, ReceivedSpan},
    smtp::Mode,
};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// The one child of `parent` that `keep` accepts (the test fails if there is none or more).
fn only_child<'a>(
    spans: &'a [ReceivedSpan],
    parent: &ReceivedSpan,
    what: &str,
    keep: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found = spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id && keep(s))
        .collect();
    only(found, what, spans)
}

fn only<'a>(found: Vec<&'a ReceivedSpan>, what: &str, all: &[ReceivedSpan]) -> &'a ReceivedSpan {
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {what}, found {found:#?}\nall spans: {all:#?}"
    );
    found[0]
}

async fn post_notification(s: &Stack, user: Uuid, request_id: &str, traceparent: Option<&str>) -> (Uuid, String) {
    let mut req = s
        .http
        .post(format!("{}/api/v1/notifications/", s.gateway.url()))
        .bearer_auth(&s.token)
        .json(&json!({
            "notification_type": "email",
            "user_id": user,
            "template_code": "welcome_email",
            "variables": {"name": "Ada", "link": "l"},
            "request_id": request_id,
            "priority": 5,
            "metadata": {}
        }));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let correlation = resp.headers()["x-correlation-id"].to_str().unwrap().to_string();
    let v: serde_json::Value = resp.json().await.unwrap();
    (
        v["data"]["notification_id"].as_str().unwrap().parse().unwrap(),
        correlation,
    )
}

#[tokio::test]
async fn one_notification_is_one_trace_from_the_http_request_to_the_provider_call() {
    let receiver = OtlpReceiver::start().await;
    let mut s = Stack::start_with_env(
        // The SMTP server accepts again as soon as the first failure is reported, well before
        // the retry is due.
        Tiers {
            // Long enough for the projector (a new static member of its group) to show
            // `retrying` before the retry is due.
            first_delay_ms: 15000,
            first_attempts: 1,
            second_delay_ms: 500,
            second_attempts: 1,
        },
        &[
            ("APP_OTLP_ENDPOINT", receiver.endpoint()),
            // Export every 200 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ],
    )
    .await;
    s.welcome_template().await;
    let user = s
        .create_user("ada@example.com", None, json!({"email": true, "push": false}))
        .await;
    // The first attempt fails (451), the retry succeeds.
    s.smtp.set_mode(Mode::TransientFailure);
    s.add_email_worker().await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let (id, _) = post_notification(&s, user, "traced-1", Some(&format!("00-{trace_id}-{caller_span}-01"))).await;
    s.wait_status(id, "retrying", T).await;
    s.smtp.set_mode(Mode::Accept);
    s.wait_status(id, "sent", T).await;

    let prefix = s.prefix.clone();
    let main_topic = format!("{prefix}notifications.email");
    let retry_topic = format!("{prefix}notifications.email.retry-30s");
    // Complete when every span expected is in (each service exports on its own schedule).
    receiver
        .wait_for("the whole trace", T, |spans| {
            let count = |service: &str, kind: SpanKind| {
                spans
                    .iter()
                    .filter(|s| s.trace_id == trace_id && s.service == service && s.kind == kind)
                    .count()
            };
            count("gateway", SpanKind::Server) >= 1
                && count("outbox-relay", SpanKind::Producer) >= 1
                && count("email-worker", SpanKind::Consumer) >= 2
                && count("email-worker", SpanKind::Client) >= 2
                && count("status-projector", SpanKind::Consumer) >= 2
        })
        .await;
    let spans: Vec<ReceivedSpan> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();

    // The gateway's server span is the child of the caller's span.
    let http = only(
        spans
            .iter()
            .filter(|s| s.service == "gateway" && s.kind == SpanKind::Server)
            .collect(),
        "gateway server span",
        &spans,
    );
    assert_eq!(http.name, "POST /api/v1/notifications/");
    assert_eq!(http.parent_span_id, caller_span);
    assert_eq!(
        http.attributes.get("http.response.status_code").map(String::as_str),
        Some("202")
    );

    // The relay's producer span is the child of the request that wrote the outbox row (the
    // request's other children are its internal steps, e.g. the user and template checks).
    let publish = only_child(&spans, http, "relay publish span", |s| s.kind == SpanKind::Producer);
    assert_eq!(
        (publish.service.as_str(), publish.kind, publish.name.as_str()),
        (
            "outbox-relay",
            SpanKind::Producer,
            format!("{main_topic} publish").as_str()
        )
    );

    // The worker's consumer span is the child of the producer span; its provider call failed.
    let first = only_child(&spans, publish, "first delivery attempt", |s| {
        s.kind == SpanKind::Consumer
    });
    assert_eq!(
        (first.service.as_str(), first.kind, first.name.as_str()),
        (
            "email-worker",
            SpanKind::Consumer,
            format!("{main_topic} process").as_str()
        )
    );
    assert!(first.error, "the first attempt failed: {first:#?}");
    let failed_call = only_child(&spans, first, "first provider call", |s| s.kind == SpanKind::Client);
    assert_eq!(failed_call.name, "smtp send");
    assert!(failed_call.error);

    // The retry record carries the first attempt's context: the retry is its child.
    let retry = only_child(&spans, first, "retry attempt", |s| {
        s.service == "email-worker" && s.kind == SpanKind::Consumer
    });
    assert_eq!(retry.name, format!("{retry_topic} process"));
    assert!(!retry.error);
    let call = only_child(&spans, retry, "successful provider call", |s| {
        s.kind == SpanKind::Client
    });
    assert_eq!(call.name, "smtp send");
    assert!(!call.error);

    // Each attempt's status event is applied in a projector span that is its child.
    for attempt in [first, retry] {
        only_child(&spans, attempt, "projector span of an attempt", |s| {
            s.service == "status-projector"
        });
    }

    // A request without a traceparent starts a trace of its own at the gateway.
    let (second, _) = post_notification(&s, user, "traced-2", None).await;
    s.wait_status(second, "sent", T).await;
    let second_id = second.to_string();
    // Each service exports on its own schedule: wait for the whole chain.
    receiver
        .wait_for("the second trace", T, |spans| {
            spans
                .iter()
                .filter(|s| {
                    s.service == "email-worker"
                        && s.kind == SpanKind::Consumer
                        && s.attributes.get("notification_id") == Some(&second_id)
                })
                .any(|consume| {
                    spans
                        .iter()
                        .find(|p| p.span_id == consume.parent_span_id)
                        .is_some_and(|publish| spans.iter().any(|r| r.span_id == publish.parent_span_id))
                })
        })
        .await;
    let all = receiver.spans();
    let consume = all
        .iter()
        .find(|s| {
            s.service == "email-worker"
                && s.kind == SpanKind::Consumer
                && s.attributes.get("notification_id") == Some(&second_id)
        })
        .unwrap();
    assert_ne!(consume.trace_id, trace_id);
    let publish = all.iter().find(|s| s.span_id == consume.parent_span_id).unwrap();
    assert_eq!(publish.kind, SpanKind::Producer);
    let root = all.iter().find(|s| s.span_id == publish.parent_span_id).unwrap();
    assert_eq!((root.service.as_str(), root.kind), ("gateway", SpanKind::Server));
    assert_eq!(root.parent_span_id, "", "a new trace starts at the gateway");
    assert_eq!(root.trace_id, consume.trace_id);
}
