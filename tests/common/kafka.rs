//! Kafka helpers for the integration tests: a fresh set of topics per test on
//! the broker started by `scripts/kafka-up.sh`, the generator producing into
//! them, a `read_committed` reader of the output topics that checks them
//! against a SQLite result by source position (exactly once), and a guard
//! that stops the broker and always starts it again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use connectors::kafka::admin::block_on;
use connectors::sample::TOPICS;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{edu_rtdw, rows};

/// The broker of `scripts/kafka-up.sh`.
pub const BROKERS: &str = "127.0.0.1:9092";
static BROKER: Mutex<()> = Mutex::new(());

/// Serializes the tests of one binary that use the broker (each is timing-sensitive or heavy).
pub fn lock() -> MutexGuard<'static, ()> {
    BROKER.lock().unwrap_or_else(|e| e.into_inner())
}

/// The output topics.
pub const OUTPUTS: [&str; 2] = ["timeline_analysis_student", "edu_rtdw_dlq"];

/// Fails (does not skip) when no broker answers.
pub fn require_broker() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9092));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok(),
        "nothing answers on 127.0.0.1:9092: run scripts/kafka-up.sh first (it fetches and starts Apache Kafka)"
    );
}

/// A fresh topic prefix with all source and output topics created, each with `partitions`
/// partitions, and known to the broker (every partition has a leader) when this returns.
pub fn topics(test: &str, partitions: u32) -> String {
    require_broker();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let prefix = format!("t{}{}_{test}_", std::process::id(), nanos % 1_000_000_007);
    let names: Vec<String> = TOPICS.iter().chain(OUTPUTS.iter()).map(|name| format!("{prefix}{name}")).collect();
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", BROKERS).create().expect("admin client");
    let new: Vec<NewTopic> =
        names.iter().map(|name| NewTopic::new(name, partitions as i32, TopicReplication::Fixed(1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = block_on(admin.create_topics(&new, &options)).expect("create topics");
    for result in created {
        if let Err((name, code)) = result {
            panic!("creating topic {name} failed: {code}");
        }
    }
    for name in &names {
        wait_for_leaders(&admin, name, partitions as usize);
    }
    prefix
}

/// Polls the broker's metadata until `topic` has `partitions` partitions, each with a leader
/// (at most 30 s): a topic just created may not be served yet.
fn wait_for_leaders(admin: &AdminClient<DefaultClientContext>, topic: &str, partitions: usize) {
    let started = Instant::now();
    loop {
        let ready = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(5)).is_ok_and(|md| {
            md.topics().iter().any(|t| {
                t.error().is_none()
                    && t.partitions().len() == partitions
                    && t.partitions().iter().all(|p| p.error().is_none() && p.leader() >= 0)
            })
        });
        if ready {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "topic {topic} has no leaders after 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Produces the generated sample (`--scale`, `--seed`, `--partitions`) into the topics of `prefix`.
pub fn gen_to_kafka(dir: &Path, prefix: &str, scale: u64, seed: u64, partitions: u32) {
    let out = edu_rtdw(
        &[
            "gen",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            prefix,
            "--scale",
            &scale.to_string(),
            "--seed",
            &seed.to_string(),
            "--partitions",
            &partitions.to_string(),
        ],
        dir,
    );
    assert!(out.status.success(), "gen --brokers failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes the generated sample (`--scale`, `--seed`, `--partitions`) as files under `dir/out_dir`.
pub fn gen_to_files(dir: &Path, out_dir: &str, scale: u64, seed: u64, partitions: u32) {
    let args = ["gen", "--out", out_dir, "--scale", &scale.to_string(), "--seed", &seed.to_string()];
    let out = edu_rtdw(&[&args[..], &["--partitions", &partitions.to_string()]].concat(), dir);
    assert!(out.status.success(), "gen --out failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Appends every partition file of the layout `dir/more` to the same file of `dir/to`
/// (created if missing): one log after the other, as a topic that received both.
pub fn append_layout(dir: &Path, to: &str, more: &str) {
    for topic in std::fs::read_dir(dir.join(more)).expect("list layout") {
        let topic = topic.expect("topic").file_name();
        std::fs::create_dir_all(dir.join(to).join(&topic)).expect("mkdir");
        for file in std::fs::read_dir(dir.join(more).join(&topic)).expect("list topic") {
            let name = file.expect("file").file_name();
            let target = dir.join(to).join(&topic).join(&name);
            let mut bytes = std::fs::read(&target).unwrap_or_default();
            bytes.extend(std::fs::read(dir.join(more).join(&topic).join(&name)).expect("read"));
            std::fs::write(&target, bytes).expect("append");
        }
    }
}

/// Every record of `topic`: (partition, offset, key, value, headers).
pub type Record = (i32, i64, Option<Vec<u8>>, Vec<u8>, BTreeMap<String, String>);

/// Every record of `topic`, from its beginning up to each partition's last stable offset, as
/// a `read_committed` consumer sees them.
pub fn consume_all(topic: &str) -> Vec<Record> {
    // read_committed (librdkafka's default, said here because it is what the test checks): only
    // committed transactions, read up to each partition's last stable offset, where EOF is raised.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", "edu-rtdw-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions = md.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("assign");
    }
    let mut out = Vec::new();
    let mut open: BTreeSet<i32> = (0..partitions).collect();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !open.is_empty() && Instant::now() < deadline {
        let msg = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                continue;
            }
            Some(result) => result.expect("message"),
        };
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            msg.partition(),
            msg.offset(),
            msg.key().map(<[u8]>::to_vec),
            msg.payload().unwrap_or_default().to_vec(),
            headers,
        ));
    }
    assert!(open.is_empty(), "timed out reading {topic}");
    out
}

/// Source positions in the headers of an output topic; panics on a position written twice.
pub fn positions(records: &[Record]) -> BTreeSet<(String, u32, u64)> {
    let mut seen = BTreeSet::new();
    for (_, _, _, _, h) in records {
        let pos = (
            h["edu-source"].clone(),
            h["edu-partition"].parse().expect("partition"),
            h["edu-offset"].parse().expect("offset"),
        );
        assert!(seen.insert(pos.clone()), "source position {pos:?} written twice");
    }
    seen
}

/// The source positions of the cleaned signals in the SQLite file `db`.
pub fn signal_positions(db: &Path) -> BTreeSet<(String, u32, u64)> {
    rows(db, "SELECT 'timeline_client_topic', src_partition, src_offset FROM timeline_analysis_student")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().expect("partition"), r[2].parse().expect("offset")))
        .collect()
}

/// The (source position, metric) of every DLQ record: its position from the headers, its
/// metric from the JSON value (whose own position must agree); panics on one written twice.
pub fn dead_letter_keys(records: &[Record]) -> BTreeSet<(String, u32, u64, String)> {
    let mut seen = BTreeSet::new();
    for (_, _, _, value, h) in records {
        let v: serde_json::Value = serde_json::from_slice(value).expect("DLQ value is JSON");
        let pos: (String, u32, u64) = (
            h["edu-source"].clone(),
            h["edu-partition"].parse().expect("partition"),
            h["edu-offset"].parse().expect("offset"),
        );
        assert_eq!(
            (v["source"].as_str(), v["partition"].as_u64(), v["offset"].as_u64()),
            (Some(pos.0.as_str()), Some(u64::from(pos.1)), Some(pos.2)),
            "DLQ value and headers disagree"
        );
        let key = (pos.0, pos.1, pos.2, v["metric"].as_str().expect("metric").to_string());
        assert!(seen.insert(key.clone()), "dead letter {key:?} written twice");
    }
    seen
}

/// Checks both output topics against the SQLite tables of `db`: every cleaned signal exactly
/// once per source position, every dead letter exactly once per (source position, metric).
pub fn assert_outputs_match(prefix: &str, db: &Path) {
    let signals = consume_all(&format!("{prefix}timeline_analysis_student"));
    assert_eq!(positions(&signals), signal_positions(db), "cleaned-signal topic vs table");
    let dlq = consume_all(&format!("{prefix}edu_rtdw_dlq"));
    // A record may be a dead letter of several metrics: one DLQ record per (position, metric).
    let table_count: usize = rows(db, "SELECT COUNT(*) FROM dead_letters")[0][0].parse().expect("count");
    assert_eq!(dlq.len(), table_count, "DLQ records vs dead_letters rows");
    let table: BTreeSet<(String, u32, u64, String)> =
        rows(db, "SELECT source, \"partition\", \"offset\", metric FROM dead_letters")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].parse().expect("partition"), r[2].parse().expect("offset"), r[3].clone()))
            .collect();
    assert_eq!(table.len(), table_count, "dead_letters holds a (position, metric) twice");
    assert_eq!(dead_letter_keys(&dlq), table, "DLQ records vs dead_letters rows");
}

