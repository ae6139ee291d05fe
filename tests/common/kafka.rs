//! Kafka helpers for the integration tests: a fresh set of topics per test on
//! the broker started by `scripts/kafka-up.sh`, and the generator producing
//! into them.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use connectors::sample::TOPICS;

use super::edu_rtdw;

/// The broker of `scripts/kafka-up.sh`.
pub const BROKERS: &str = "127.0.0.1:9092";
static BROKER: Mutex<()> = Mutex::new(());

/// Serializes the tests of one binary that use the broker (a crash test restarts it).
pub fn lock() -> MutexGuard<'static, ()> {
    BROKER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Restarts the broker, keeping its data. Crash tests restart it after their
/// kills so that no half-open connection of a killed client lingers (tansu 0.6
/// was once seen spinning after kills; the cause turned out to be its unindexed
/// header table, which `scripts/kafka-up.sh` now indexes); the program itself
/// reconnects to a restarted broker.
pub fn restart_broker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let down = Command::new("bash").arg(root.join("kafka-down.sh")).status().expect("kafka-down.sh");
    assert!(down.success(), "kafka-down.sh failed");
    let up = Command::new("bash")
        .arg(root.join("kafka-up.sh"))
        .env("EDU_RTDW_KAFKA_KEEP", "1")
        .status()
        .expect("kafka-up.sh");
    assert!(up.success(), "kafka-up.sh failed");
}

/// Restarts the broker with empty storage. tansu 0.6 slows down as its sqlite
/// storage grows (before `kafka-up.sh` indexed its header table, quadratically), enough that a live run that ends
/// when its input goes quiet can end before the broker has delivered
/// everything; timing-sensitive tests start from a fresh broker. Holding
/// [`lock`] makes this safe: each test creates its own topics.
pub fn fresh_broker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let down = Command::new("bash").arg(root.join("kafka-down.sh")).status().expect("kafka-down.sh");
    assert!(down.success(), "kafka-down.sh failed");
    let up = Command::new("bash")
        .arg(root.join("kafka-up.sh"))
        .env_remove("EDU_RTDW_KAFKA_KEEP")
        .status()
        .expect("kafka-up.sh");
    assert!(up.success(), "kafka-up.sh failed");
}

/// The output topics.
pub const OUTPUTS: [&str; 2] = ["timeline_analysis_student", "edu_rtdw_dlq"];

/// Fails (does not skip) when no broker answers.
pub fn require_broker() {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9092));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok(),
        "nothing answers on 127.0.0.1:9092: run scripts/kafka-up.sh first (it installs and starts tansu)"
    );
}

fn tansu() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    let local = format!("{home}/.cargo/bin/tansu");
    if Path::new(&local).exists() {
        local
    } else {
        "tansu".to_string()
    }
}

/// A fresh topic prefix with all source and output topics created.
pub fn topics(test: &str, partitions: u32) -> String {
    require_broker();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let prefix = format!("t{}{}_{test}_", std::process::id(), nanos % 1_000_000_007);
    for name in TOPICS.iter().chain(OUTPUTS.iter()) {
        let out = Command::new(tansu())
            .args([
                "topic",
                "create",
                &format!("{prefix}{name}"),
                "--partitions",
                &partitions.to_string(),
                "--broker",
                "tcp://127.0.0.1:9092",
            ])
            .output()
            .expect("run tansu topic create");
        assert!(out.status.success(), "topic create failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    prefix
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
