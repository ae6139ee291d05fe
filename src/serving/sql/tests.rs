//! The SQL endpoint against a fake [`Reader`] holding fixed rows of two tables, queried
//! with the `postgres` client (simple and extended protocols) and with `psql`.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::types::Type as PgType;
use postgres::{Client, NoTls, SimpleQueryMessage};

use dataflows::daily_cc_confirmations::StaffIndexRow;
use dataflows::hourly_registrations_by_level::RegistrationRow;
use dataflows::output::Output;
use dataflows::{OutputRow, Time};

use super::{SqlOptions, serve};
use crate::serving::{Answer, AsOf, Reader};

/// Fixed rows at every frontier from `oldest` to `latest`; records its calls.
struct Fake {
    oldest: Time,
    latest: Time,
    tables: Vec<(Output, Vec<OutputRow>)>,
    calls: Mutex<Vec<(Vec<Output>, AsOf)>>,
}

impl Reader for Fake {
    fn read(&self, outputs: &[Output], as_of: AsOf) -> Result<Answer, String> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((outputs.to_vec(), as_of));
        }
        let upper = match as_of {
            AsOf::Latest => self.latest,
            AsOf::Upper(u) if u < self.oldest => {
                return Err(format!("logical upper {u} is no longer held (the oldest is {})", self.oldest));
            }
            AsOf::Upper(u) if u > self.latest => return Err(format!("logical upper {u} is not reached yet")),
            AsOf::Upper(u) => u,
        };
        let rows = |o: Output| self.tables.iter().find(|(t, _)| *t == o).map(|(_, r)| r.clone()).unwrap_or_default();
        Ok(Answer { upper, complete: false, tables: outputs.iter().map(|&o| (o, rows(o))).collect() })
    }
}

fn registration(reg_date: i64, level: &str, leads: i64) -> OutputRow {
    OutputRow::Registration(RegistrationRow { reg_date, level: level.into(), leads })
}

fn staff(cc_id: i64, day: &str, cc_index: i64) -> OutputRow {
    OutputRow::Staff(StaffIndexRow { cc_id, attribution_time: day.into(), cc_index })
}

fn fake() -> Arc<Fake> {
    Arc::new(Fake {
        oldest: 5,
        latest: 10,
        tables: vec![
            (
                Output::HourlyRegistrationsByLevel,
                vec![
                    registration(2024010100, "A", 3),
                    registration(2024010100, "B", 5),
                    registration(2024010101, "A", 2),
                ],
            ),
            (
                Output::DailyCcConfirmations,
                vec![staff(7, "2024-01-01", 3), staff(8, "2024-01-01", 5), staff(9, "2024-01-02", 4)],
            ),
        ],
        calls: Mutex::default(),
    })
}

fn options() -> SqlOptions {
    SqlOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        password: None,
        statement_timeout: Duration::from_secs(10),
        max_rows: 1000,
        max_connections: 64,
    }
}

/// A server over `reader` with `opts`; its port.
fn server(opts: SqlOptions, reader: Arc<Fake>) -> u16 {
    serve(opts, reader).expect("the SQL endpoint starts").port()
}

/// The notices a client received.
type Notices = Arc<Mutex<Vec<String>>>;

/// A client of the server on `port`, collecting notices.
fn connect(port: u16, password: Option<&str>) -> Result<(Client, Notices), postgres::Error> {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notices);
    let mut config = postgres::Config::new();
    config.host("127.0.0.1").port(port).user("edu").dbname("edu_rtdw").connect_timeout(Duration::from_secs(10));
    config.notice_callback(move |n| sink.lock().expect("notices").push(n.message().to_string()));
    if let Some(password) = password {
        config.password(password);
    }
    config.connect(NoTls).map(|client| (client, notices))
}

