//! Tests of the live feed ([`super::live`]) and of `gen`'s output staying byte-identical.

use std::path::Path;

use super::*;

/// FNV-1a 64 over `bytes`, continuing from `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A digest of every file `write_files` wrote under `out` (names, lengths and bytes), in
/// topic then partition order.
fn files_digest(out: &Path, partitions: u32) -> anyhow::Result<u64> {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for topic in TOPICS {
        for p in 0..partitions {
            let name = format!("{topic}/{p}.jsonl");
            let bytes = fs::read(out.join(&name))?;
            h = fnv(h, name.as_bytes());
            h = fnv(h, &(bytes.len() as u64).to_le_bytes());
            h = fnv(h, &bytes);
        }
    }
    Ok(h)
}

/// A digest of the message stream: topic, partition, key and value of every message.
fn messages_digest(opts: &GenOptions) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for m in messages(opts) {
        h = fnv(h, m.topic.as_bytes());
        h = fnv(h, &m.partition.to_le_bytes());
        h = fnv(h, &(m.key.len() as u64).to_le_bytes());
        h = fnv(h, &m.key);
        h = fnv(h, &(m.value.len() as u64).to_le_bytes());
        h = fnv(h, &m.value);
    }
    h
}

/// `edu-rtdw gen` writes the very bytes it wrote before the live feed generalised the
/// generator (digests taken on the code before that change).
#[test]
fn gen_output_is_unchanged() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = GenOptions { scale: 3, seed: 42, partitions: 4 };
    write_files(dir.path(), &opts)?;
    let files = files_digest(dir.path(), 4)?;
    let stream = messages_digest(&GenOptions { scale: 2, seed: 7, partitions: 3 });
    assert_eq!((files, stream), (0x3329_0874_786a_0ec6, 0xa5a2_e740_bfbb_433c), "{files:#018x} {stream:#018x}");
    Ok(())
}

// ---------------------------------------------------------------------------
// The live feed
// ---------------------------------------------------------------------------

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dataflows::ingest::{Delays, Input};
use dataflows::{Time, Topic};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::{Inspect, Probe};

use super::generator::Generator;
use super::live::{LiveFeed, LiveLogs, LiveOptions, live_source};
use crate::clock::Clock;
use crate::kafka::SourceOptions;
use crate::source::{Logs, SourceShared, Status, Unpaced};
use crate::wall_clock::now_millis;

/// What any wait of these tests may take at most (they end long before).
const TIMEOUT: Duration = Duration::from_secs(60);

/// One message as a reader got it.
#[derive(Debug)]
struct Got {
    offset: u64,
    key: Vec<u8>,
    value: Vec<u8>,
    log_time: Option<i64>,
}

/// Per partition, each message's key and value length (equal for the same seed whatever
/// the times).
type Shapes = BTreeMap<(Topic, u32), Vec<(Vec<u8>, usize)>>;

fn live(rate: f64, seed: u64, max_records: Option<u64>) -> LiveOptions {
    LiveOptions { rate, seed, partitions: 4, max_records }
}

/// Reads every partition of `logs` to its end, `budget` messages at a time.
fn read_to_end(logs: &mut LiveLogs, budget: usize) -> anyhow::Result<BTreeMap<(Topic, u32), Vec<Got>>> {
    let mut out = BTreeMap::new();
    for (i, place) in logs.partitions().into_iter().enumerate() {
        let got: &mut Vec<Got> = out.entry(place).or_default();
        loop {
            let status = logs.read(i, budget, |m| {
                let key = m.key.unwrap_or_default().to_vec();
                got.push(Got { offset: m.offset, key, value: m.value.to_vec(), log_time: m.log_time });
                true
            })?;
            match status {
                Status::Ended => break,
                Status::More => continue,
                s => panic!("{place:?}: {s:?} after the generator finished"),
            }
        }
    }
    Ok(out)
}

/// Parses a value as a JSON object (None for garbage that is not one).
fn object(value: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(value).ok().filter(Value::is_object)
}

