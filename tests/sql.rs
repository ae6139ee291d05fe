//! SQL over the PostgreSQL wire protocol (issue 20, SPEC §6), against the real job.
//!
//! * During a live Kafka run, `psql` (Debian's client) and a Rust client (`postgres`) read
//!   2.3, 2.6 and 2.7 after each of two batches: every answer reports its logical frontier
//!   (a notice), and when the SQLite sink has committed the same frontier its tables hold
//!   exactly the same rows (the sink is an independent path: worker 0 consolidates its own
//!   batches). The comparison is made only at equal frontiers; unequal ones are read again.
//! * A 2-process × 2-worker cluster answers the same SQL with the same rows as `-w 1`.
//! * A join of two views and an aggregate, on a small input whose answer is worked out by
//!   hand, and `AS OF`.
//! * Safety: a write is refused, bad SQL is an error for that client only, 50 clients at
//!   once, a non-loopback bind without a password is refused.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::{BROKERS, gen_to_kafka, lock, topics};
use common::{Job, edu_rtdw, free_port, rows, sqlite_at, write_partition};

fn spawn(dir: &Path, args: &[&str]) -> Job {
    Job(Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn edu-rtdw"))
}

/// A client of the job's SQL port, remembering the frontier of its last answer.
struct Sql {
    client: postgres::Client,
    upper: Arc<Mutex<Option<u64>>>,
}

/// The frontier in a notice `consistent at logical upper N …`.
fn notice_upper(message: &str) -> Option<u64> {
    message.split("logical upper ").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

impl Sql {
    /// Connects, retrying while the job starts (at most 60 s).
    fn connect(port: u16) -> Sql {
        let upper: Arc<Mutex<Option<u64>>> = Arc::default();
        let seen = Arc::clone(&upper);
        let mut config = postgres::Config::new();
        config.host("127.0.0.1").port(port).user("edu").dbname("edu").notice_callback(move |notice| {
            if let Some(u) = notice_upper(notice.message())
                && let Ok(mut slot) = seen.lock()
            {
                *slot = Some(u);
            }
        });
        let started = Instant::now();
        loop {
            match config.connect(postgres::NoTls) {
                Ok(client) => return Sql { client, upper },
                Err(e) if started.elapsed() < Duration::from_secs(60) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot connect to the job's SQL port {port}: {e}"),
            }
        }
    }

    /// The rows of `query` (simple protocol, cells as text, NULL as `NULL`), sorted, and the
    /// frontier its notice reported.
    fn read(&mut self, query: &str) -> Result<(u64, Vec<String>), postgres::Error> {
        if let Ok(mut slot) = self.upper.lock() {
            *slot = None;
        }
        let mut lines = Vec::new();
        for message in self.client.simple_query(query)? {
            if let postgres::SimpleQueryMessage::Row(row) = message {
                let cells: Vec<&str> = (0..row.len()).map(|i| row.get(i).unwrap_or("NULL")).collect();
                lines.push(cells.join("|"));
            }
        }
        lines.sort();
        let upper = self.upper.lock().ok().and_then(|u| *u).expect("every answer reports its frontier in a notice");
        Ok((upper, lines))
    }
}

/// The columns of `table` in the SQLite file, but its wall-clock stamp and a dead letter's
/// `raw` bytes (bytea on the wire, text or blob in SQLite).
fn data_columns(db: &Path, table: &str) -> Vec<String> {
    common::data_columns(db, table).into_iter().filter(|c| c != "raw").collect()
}

/// 2.3, 2.6 and 2.7: their tables.
const TABLES: [&str; 3] = ["timeline_signal_analysis", "registrations_hourly_level", "staff_index"];

/// Reads `table` through SQL until the sink holds the same frontier and the rows are
/// `wanted` (the job has read far enough), comparing the two at every frontier they share;
/// returns the frontier and the rows.
fn equal_at_one_frontier(
    sql: &mut Sql,
    db: &Path,
    table: &str,
    wanted: impl Fn(u64, &[String]) -> bool,
) -> (u64, Vec<String>) {
    let columns = data_columns(db, table);
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let query = format!("SELECT {} FROM {table}", quoted.join(", "));
    let started = Instant::now();
    loop {
        let (upper, got) = sql.read(&query).unwrap_or_else(|e| panic!("{query}: {e:?}"));
        if let Some((stored, want)) = sqlite_at(db, table, &columns)
            && stored == upper
        {
            assert_eq!(got, want, "{table} at upper {upper}: SQL differs from the SQLite sink");
            if wanted(upper, &got) {
                return (upper, got);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{table}: never as wanted at a frontier shared with the sink"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `psql -c QUERY`: its rows (`|`-separated, sorted) and the frontier of its notice.
fn psql(port: u16, query: &str) -> (u64, Vec<String>) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "edu", "-d", "edu", "-At", "-F", "|", "-c", query])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql (Debian's postgresql-client; scripts/db-up.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql -c {query}: {stderr}");
    let upper = notice_upper(&stderr).unwrap_or_else(|| panic!("psql printed no frontier notice: {stderr}"));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    lines.sort();
    (upper, lines)
}

/// `psql -c COMMAND` (a backslash command): what it printed, once it succeeded.
fn psql_command(port: u16, command: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "edu", "-d", "edu", "-c", command])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {command}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn live_kafka_answers_equal_the_sink_at_their_frontier() {
    let _broker = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = topics("sql", 2);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    gen_to_kafka(tmp.path(), &prefix, 1, 5, 2);
    let _job = spawn(
        tmp.path(),
        &[
            "run",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            &prefix,
            "--sqlite",
            "out.db",
            "-q",
            "--epoch-ms",
            "50",
            "--sql-listen",
            &listen,
        ],
    );
    let db = tmp.path().join("out.db");
    let mut sql = Sql::connect(port);
    let mut first = Vec::new();
    for table in TABLES {
        first.push(equal_at_one_frontier(&mut sql, &db, table, |_, rows| !rows.is_empty()));
    }
    // psql reads 2.7; once the sink is at the frontier psql reported, it holds the same rows.
    let columns = data_columns(&db, "staff_index");
    let started = Instant::now();
    let (upper, lines) = loop {
        let (upper, lines) = psql(port, &format!("SELECT {} FROM staff_index", columns.join(", ")));
        match sqlite_at(&db, "staff_index", &columns) {
            Some((stored, want)) if stored == upper => {
                assert_eq!(lines, want, "psql at upper {upper} differs from the SQLite sink");
                break (upper, lines);
            }
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(120), "psql and the sink never met at one frontier");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!lines.is_empty());

    // A second batch (the same event times: late for the closed windows of 2.3, updates of
    // the same ids for 2.6 and 2.7): later frontiers, the same agreement, and more dead
    // letters once the job has read it.
    let (dead_at, dead) = equal_at_one_frontier(&mut sql, &db, "dead_letters", |_, _| true);
    gen_to_kafka(tmp.path(), &prefix, 1, 6, 2);
    equal_at_one_frontier(&mut sql, &db, "dead_letters", |upper, now| upper > dead_at && now.len() > dead.len());
    for (table, (at, _)) in TABLES.iter().zip(&first) {
        equal_at_one_frontier(&mut sql, &db, table, |upper, _| upper > *at);
    }
    // `AS OF` a recent frontier answers at that frontier, with what the sink held then.
    let newest = sql.read("SELECT 1 FROM staff_index LIMIT 1").expect("newest").0;
    let (at, count) = sql.read(&format!("SELECT count(*) FROM staff_index AS OF {}", newest - 1)).expect("AS OF");
    assert_eq!(at, newest - 1);
    assert_eq!(count.len(), 1);
    let _ = upper;
}

/// 2024-01-01 00:00:00.000 UTC in ms.
const T0: i64 = 1_704_067_200_000;

/// A classroom signal (msgid 305, msgtype 116) moving a shape, at event time `ts`.
fn signal(ts: i64, user: &str, role: &str) -> String {
    serde_json::json!({
        "createTime": "2024-01-01 08:00:00",
        "data": {
            "userid": user, "roomId": "9", "timestamp": ts, "role": role, "msgid": "305",
            "msg": {"msgtype": "116", "msg_data": {"target_id": "t", "target_type": "shape", "action": "move", "sub_action": "x", "page_index": "1"}}
        }
    })
    .to_string()
}

/// A sales order (2.7) of consultant `cc` with `status` (3 = confirmed).
fn order(id: &str, cc: i64, status: &str, confirmed: &str) -> String {
    serde_json::json!({"id": id, "cc_id": cc, "status": status, "confirm_date_time": confirmed}).to_string()
}

/// A small input worked out by hand. 2.3: students 7 (two signals) and 8 (one) in minute
/// 00:00, closed by a teacher's signal at 00:01:10: rows (7, 2) and (8, 1). 2.7: consultant 5
/// has two confirmed orders on 2025-12-01, consultant 6 one, and order 9 is not confirmed:
/// rows (5, 2) and (6, 1).
fn hand_input(dir: &Path) {
    let signals = [signal(T0 + 1_000, "7", "2"), signal(T0 + 2_000, "7", "2"), signal(T0 + 3_000, "8", "2")];
    let closing = signal(T0 + 70_000, "1", "1");
    let lines: Vec<&[u8]> = signals.iter().chain([&closing]).map(|l| l.as_bytes()).collect();
    write_partition(&dir.join("input"), "timeline_client_topic", 0, &lines);
    let orders = [
        order("1", 5, "3", "2025-12-01 10:00:00"),
        order("2", 5, "3", "2025-12-01 11:00:00"),
        order("3", 6, "3", "2025-12-01 12:00:00"),
        order("9", 6, "1", "2025-12-01 13:00:00"),
    ];
    let lines: Vec<&[u8]> = orders.iter().map(|l| l.as_bytes()).collect();
    write_partition(&dir.join("input"), "data_pack_order_info", 0, &lines);
}

/// A file replay of `dir/input` serving SQL on a free port, kept up after its input ends.
fn serve_files(dir: &Path) -> (Job, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["run", "--input-dir", "input", "--sqlite", "out.db", "-q", "--sql-listen", &listen];
    (spawn(dir, &[&args[..], &["--admin-linger-s", "300"]].concat()), port)
}

#[test]
fn a_join_and_aggregates_give_the_rows_worked_out_by_hand() {
    let tmp = tempfile::tempdir().expect("tempdir");
    hand_input(tmp.path());
    let (_job, port) = serve_files(tmp.path());
    let mut sql = Sql::connect(port);
    // Wait for the input's end: the answer is then final.
    let started = Instant::now();
    while sql.read("SELECT count(*) FROM staff_index").expect("count").1 != ["2"] {
        assert!(started.elapsed() < Duration::from_secs(60), "the job never finished its input");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Consultant c's row joined with student c + 2's window.
    let join = "SELECT s.cc_id, s.cc_index, w.user_id, w.event_count \
                FROM staff_index s JOIN timeline_signal_analysis w ON w.user_id = s.cc_id + 2";
    assert_eq!(sql.read(join).expect("join").1, ["5|2|7|2", "6|1|8|1"]);
    let totals = "SELECT sum(cc_index), count(*), max(attribution_time) FROM staff_index";
    assert_eq!(sql.read(totals).expect("aggregate").1, ["3|2|2025-12-01"]);
    let per_user = "SELECT user_id, sum(event_count) FROM timeline_signal_analysis GROUP BY user_id ORDER BY 1";
    assert_eq!(sql.read(per_user).expect("group by").1, ["7|2", "8|1"]);
    let limited = "SELECT cc_id FROM staff_index ORDER BY cc_index DESC LIMIT 1";
    assert_eq!(sql.read(limited).expect("limit").1, ["5"]);
    // psql's catalog commands list the views and a view's columns.
    let listing = psql_command(port, "\\dt");
    for table in TABLES {
        assert!(listing.contains(table), "\\dt lists {table}: {listing}");
    }
    let columns = psql_command(port, "\\d staff_index");
    for column in ["cc_id", "cc_index", "attribution_time"] {
        assert!(columns.contains(column), "\\d staff_index shows {column}: {columns}");
    }
}

#[test]
fn safety_write_bad_sql_many_clients_and_a_public_bind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "2", "--partitions", "1"], tmp.path());
    assert!(out.status.success());
    let (_job, port) = serve_files(tmp.path());
    let mut sql = Sql::connect(port);
    let write = sql.client.simple_query("INSERT INTO staff_index VALUES (1, 'x', 1, 'y')");
    let message = write.err().and_then(|e| e.as_db_error().map(|d| d.message().to_string())).unwrap_or_default();
    assert!(message.contains("read-only"), "a write is refused: {message}");
    let bad = sql.client.simple_query("SELEC nonsense FROM nowhere");
    assert!(bad.is_err(), "bad SQL is an error");
    // The same client goes on.
    let (_, count) = sql.read("SELECT count(*) FROM staff_index").expect("after an error");
    assert_eq!(count.len(), 1);

    // 50 clients at once, each reading a view at one frontier: every one answers the same rows.
    let started = Instant::now();
    let (at, reference) = loop {
        let (at, rows) = sql.read("SELECT cc_id, cc_index FROM staff_index").expect("reference");
        if !rows.is_empty() {
            break (at, rows);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "staff_index stays empty");
        std::thread::sleep(Duration::from_millis(50));
    };
    let clients: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut sql = Sql::connect(port);
                sql.read(&format!("SELECT cc_id, cc_index FROM staff_index AS OF {at}")).expect("concurrent read").1
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().expect("client thread"), reference);
    }

    // A bind on every interface without a password: one line, exit non-zero.
    let other = free_port();
    let public = format!("0.0.0.0:{other}");
    let out = edu_rtdw(
        &["run", "--input-dir", "input", "--sqlite", "b.db", "-q", "--sql-listen", &public, "--sql-bind-any"],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a public bind without a password is refused");
    assert!(stderr.contains("password"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// `scripts/cluster.sh`, stopped with SIGTERM when dropped (it then stops its processes).
struct Cluster(Child);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// A 2-process × 2-worker cluster serves SQL (process 0) and `query` with the rows of a
/// `-w 1` run's SQLite file, at the same final frontier.
#[test]
fn a_cluster_answers_sql_and_query_like_one_worker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "5", "--partitions", "3"], tmp.path());
    assert!(out.status.success(), "gen failed");
    let single =
        edu_rtdw(&["run", "--input-dir", "input", "--sqlite", "w1.db", "-q", "--no-final-snapshot"], tmp.path());
    assert!(single.status.success(), "-w 1 failed: {}", String::from_utf8_lossy(&single.stderr));
    let w1 = tmp.path().join("w1.db");
    let final_upper: u64 =
        rows(&w1, "SELECT upper FROM edu_rtdw_progress WHERE sink = 'sqlite'")[0][0].parse().expect("upper");

    let (sql_port, admin_port) = (free_port(), free_port());
    let (listen, admin) = (format!("127.0.0.1:{sql_port}"), format!("127.0.0.1:{admin_port}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
    let _cluster = Cluster(
        Command::new("bash")
            .arg(&script)
            .args(["2", "2", "run", "--input-dir", "input", "--sqlite", "c.db", "-q", "--no-final-snapshot"])
            .args(["--sql-listen", &listen, "--admin", &admin, "--admin-linger-s", "300"])
            .env("EDU_RTDW", env!("CARGO_BIN_EXE_edu-rtdw"))
            .env("EDU_RTDW_CLUSTER_PORT", free_port().to_string())
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cluster.sh"),
    );
    let mut sql = Sql::connect(sql_port);
    for table in TABLES {
        let columns = data_columns(&w1, table);
        let query = format!("SELECT {} FROM {table}", columns.join(", "));
        let started = Instant::now();
        let got = loop {
            let (upper, got) = sql.read(&query).expect("cluster SQL");
            if upper == final_upper {
                break got;
            }
            assert!(upper < final_upper, "{table}: the cluster went past the final frontier {final_upper}: {upper}");
            assert!(started.elapsed() < Duration::from_secs(120), "{table}: the cluster never reached {final_upper}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let (_, want) = sqlite_at(&w1, table, &columns).expect("w1 table");
        assert!(!want.is_empty(), "{table} is empty");
        assert_eq!(got, want, "{table}: the cluster's SQL differs from -w 1");
    }
    // `query --admin` against process 0: the same rows as -w 1's table.
    let q = edu_rtdw(&["query", "daily_cc_confirmations", "--admin", &admin, "--format", "csv"], tmp.path());
    assert!(q.status.success(), "query: {}", String::from_utf8_lossy(&q.stderr));
    let mut got: Vec<String> =
        String::from_utf8_lossy(&q.stdout).lines().skip(1).map(|l| l.replace(',', "|")).collect();
    got.sort();
    let columns: Vec<String> = ["cc_id", "cc_index", "type", "attribution_time"].map(String::from).to_vec();
    assert_eq!(got, sqlite_at(&w1, "staff_index", &columns).expect("w1").1, "query --admin on the cluster");
}
