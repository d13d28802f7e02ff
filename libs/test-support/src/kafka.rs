//! Reading what landed on topics.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message},
    ClientConfig, Offset, TopicPartitionList,
};

/// One record as a test sees it.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Reads every record of `topics` from the beginning until `expected` records arrived and
/// nothing more came for `settle`, or `timeout` passed. Returns them in per-partition order.
pub fn read_all(
    bootstrap: &str,
    topics: &[String],
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", crate::unique("reader-"))
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4")
        .create()
        .expect("consumer");
    // Topics may not exist yet (services create them at start): wait until they do.
    let deadline = std::time::Instant::now() + timeout;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        loop {
            let partitions: Vec<i32> = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map(|md| {
                    md.topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect()
                })
                .unwrap_or_default();
            if !partitions.is_empty() {
                for p in partitions {
                    tpl.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
                }
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Vec::new();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last_seen = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                last_seen = std::time::Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer error (ignored): {e}"),
            None => {
                if out.len() >= expected && last_seen.elapsed() >= settle {
                    break;
                }
            }
        }
    }
    out
}