/// An integer at `path`, unwrapping nested objects sent as strings and numbers as strings.
fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = v.clone();
    for k in path {
        if let Value::String(s) = &cur {
            cur = serde_json::from_str(s).ok()?;
        }
        cur = cur.get(*k)?.clone();
    }
    match cur {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// 500 records at 2,000/s: every one arrives once, in its key's partition, numbered from 0,
/// with the seeded generator's records, event times at the wall clock (late ones well
/// before) and a share of garbage lines.
#[test]
fn the_feed_delivers_every_record_at_the_wall_clock() -> anyhow::Result<()> {
    let before = now_millis();
    let feed = LiveFeed::start(live(2_000.0, 11, Some(500)))?;
    assert_eq!(feed.partitions().len(), 28);
    let mut logs = LiveLogs::open(&feed, feed.partitions())?;
    assert!(feed.wait_for(TIMEOUT, |_, _| feed.finished()), "the generator finished");
    let after = now_millis();
    // (A generator descheduled for over 100 ms may have skipped part of its schedule.)
    assert_eq!((feed.produced(), feed.buffered()), (500, 500));
    let got = read_to_end(&mut logs, 7)?;
    assert_eq!(feed.buffered(), 0);

    // The seeded sequence, up to the time fields (whose text has the same length).
    let mut seeded = Shapes::new();
    for m in std::iter::from_fn({
        let mut g = Generator::live(11, 4, before);
        move || g.next_at(before)
    })
    .take(500)
    {
        seeded.entry((Topic::ALL[topic_index(m.topic)], m.partition)).or_default().push((m.key, m.value.len()));
    }
    let (mut garbage, mut late, mut timely) = (0, 0, 0);
    for (&(topic, partition), msgs) in &got {
        let offsets: Vec<u64> = msgs.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (0..msgs.len() as u64).collect::<Vec<_>>(), "{topic:?}/{partition}");
        let shapes: Vec<(Vec<u8>, usize)> = msgs.iter().map(|m| (m.key.clone(), m.value.len())).collect();
        assert_eq!(shapes, seeded.remove(&(topic, partition)).unwrap_or_default(), "{topic:?}/{partition}");
        for m in msgs {
            assert_eq!(partition_of(&m.key, 4), partition, "{topic:?}: key {:?}", m.key);
            let log_time = m.log_time.expect("a log time");
            assert!((before..=after).contains(&log_time), "log time {log_time} not in {before}..={after}");
            let Some(v) = object(&m.value) else {
                garbage += 1;
                continue;
            };
            // Event times around the record's clock: ± 2 s (timeline), ± 25 s (agora), + 1 s (qos).
            let (path, early, ahead): (&[&str], i64, i64) = match topic {
                Topic::Timeline => (&["data", "timestamp"], 2_000, 2_000),
                Topic::Agora => (&["messageCreateTime"], 25_000, 25_000),
                Topic::Qos => (&["event_time"], 0, 1_000),
                _ => continue,
            };
            let Some(t) = int_at(&v, path) else { continue };
            if t < before - 100_000 {
                late += 1;
            } else {
                assert!(t >= before - early && t <= after + ahead, "{topic:?} event time {t} vs {before}..={after}");
                timely += 1;
            }
        }
    }
    assert!(seeded.is_empty(), "partitions missing: {:?}", seeded.keys());
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 500);
    assert!(garbage > 0 && garbage < 25, "{garbage} garbage lines of 500");
    assert!(timely > 350 && late < 5, "{timely} records on time, {late} late");
    Ok(())
}

/// The same seed gives the same records per partition again (up to their times); the
/// late records of a longer run are minutes behind.
#[test]
fn the_same_seed_gives_the_same_records() -> anyhow::Result<()> {
    let run = |seed| -> anyhow::Result<Shapes> {
        let feed = LiveFeed::start(live(50_000.0, seed, Some(3_000)))?;
        let mut logs = LiveLogs::open(&feed, feed.partitions())?;
        assert!(feed.wait_for(TIMEOUT, |_, _| feed.finished()));
        let got = read_to_end(&mut logs, 1_000)?;
        Ok(got.into_iter().map(|(p, msgs)| (p, msgs.into_iter().map(|m| (m.key, m.value.len())).collect())).collect())
    };
    let a = run(3)?;
    assert_eq!(a, run(3)?);
    assert_ne!(a, run(4)?);
    Ok(())
}

/// The live generator is endless and keeps `gen`'s mix: every topic appears, in about
/// its share, and channels are created only up to `gen`'s number.
#[test]
fn the_live_mix_is_gens() {
    let mut g = Generator::live(1, 4, START_MS);
    let mut counts = [0u64; 7];
    let mut channels = std::collections::BTreeSet::new();
    for i in 0..80_000i64 {
        let m = g.next_at(START_MS + i).expect("endless");
        let t = topic_index(m.topic);
        counts[t] += 1;
        if t == CHANNEL {
            channels.insert(m.key);
        }
    }
    let weights = topic_counts(LIVE_SCALE);
    let total: u64 = weights.iter().sum();
    for t in 0..7 {
        let expected = 80_000.0 * weights[t] as f64 / total as f64;
        assert!((counts[t] as f64 - expected).abs() < expected * 0.1 + 30.0, "{}: {}", TOPICS[t], counts[t]);
    }
    let distinct = channels.len() as u64;
    assert!(distinct > 150 && distinct <= channel_volume(LIVE_SCALE).0, "{distinct} channels");
}

