//! A real OTLP/HTTP trace receiver for tests: accepts `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest` (what a service's exporter sends a collector), decodes it and
//! keeps every span, so a test can check names, kinds and parent links.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{any_value::Value as AnyValue, KeyValue},
    trace::v1::span::SpanKind,
};
use prost::Message as _;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// One exported span.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that exported it.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: HashMap<String, String>,
    /// Whether the span's status is `Error`.
    pub error: bool,
}

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    port: u16,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    requests: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP receiver");
        let port = listener.local_addr().expect("local addr").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let (s, r) = (spans.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), r.clone()));
            }
        });
        Self {
            port,
            spans,
            requests,
            task,
        }
    }

    /// The base address to give a service as `APP_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("spans").clone()
    }

    /// How many export requests arrived.
    pub fn requests(&self) -> usize {
        *self.requests.lock().expect("requests")
    }

    /// Waits until `done` holds for the spans received (panics after `timeout`, listing them).
    pub async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let list: Vec<String> = spans
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {:?} {} parent={} id={}",
                            s.service, s.kind, s.name, s.parent_span_id, s.span_id
                        )
                    })
                    .collect();
                panic!("timed out waiting for {what}; spans received:\n{}", list.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP/1.1 with keep-alive, as the exporter's client speaks it: request line, headers,
/// a `Content-Length` body.
async fn serve(stream: TcpStream, spans: Arc<Mutex<Vec<ReceivedSpan>>>, requests: Arc<Mutex<usize>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let ok = request_line.starts_with("POST /v1/traces ");
        let status = match ExportTraceServiceRequest::decode(body.as_slice()) {
            Ok(req) if ok => {
                *requests.lock().expect("requests") += 1;
                spans.lock().expect("spans").extend(flatten(req));
                "200 OK"
            }
            Ok(_) => "404 Not Found",
            Err(_) => "400 Bad Request",
        };
        let response =
            format!("HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
        if reader.get_mut().write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn text(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn flatten(req: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(text)
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                out.push(ReceivedSpan {
                    service: service.clone(),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text(kv))).collect(),
                    error: span.status.as_ref().is_some_and(|s| s.code == 2),
                    name: span.name,
                });
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
