//! An end-to-end check of a running Kafka pilot: create a topic, produce a numbered sequence, consume it in a
//! consumer group, and account for every message (received once, duplicated, or missing). `pilot smoke` runs it
//! on a fresh pilot; tests use the same two halves.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;
use serde::Serialize;

use crate::error::{PilotError, Result};
use crate::pilots::framework::details::KafkaDetails;

/// What a smoke run saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmokeReport {
    pub topic: String,
    pub partitions: u32,
    pub messages: u64,
    pub message_bytes: usize,
    /// Seconds to produce and flush everything.
    pub produce_s: f64,
    /// Seconds from subscribing until the last message arrived (includes the group join).
    pub consume_s: f64,
    pub received_once: u64,
    pub duplicates: u64,
    pub missing: u64,
    pub foreign: u64,
}

impl SmokeReport {
    /// True when every message arrived exactly once.
    pub fn exactly_once(&self) -> bool {
        self.received_once == self.messages
            && self.duplicates == 0
            && self.missing == 0
            && self.foreign == 0
    }
}

fn kerr(details: &KafkaDetails, op: &str, e: impl ToString) -> PilotError {
    PilotError::Kafka {
        operation: op.into(),
        bootstrap: details.bootstrap(),
        message: e.to_string(),
    }
}

/// Produce messages 0..n to `topic`, each `message_bytes` long (at least 8: the sequence number, little endian),
/// keyed by sequence. Returns the seconds taken, delivery confirmed (acks=all).
pub fn produce_sequence(
    details: &KafkaDetails,
    topic: &str,
    n: u64,
    message_bytes: usize,
) -> Result<f64> {
    let mut cfg = details.client.producer_config(&details.bootstrap());
    cfg.set("acks", "all").set("linger.ms", "5");
    let producer: ThreadedProducer<DefaultProducerContext> = cfg
        .create()
        .map_err(|e| kerr(details, "creating producer", e))?;
    let mut payload = vec![0u8; message_bytes.max(8)];
    let t0 = Instant::now();
    for seq in 0..n {
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        let key = seq.to_le_bytes();
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(kerr(details, "produce", e)),
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| kerr(details, "flush", e))?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Consume `topic` in consumer group `group` until messages 0..n have all arrived or `timeout` passes; count each.
pub fn consume_sequence(
    details: &KafkaDetails,
    topic: &str,
    group: &str,
    n: u64,
    timeout: Duration,
) -> Result<(u64, u64, u64, u64, f64)> {
    let mut cfg = details.client.consumer_config(&details.bootstrap(), group);
    cfg.set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = cfg
        .create()
        .map_err(|e| kerr(details, "creating consumer", e))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| kerr(details, "subscribe", e))?;
    let mut seen = vec![0u32; n as usize];
    let (mut once, mut dups, mut foreign) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    while once < n && t0.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let seq = m
                    .payload()
                    .filter(|p| p.len() >= 8)
                    .map(|p| u64::from_le_bytes(p[..8].try_into().expect("8 bytes")));
                match seq {
                    Some(s) if s < n => {
                        let c = &mut seen[s as usize];
                        *c += 1;
                        if *c == 1 {
                            once += 1;
                        } else {
                            dups += 1;
                        }
                    }
                    _ => foreign += 1,
                }
            }
            Some(Err(e)) => return Err(kerr(details, "consume", e)),
            None => {}
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // Late duplicates would show up right after the last new message.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_millis(300) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
            dups += 1;
        }
    }
    consumer.unsubscribe();
    Ok((once, dups, n - once, foreign, elapsed))
}

/// Create a topic with the pilot's default partition count, send `n` messages through it, read them back in a
/// consumer group, delete the topic.
pub fn run(
    details: &KafkaDetails,
    topic: &str,
    n: u64,
    message_bytes: usize,
) -> Result<SmokeReport> {
    let admin = details.admin(Duration::from_secs(10));
    let partitions = details.default_partitions();
    admin.create_topic(topic, partitions, 1)?;
    let result = (|| {
        let produce_s = produce_sequence(details, topic, n, message_bytes)?;
        let (received_once, duplicates, missing, foreign, consume_s) = consume_sequence(
            details,
            topic,
            &format!("{topic}-group"),
            n,
            Duration::from_secs(120),
        )?;
        Ok(SmokeReport {
            topic: topic.to_string(),
            partitions,
            messages: n,
            message_bytes: message_bytes.max(8),
            produce_s,
            consume_s,
            received_once,
            duplicates,
            missing,
            foreign,
        })
    })();
    let deleted = admin.delete_topic(topic);
    let report = result?;
    deleted?;
    Ok(report)
}
