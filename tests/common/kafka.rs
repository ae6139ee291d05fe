//! Kafka helpers for the integration tests: a fresh set of topics per test on
//! the broker started by `scripts/kafka-up.sh`, and the generator producing
//! into them.

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use connectors::sample::TOPICS;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use super::edu_rtdw;

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

/// Runs `future` to completion on this thread. rdkafka's admin futures are completed by its
/// own background thread, so parking until woken is all an executor has to do.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

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
