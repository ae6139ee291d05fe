//! The SQL servers of the tests (MariaDB and PostgreSQL of `scripts/db-up.sh`): one lock,
//! fresh databases, routes to every sink, reading tables back, and outages.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ::mysql::prelude::Queryable;
use connectors::mysql::MysqlSink;
use connectors::postgres::PostgresSink;
use connectors::tables::ALL;

pub const MYSQL_ADMIN: &str = "mysql://edu:edu@127.0.0.1:3306/edu_rtdw";
pub const POSTGRES_ADMIN: &str = "postgres://edu:edu@127.0.0.1:5432/edu_rtdw";

pub static SERVERS: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Server {
    Mysql,
    Postgres,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Mysql => "mysql",
            Server::Postgres => "postgres",
        }
    }

    pub fn port(self) -> u16 {
        match self {
            Server::Mysql => 3306,
            Server::Postgres => 5432,
        }
    }
}

/// Takes the servers' lock and fails (not skips) when a server does not answer.
pub fn servers() -> MutexGuard<'static, ()> {
    let guard = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    for server in [Server::Mysql, Server::Postgres] {
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port()));
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok(),
            "nothing answers on 127.0.0.1:{}: run scripts/db-up.sh first (it installs and starts MariaDB and PostgreSQL)",
            server.port()
        );
    }
    guard
}

/// Drops and creates database `name`; returns its URL for user edu.
pub fn fresh_database(server: Server, name: &str) -> String {
    match server {
        Server::Mysql => {
            let mut conn = ::mysql::Conn::new(::mysql::Opts::from_url(MYSQL_ADMIN).expect("mysql url"))
                .expect("connect to MariaDB");
            conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`")).expect("drop database");
            conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).expect("create database");
            format!("mysql://edu:edu@127.0.0.1:3306/{name}")
        }
        Server::Postgres => {
            let mut client = POSTGRES_ADMIN
                .parse::<::postgres::Config>()
                .expect("pg url")
                .connect(::postgres::NoTls)
                .expect("connect to PostgreSQL");
            client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).expect("drop database");
            client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).expect("create database");
            format!("postgres://edu:edu@127.0.0.1:5432/{name}")
        }
    }
}

/// The route names of every output table: every metric's name, and `dead_letters`.
pub fn routes() -> impl Iterator<Item = &'static str> {
    dataflows::output::Output::ALL.into_iter().map(|o| o.name())
}

/// A config file routing every table to `server`.
pub fn route_all_to(dir: &Path, server: Server) -> PathBuf {
    let mut text = String::from("[routes]\n");
    for route in routes() {
        text.push_str(&format!("{route} = [\"{}\"]\n", server.name()));
    }
    let path = dir.join(format!("{}.toml", server.name()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The rows of `tables` (indices into `ALL`) in the database at `url`, as [`dump`] prints them.
pub fn server_result(server: Server, url: &str, tables: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    for &i in tables {
        let t = &ALL[i];
        let rows = match server {
            Server::Mysql => MysqlSink::read_rows(url, t),
            Server::Postgres => PostgresSink::read_rows(url, t),
        }
        .unwrap_or_else(|e| panic!("read {} from {}: {e:#}", t.name, server.name()));
        let mut lines: Vec<String> = rows.into_iter().map(|cells| format!("{}|{}", t.name, cells.join("|"))).collect();
        lines.sort();
        out.extend(lines);
    }
    out
}

/// Only the lines of `tables` (indices into `ALL`) of a dump.
pub fn only(lines: &[String], tables: &[usize]) -> Vec<String> {
    lines.iter().filter(|l| tables.iter().any(|&i| l.starts_with(&format!("{}|", ALL[i].name)))).cloned().collect()
}

pub fn assert_same(what: &str, expected: &[String], actual: &[String]) {
    if expected == actual {
        return;
    }
    // Hash sets: a debug build searching 100k-row vectors for each row takes minutes.
    let (want, got): (HashSet<&String>, HashSet<&String>) = (expected.iter().collect(), actual.iter().collect());
    let missing: Vec<&String> = expected.iter().filter(|l| !got.contains(l)).take(5).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !want.contains(l)).take(5).collect();
    panic!(
        "{what}: {} rows expected, {} found\nmissing (first 5): {missing:#?}\nunexpected (first 5): {extra:#?}",
        expected.len(),
        actual.len()
    );
}

/// Stops `server` (as `scripts/db-down.sh --force <server>` does) and starts it again with `scripts/db-up.sh <server>`.
pub fn script(name: &str, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash").arg(root.join("scripts").join(name)).args(args).status().expect("run script");
    assert!(status.success(), "scripts/{name} {args:?} failed");
}

/// The committed logical-time frontier of sink `server` (0 before the first commit or while the server is away).
pub fn committed_upper(server: Server, url: &str) -> i64 {
    match server {
        Server::Mysql => ::mysql::Conn::new(::mysql::Opts::from_url(url).expect("url"))
            .ok()
            .and_then(|mut c| {
                c.exec_first::<i64, _, _>("SELECT `upper` FROM edu_rtdw_progress WHERE sink = 'mysql'", ())
                    .ok()
                    .flatten()
            })
            .unwrap_or(0),
        Server::Postgres => url
            .parse::<::postgres::Config>()
            .expect("url")
            .connect(::postgres::NoTls)
            .ok()
            .and_then(|mut c| {
                c.query_opt("SELECT upper FROM edu_rtdw_progress WHERE sink = 'postgres'", &[]).ok().flatten()
            })
            .map_or(0, |row| row.get::<_, i64>(0)),
    }
}

/// A config file routing every table to SQLite, MySQL and PostgreSQL at once, and the
/// cleaned signals and dead letters to Kafka too when `kafka`.
pub fn route_all_to_every_sink(dir: &Path, kafka: bool) -> PathBuf {
    let mut text = String::from("[routes]\n");
    for route in routes() {
        let also_kafka = kafka && matches!(route, "student_signal_etl" | "dead_letters");
        let sinks =
            if also_kafka { r#""sqlite", "mysql", "postgres", "kafka""# } else { r#""sqlite", "mysql", "postgres""# };
        text.push_str(&format!("{route} = [{sinks}]\n"));
    }
    let path = dir.join("every-sink.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A config file routing every table to SQLite only (no Kafka outputs even with `--brokers`).
pub fn route_all_to_sqlite(dir: &Path) -> PathBuf {
    let mut text = String::from("[routes]\n");
    for route in routes() {
        text.push_str(&format!("{route} = [\"sqlite\"]\n"));
    }
    let path = dir.join("sqlite-only.toml");
    std::fs::write(&path, text).expect("write config");
    path
}