/// The source pipeline reads the whole feed with live epochs and ends with it: every
/// record read once, garbage as `not_json` dead letters, no `future` ones.
#[test]
fn live_source_reads_the_feed_to_its_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state_path = dir.path().join("state.db");
    let (read, dead) = timely::execute_directly(move |worker| -> anyhow::Result<(u64, Vec<String>)> {
        let feed = LiveFeed::start(live(2_000.0, 11, Some(500)))?;
        let opts = SourceOptions {
            delays: Delays::default(),
            clock: Arc::new(Clock::new(1_000)),
            idle_timeout: Duration::from_secs(30),
            epoch_ms: Some(50),
            state_path,
            exit_when_idle: false,
        };
        let shared = SourceShared::default();
        let read = Arc::clone(&shared.records_read);
        let dead = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&dead);
        let probe = ProbeHandle::new();
        worker.dataflow::<Time, _, _>(|scope| -> anyhow::Result<()> {
            live_source(scope, &feed, feed.partitions(), opts, shared, Unpaced)?
                .inspect(move |input| {
                    if let Input::Dead(d) = input {
                        seen.borrow_mut().push(d.reason.clone());
                    }
                })
                .probe_with(&probe);
            Ok(())
        })?;
        let started = Instant::now();
        while !probe.done() {
            assert!(started.elapsed() < TIMEOUT, "the source did not end");
            worker.step_or_park(Some(Duration::from_millis(100)));
        }
        Ok((read.load(Ordering::Relaxed), dead.take()))
    })?;
    assert_eq!(read, 500);
    assert!(dead.iter().any(|r| r == "not_json"), "{dead:?}");
    assert!(!dead.iter().any(|r| r == "future"), "{dead:?}");
    Ok(())
}

/// Readers that fall behind pause the generator at its bound, and it resumes once they read.
#[test]
fn unread_records_are_bounded() -> anyhow::Result<()> {
    let feed = LiveFeed::start_with_cap(live(20_000.0, 2, None), 500)?;
    let mut logs = LiveLogs::open(&feed, feed.partitions())?;
    assert!(feed.wait_for(TIMEOUT, |_, skipped| skipped > 0), "the generator paused");
    // At most one batch (100 ms of the schedule) past the bound.
    assert!(feed.buffered() <= 500 + 2_000, "{} buffered", feed.buffered());
    let produced = feed.produced();
    let mut drained = 0;
    for i in 0..logs.partitions().len() {
        assert_eq!(
            logs.read(i, usize::MAX, |_| {
                drained += 1;
                true
            })?,
            Status::Waiting
        );
    }
    assert!(drained >= 500);
    assert!(feed.wait_for(TIMEOUT, |made, _| made > produced), "the generator resumed");
    Ok(())
}

/// The generator's topics are the pipeline's, in the same order.
#[test]
fn topics_are_the_pipelines() {
    assert_eq!(TOPICS, Topic::ALL.map(Topic::default_name));
}

/// The feed is shared by the workers of a process.
#[test]
fn the_feed_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<LiveFeed>();
    shared::<Arc<LiveFeed>>();
}

/// Only one worker reads a partition; a feed's options are checked; dropping the feed
/// stops its thread, claimed or not.
#[test]
fn claims_options_and_drop() -> anyhow::Result<()> {
    assert!(LiveFeed::start(live(0.0, 1, None)).is_err());
    assert!(LiveFeed::start(live(f64::NAN, 1, None)).is_err());
    let idle = LiveFeed::start(live(1_000.0, 1, None))?;
    let feed = LiveFeed::start(live(1_000.0, 1, None))?;
    let logs = LiveLogs::open(&feed, vec![(Topic::Qos, 1)])?;
    assert!(LiveLogs::open(&feed, vec![(Topic::User, 0), (Topic::Qos, 1)]).is_err(), "claimed twice");
    assert!(LiveLogs::open(&feed, vec![(Topic::User, 4)]).is_err(), "no partition 4");
    // The failed claim gave (User, 0) up again.
    drop(LiveLogs::open(&feed, vec![(Topic::User, 0)])?);
    assert!(feed.wait_for(TIMEOUT, |made, _| made > 0));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(logs);
        drop(feed);
        drop(idle);
        let _ = tx.send(());
    });
    rx.recv_timeout(TIMEOUT).expect("dropping the feeds stops their threads");
    Ok(())
}

/// The generator thread alone, and the feed drained by one reader, as fast as they go
/// (`cargo test --release -p connectors live_throughput -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement"]
fn live_throughput() -> anyhow::Result<()> {
    let mut g = Generator::live(1, 4, START_MS);
    let started = Instant::now();
    let n = 300_000;
    for i in 0..n {
        std::hint::black_box(g.next_at(START_MS + i));
    }
    println!("generator: {:.0} records/s", n as f64 / started.elapsed().as_secs_f64());
    let feed = LiveFeed::start(live(10_000_000.0, 1, None))?;
    let mut logs = LiveLogs::open(&feed, feed.partitions())?;
    let started = Instant::now();
    let mut read = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        for i in 0..logs.partitions().len() {
            logs.read(i, usize::MAX, |_| {
                read += 1;
                true
            })?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "feed: {:.0} records/s made, {:.0} read, {} skipped",
        feed.produced() as f64 / secs,
        read as f64 / secs,
        feed.skipped()
    );
    Ok(())
}