/// The Kafka sink's committed frontier: the upper of the last committed progress record on
/// `<prefix>edu_rtdw_progress` (0 before the first commit).
pub fn committed_upper(prefix: &str) -> i64 {
    let progress = consume_all(&format!("{prefix}edu_rtdw_progress"));
    progress.last().map_or(0, |(_, _, _, value, _)| {
        let v: serde_json::Value = serde_json::from_slice(value).expect("progress record is JSON");
        v["upper"].as_i64().expect("progress upper")
    })
}

/// The broker stopped with `scripts/kafka-down.sh`. [`BrokerOutage::end`] starts it again
/// with its data (`EDU_RTDW_KAFKA_KEEP=1 scripts/kafka-up.sh`); so does dropping the guard,
/// so that a test failing during the outage never leaves the others without a broker.
pub struct BrokerOutage {
    over: bool,
}

impl BrokerOutage {
    /// Stops the broker (SIGTERM, a clean shutdown; SIGKILL after 30 s).
    pub fn begin() -> BrokerOutage {
        let outage = BrokerOutage { over: false };
        assert!(run_script("kafka-down.sh", false), "scripts/kafka-down.sh failed");
        outage
    }

    /// Starts the broker again with the data it had, and waits until it answers.
    pub fn end(mut self) {
        self.over = true;
        assert!(run_script("kafka-up.sh", true), "scripts/kafka-up.sh failed to restart the broker");
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        if !self.over && !run_script("kafka-up.sh", true) {
            eprintln!("scripts/kafka-up.sh failed to restart the broker");
        }
    }
}

/// Runs `scripts/NAME` (keeping the broker's data when `keep`); true when it succeeded.
fn run_script(name: &str, keep: bool) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new("bash");
    command.arg(root.join("scripts").join(name));
    if keep {
        command.env("EDU_RTDW_KAFKA_KEEP", "1");
    }
    command.status().is_ok_and(|s| s.success())
}