/// The rows of a simple query, every value as text (`None` for NULL).
fn simple(client: &mut Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, postgres::Error> {
    let messages = client.simple_query(sql)?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

fn texts(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter().map(|r| r.iter().map(|v| Some(v.to_string())).collect()).collect()
}

fn message(e: &postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
}

#[test]
fn joins_and_aggregates_read_at_one_frontier() -> Result<(), postgres::Error> {
    let reader = fake();
    let port = server(options(), Arc::clone(&reader));
    let (mut client, notices) = connect(port, None)?;
    let joined = simple(
        &mut client,
        "SELECT r.level, r.leads, s.cc_id FROM hourly_registrations_by_level r \
         JOIN daily_cc_confirmations s ON s.cc_index = r.leads ORDER BY r.level",
    )?;
    assert_eq!(joined, texts(&[&["A", "3", "7"], &["B", "5", "8"]]));
    let calls = reader.calls.lock().expect("calls").clone();
    assert_eq!(
        calls,
        vec![
            (vec![Output::HourlyRegistrationsByLevel], AsOf::Latest),
            (vec![Output::DailyCcConfirmations], AsOf::Upper(10))
        ],
        "the second table is read at the first one's frontier, each once"
    );
    let grouped = simple(
        &mut client,
        "SELECT level, sum(leads) AS total, count(*) AS n FROM registrations_hourly_level GROUP BY level ORDER BY level",
    )?;
    assert_eq!(grouped, texts(&[&["A", "5", "2"], &["B", "5", "1"]]));
    let notices = notices.lock().expect("notices").clone();
    assert_eq!(notices, vec!["consistent at logical upper 10 (every update at a time below it)"; 2]);
    // The extended protocol: typed columns, parameters.
    let rows = client
        .query("SELECT level, sum(leads), edu_upper() FROM hourly_registrations_by_level GROUP BY 1 ORDER BY 1", &[])?;
    let got: Vec<(String, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got, vec![("A".to_string(), 5, 10), ("B".to_string(), 5, 10)]);
    let rows =
        client.query("SELECT cc_id FROM staff_index WHERE attribution_time = $1 ORDER BY cc_id", &[&"2024-01-01"])?;
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(), vec![7, 8]);
    let typed = client.prepare_typed("SELECT attribution_time FROM staff_index WHERE cc_id = $1", &[PgType::INT8])?;
    let rows = client.query(&typed, &[&9_i64])?;
    assert_eq!(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), vec!["2024-01-02"]);
    Ok(())
}

#[test]
fn as_of_reads_an_older_frontier_or_says_why_not() -> Result<(), postgres::Error> {
    let port = server(options(), fake());
    let (mut client, notices) = connect(port, None)?;
    let rows = simple(&mut client, "SELECT edu_upper(), count(*) FROM staff_index AS OF 7")?;
    assert_eq!(rows, texts(&[&["7", "3"]]));
    assert_eq!(simple(&mut client, "SELECT edu_upper()")?, texts(&[&["10"]]));
    let e = simple(&mut client, "SELECT * FROM staff_index AS OF 3").expect_err("a frontier no longer held");
    assert!(message(&e).contains("logical upper 3 is no longer held"), "{e}");
    let notices = notices.lock().expect("notices").clone();
    assert_eq!(
        notices.first().map(String::as_str),
        Some("consistent at logical upper 7 (every update at a time below it)")
    );
    Ok(())
}

#[test]
fn writes_are_refused_and_errors_leave_the_connection_usable() -> Result<(), postgres::Error> {
    let port = server(options(), fake());
    let (mut client, _) = connect(port, None)?;
    let e = simple(&mut client, "INSERT INTO staff_index VALUES (1, 2, 3, 'x')").expect_err("a write");
    assert_eq!(message(&e), "edu-rtdw serves read-only SQL: INSERT is not allowed");
    let e = client.execute("DELETE FROM staff_index", &[]).expect_err("a write, extended protocol");
    assert_eq!(message(&e), "edu-rtdw serves read-only SQL: DELETE is not allowed");
    for sql in [
        "ATTACH ':memory:' AS x",
        "PRAGMA query_only = 0",
        "CREATE TEMP TABLE t (a)",
        "WITH x AS (SELECT 1) DELETE FROM staff_index",
        "SELECT * FROM pragma_query_only; UPDATE staff_index SET cc_id = 1",
    ] {
        assert!(simple(&mut client, sql).is_err(), "{sql} must fail");
    }
    let e = simple(&mut client, "SELEC 1").expect_err("bad SQL");
    assert!(message(&e).contains("syntax error"), "{e}");
    assert!(simple(&mut client, "SELECT * FROM no_such_table").is_err());
    assert_eq!(simple(&mut client, "SELECT 1; SELECT 'two'")?, texts(&[&["1"], &["two"]]));
    assert_eq!(simple(&mut client, "SET search_path = public; SHOW search_path")?, texts(&[&["\"$user\", public"]]));
    assert_eq!(simple(&mut client, "SELECT count(*) FROM staff_index")?, texts(&[&["3"]]));
    Ok(())
}

#[test]
fn limits_rows_time_and_connections() -> Result<(), postgres::Error> {
    let port = server(
        SqlOptions { max_rows: 2, max_connections: 2, statement_timeout: Duration::from_millis(500), ..options() },
        fake(),
    );
    let (mut client, _) = connect(port, None)?;
    let e = simple(&mut client, "SELECT * FROM staff_index").expect_err("over the row limit");
    assert!(message(&e).contains("more than 2 rows"), "{e}");
    assert_eq!(simple(&mut client, "SELECT cc_id FROM staff_index ORDER BY cc_id LIMIT 2")?.len(), 2);
    let forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let e = simple(&mut client, forever).expect_err("a statement over the timeout");
    assert_eq!(message(&e), "statement timeout (500ms)");
    assert_eq!(simple(&mut client, "SELECT 1")?, texts(&[&["1"]]));
    let (mut second, _) = connect(port, None)?;
    let cancel = second.cancel_token();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        cancel.cancel_query(NoTls)
    });
    let started = std::time::Instant::now();
    let e = simple(&mut second, forever).expect_err("a canceled statement");
    assert!(message(&e).contains("cancel"), "{e}");
    assert!(started.elapsed() < Duration::from_millis(450), "canceled before its timeout");
    canceller.join().expect("no panic")?;
    assert_eq!(simple(&mut second, "SELECT 2")?, texts(&[&["2"]]));
    let e = connect(port, None).err().expect("a third connection is refused");
    assert!(message(&e).contains("too many clients"), "{e}");
    drop(client);
    let again = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        connect(port, None).is_ok()
    });
    assert!(again, "a connection slot is freed when a client leaves");
    Ok(())
}

#[test]
fn fifty_clients_at_once() {
    let port = server(options(), fake());
    let clients: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || -> Result<Vec<Vec<Option<String>>>, String> {
                let (mut client, _) = connect(port, None).map_err(|e| e.to_string())?;
                let sql = format!(
                    "SELECT s.cc_id, r.level, {i} FROM daily_cc_confirmations s \
                     JOIN hourly_registrations_by_level r ON r.leads = s.cc_index ORDER BY 1"
                );
                simple(&mut client, &sql).map_err(|e| e.to_string())
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        let rows = client.join().expect("no panic").expect("the query");
        let i = i.to_string();
        assert_eq!(rows, texts(&[&["7", "A", &i], &["8", "B", &i]]));
    }
}

#[test]
fn passwords_and_exposure() -> Result<(), postgres::Error> {
    let exposed = SqlOptions { listen: "0.0.0.0:0".parse().expect("address"), ..options() };
    let refused = serve(exposed, fake()).expect_err("no password off loopback");
    assert!(refused.to_string().starts_with("--sql-listen 0.0.0.0:0 is not loopback: set a password"), "{refused}");
    let port = server(SqlOptions { password: Some("s3cret".into()), ..options() }, fake());
    let (mut client, _) = connect(port, Some("s3cret"))?;
    assert_eq!(simple(&mut client, "SELECT current_user, current_database()")?, texts(&[&["edu", "edu_rtdw"]]));
    assert!(connect(port, Some("wrong")).is_err());
    assert!(connect(port, None).is_err());
    Ok(())
}

/// `psql` lists the tables and views and describes one (run when psql is installed).
#[test]
fn psql_lists_and_describes() {
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!("psql is not installed: skipped (apt-get install postgresql-client)");
        return;
    }
    let port = server(options(), fake());
    let psql = |command: &str| {
        let out = Command::new("psql")
            .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "edu", "-d", "edu_rtdw", "-c", command])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && !stderr.contains("ERROR"), "{command}: {stdout}\n{stderr}");
        stdout.into_owned()
    };
    let tables = psql("\\dt");
    for table in ["registrations_hourly_level", "staff_index", "timeline_signal_analysis", "dead_letters"] {
        assert!(tables.contains(table), "{tables}");
    }
    let views = psql("\\dv");
    assert!(views.contains("hourly_registrations_by_level") && views.contains("class_performance_1m"), "{views}");
    let described = psql("\\d hourly_registrations_by_level");
    for expected in ["reg_date", "bigint", "level", "text", "leads", "not null"] {
        assert!(described.contains(expected), "{described}");
    }
    let described = psql("\\d staff_index");
    assert!(described.contains("cc_index") && described.contains("attribution_time"), "{described}");
    let rows = psql("SELECT level, leads FROM hourly_registrations_by_level ORDER BY leads");
    assert!(rows.contains("(3 rows)"), "{rows}");
}

#[test]
fn options_come_from_the_flags_and_settings() -> anyhow::Result<()> {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    let ops = |argv: &[&str]| -> anyhow::Result<crate::cli::OpsArgs> {
        let cli = Cli::try_parse_from(["edu-rtdw", "run"].iter().chain(argv))?;
        match cli.command {
            Some(Command::Run(run)) => Ok(run.ops),
            _ => anyhow::bail!("not a run"),
        }
    };
    let mut serving = crate::config::Settings::default().serving;
    assert!(super::options(&ops(&[])?, &serving)?.is_none(), "off unless --sql-listen");
    let local = super::options(&ops(&["--sql-listen", "127.0.0.1:6875"])?, &serving)?.expect("on");
    assert_eq!((local.listen.port(), local.max_rows, local.max_connections), (6875, 100_000, 64));
    assert_eq!(local.statement_timeout, Duration::from_secs(10));
    let exposed = ops(&["--sql-listen", "0.0.0.0:6875"])?;
    let e = super::options(&exposed, &serving).expect_err("no password");
    assert!(e.to_string().contains("set a password ([serving] sql_password"), "{e}");
    serving.sql_password = Some("pw".into());
    let e = super::options(&exposed, &serving).expect_err("no --sql-bind-any");
    assert!(e.to_string().ends_with("add --sql-bind-any to serve it anyway"), "{e}");
    let bound = super::options(&ops(&["--sql-listen", "0.0.0.0:6875", "--sql-bind-any"])?, &serving)?;
    assert_eq!(bound.and_then(|o| o.password).as_deref(), Some("pw"));
    Ok(())
}

#[test]
fn grafana_metadata_queries() -> Result<(), postgres::Error> {
    let port = server(options(), fake());
    let (mut client, _) = connect(port, None)?;
    let search_path = "SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM \
        generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), \
        array_upper(string_to_array(current_setting('search_path'),','),1)) as i, \
        string_to_array(current_setting('search_path'),',') s";
    let tables = format!(
        "SELECT CASE WHEN quote_ident(table_schema) IN ({search_path}) THEN quote_ident(table_name) \
         ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS \"table\" \
         FROM information_schema.tables WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog') \
         ORDER BY CASE WHEN quote_ident(table_schema) IN ({search_path}) THEN 0 ELSE 1 END, 1"
    );
    let tables = simple(&mut client, &tables)?;
    assert_eq!(tables.len(), 17);
    assert!(tables.contains(&vec![Some("staff_index".to_string())]), "{tables:?}");
    let columns = format!(
        "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\" FROM information_schema.columns \
         WHERE CASE WHEN array_length(parse_ident('public.staff_index'),1) = 2 \
         THEN quote_ident(table_schema) = (parse_ident('public.staff_index'))[1] \
         AND quote_ident(table_name) = (parse_ident('public.staff_index'))[2] \
         ELSE quote_ident(table_name) = 'public.staff_index' AND quote_ident(table_schema) IN ({search_path}) END"
    );
    let columns = simple(&mut client, &columns)?;
    let want: [&[&str]; 4] =
        [&["cc_id", "bigint"], &["cc_index", "bigint"], &["type", "bigint"], &["attribution_time", "text"]];
    assert_eq!(columns, texts(&want));
    let version = simple(&mut client, "SELECT current_setting('server_version_num')::int/100 as version")?;
    assert_eq!(version, texts(&[&["1600"]]));
    assert!(simple(&mut client, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")?.is_empty());
    let rows = client.query("SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'", &[])?;
    assert_eq!(rows.len(), 7);
    Ok(())
}
