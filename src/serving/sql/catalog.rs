//! The relations a connection serves and the PostgreSQL catalog that describes them.
//!
//! Schema `public` (an attached in-memory SQLite database) holds one read-only virtual
//! table per output, named by its table (`staff_index`), and, when the metric's name
//! differs, a view of it named by the metric (`daily_cc_confirmations`). Schemas
//! `pg_catalog` and `information_schema` hold small real tables filled from
//! [`Output::ALL`] — enough of `pg_namespace`, `pg_class`, `pg_attribute`, `pg_type`, ...
//! and of `information_schema.tables` / `columns` for `psql`'s `\dt`, `\dv`, `\d NAME`
//! and Grafana's table and column pickers — and the functions those queries call
//! ([`functions`]). Catalog tables the clients look at but edu-rtdw has nothing for
//! (`pg_index`, `pg_constraint`, `pg_description`, ...) exist and are empty.
//!
//! Column types: integers are `bigint`, doubles `double precision`, text and timestamps
//! `text` (timestamps are served as `yyyy-MM-dd HH:mm:ss.SSS` UTC text, as the SQLite sink
//! stores them), bytes `bytea`. Primary-key columns are `NOT NULL`.

use rusqlite::{Connection, params};

use dataflows::output::{ColumnType, Output};

use super::frame::SharedFrame;
use super::functions;

/// The OID of schema `public`.
const PUBLIC: i64 = 2200;
/// The OID of schema `pg_catalog`.
const PG_CATALOG: i64 = 11;
/// The OID of schema `information_schema`.
const INFORMATION_SCHEMA: i64 = 13_000;
/// The OID of the database's owner.
const OWNER: i64 = 10;
/// The name of the database.
pub const DATABASE: &str = "edu_rtdw";

/// A relation of schema `public`.
pub struct Relation {
    /// Its OID.
    pub oid: i64,
    /// Its name.
    pub name: &'static str,
    /// The output it shows.
    pub output: Output,
    /// A view (of the output's table) rather than the table.
    pub view: bool,
}

/// Every relation served: the tables, then the views named by metric.
pub fn relations() -> Vec<Relation> {
    let tables = Output::ALL.iter().map(|&output| (output, output.table().name, false));
    let views = Output::ALL.iter().filter(|o| o.name() != o.table().name).map(|&output| (output, output.name(), true));
    tables
        .chain(views)
        .enumerate()
        .map(|(i, (output, name, view))| Relation { oid: 16_384 + i as i64, name, output, view })
        .collect()
}

/// A PostgreSQL type: OID, name (`pg_type.typname`), SQL name (`format_type`), length.
pub struct PgType {
    /// `pg_type.oid`.
    pub oid: i64,
    /// `pg_type.typname`.
    pub name: &'static str,
    /// What `format_type` and `information_schema` call it.
    pub sql_name: &'static str,
    /// `typlen` (-1: variable).
    pub len: i64,
}

/// The types the catalog knows.
pub const TYPES: &[PgType] = &[
    PgType { oid: 16, name: "bool", sql_name: "boolean", len: 1 },
    PgType { oid: 17, name: "bytea", sql_name: "bytea", len: -1 },
    PgType { oid: 19, name: "name", sql_name: "name", len: 64 },
    PgType { oid: 20, name: "int8", sql_name: "bigint", len: 8 },
    PgType { oid: 23, name: "int4", sql_name: "integer", len: 4 },
    PgType { oid: 25, name: "text", sql_name: "text", len: -1 },
    PgType { oid: 26, name: "oid", sql_name: "oid", len: 4 },
    PgType { oid: 701, name: "float8", sql_name: "double precision", len: 8 },
];

/// The type a column is served as.
fn column_type(t: ColumnType) -> &'static PgType {
    let oid = match t {
        ColumnType::Text | ColumnType::Timestamp => 25,
        ColumnType::BigInt | ColumnType::Int | ColumnType::TinyInt => 20,
        ColumnType::Double => 701,
        ColumnType::Bytes => 17,
    };
    TYPES.iter().find(|t| t.oid == oid).unwrap_or(&TYPES[0])
}

/// The definition of a view, as `pg_get_viewdef` shows it.
pub fn view_definition(relation: &Relation) -> String {
    let table = relation.output.table();
    let columns: Vec<String> = table.columns.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    format!(" SELECT {}\n   FROM {};", columns.join(",\n    "), table.name)
}

/// Creates the served relations, the catalog and its functions on `conn`.
pub fn install(conn: &Connection, frame: &SharedFrame, user: &str) -> rusqlite::Result<()> {
    conn.execute_batch(
        "ATTACH ':memory:' AS public; ATTACH ':memory:' AS pg_catalog; ATTACH ':memory:' AS information_schema;",
    )?;
    for relation in relations() {
        let table = relation.output.table().name;
        if relation.view {
            conn.execute_batch(&format!("CREATE VIEW public.\"{}\" AS SELECT * FROM \"{table}\"", relation.name))?;
        } else {
            conn.execute_batch(&format!("CREATE VIRTUAL TABLE public.\"{table}\" USING edu_rtdw"))?;
        }
    }
    conn.execute_batch(SCHEMA)?;
    fill(conn)?;
    functions::register(conn, frame, user)
}

/// The catalog tables (booleans are 0/1 integers declared `BOOLEAN`, served as `t`/`f`).
const SCHEMA: &str = "
CREATE TABLE pg_catalog.pg_namespace(oid INTEGER, nspname TEXT, nspowner INTEGER, nspacl TEXT);
CREATE TABLE pg_catalog.pg_class(oid INTEGER, relname TEXT, relnamespace INTEGER, reltype INTEGER,
  reloftype INTEGER, relowner INTEGER, relam INTEGER, relfilenode INTEGER, reltablespace INTEGER,
  relpages INTEGER, reltuples REAL, relallvisible INTEGER, reltoastrelid INTEGER, relhasindex BOOLEAN,
  relisshared BOOLEAN, relpersistence TEXT, relkind TEXT, relnatts INTEGER, relchecks INTEGER,
  relhasrules BOOLEAN, relhastriggers BOOLEAN, relhassubclass BOOLEAN, relrowsecurity BOOLEAN,
  relforcerowsecurity BOOLEAN, relispopulated BOOLEAN, relreplident TEXT, relispartition BOOLEAN,
  relrewrite INTEGER, relfrozenxid INTEGER, relminmxid INTEGER, relacl TEXT, reloptions TEXT, relpartbound TEXT);
CREATE TABLE pg_catalog.pg_attribute(attrelid INTEGER, attname TEXT, atttypid INTEGER, attstattarget INTEGER,
  attlen INTEGER, attnum INTEGER, attndims INTEGER, attcacheoff INTEGER, atttypmod INTEGER, attbyval BOOLEAN,
  attalign TEXT, attstorage TEXT, attcompression TEXT, attnotnull BOOLEAN, atthasdef BOOLEAN,
  atthasmissing BOOLEAN, attidentity TEXT, attgenerated TEXT, attisdropped BOOLEAN, attislocal BOOLEAN,
  attinhcount INTEGER, attcollation INTEGER, attacl TEXT, attoptions TEXT, attfdwoptions TEXT, attmissingval TEXT);
CREATE TABLE pg_catalog.pg_type(oid INTEGER, typname TEXT, typnamespace INTEGER, typowner INTEGER,
  typlen INTEGER, typbyval BOOLEAN, typtype TEXT, typcategory TEXT, typispreferred BOOLEAN,
  typisdefined BOOLEAN, typdelim TEXT, typrelid INTEGER, typsubscript INTEGER, typelem INTEGER,
  typarray INTEGER, typinput TEXT, typoutput TEXT, typreceive TEXT, typsend TEXT, typbasetype INTEGER,
  typtypmod INTEGER, typndims INTEGER, typcollation INTEGER, typnotnull BOOLEAN, typdefault TEXT, typacl TEXT);
CREATE TABLE pg_catalog.pg_database(oid INTEGER, datname TEXT, datdba INTEGER, encoding INTEGER,
  datlocprovider TEXT, datcollate TEXT, datctype TEXT, daticulocale TEXT, datistemplate BOOLEAN,
  datallowconn BOOLEAN, datconnlimit INTEGER, datacl TEXT);
CREATE TABLE pg_catalog.pg_roles(oid INTEGER, rolname TEXT, rolsuper BOOLEAN, rolinherit BOOLEAN,
  rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN, rolreplication BOOLEAN,
  rolconnlimit INTEGER, rolvaliduntil TEXT, rolbypassrls BOOLEAN, rolconfig TEXT);
CREATE TABLE pg_catalog.pg_user(usename TEXT, usesysid INTEGER, usecreatedb BOOLEAN, usesuper BOOLEAN);
CREATE TABLE pg_catalog.pg_am(oid INTEGER, amname TEXT, amhandler TEXT, amtype TEXT);
CREATE TABLE pg_catalog.pg_settings(name TEXT, setting TEXT, unit TEXT, category TEXT, short_desc TEXT, vartype TEXT);
CREATE TABLE pg_catalog.pg_index(indexrelid INTEGER, indrelid INTEGER, indnatts INTEGER, indnkeyatts INTEGER,
  indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN,
  indimmediate BOOLEAN, indisclustered BOOLEAN, indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN,
  indislive BOOLEAN, indisreplident BOOLEAN, indkey TEXT, indcollation TEXT, indclass TEXT, indoption TEXT,
  indexprs TEXT, indpred TEXT);
CREATE TABLE pg_catalog.pg_description(objoid INTEGER, classoid INTEGER, objsubid INTEGER, description TEXT);
CREATE TABLE pg_catalog.pg_inherits(inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER, inhdetachpending BOOLEAN);
CREATE TABLE pg_catalog.pg_constraint(oid INTEGER, conname TEXT, connamespace INTEGER, contype TEXT,
  condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid INTEGER, contypid INTEGER,
  conindid INTEGER, conparentid INTEGER, confrelid INTEGER, confupdtype TEXT, confdeltype TEXT,
  confmatchtype TEXT, conislocal BOOLEAN, coninhcount INTEGER, connoinherit BOOLEAN, conkey TEXT, confkey TEXT,
  conbin TEXT);
CREATE TABLE pg_catalog.pg_trigger(oid INTEGER, tgrelid INTEGER, tgparentid INTEGER, tgname TEXT,
  tgfoid INTEGER, tgtype INTEGER, tgenabled TEXT, tgisinternal BOOLEAN, tgconstrrelid INTEGER,
  tgconstrindid INTEGER, tgconstraint INTEGER, tgdeferrable BOOLEAN, tginitdeferred BOOLEAN, tgnargs INTEGER,
  tgattr TEXT, tgargs BLOB, tgqual TEXT, tgoldtable TEXT, tgnewtable TEXT);
CREATE TABLE pg_catalog.pg_policy(oid INTEGER, polname TEXT, polrelid INTEGER, polcmd TEXT,
  polpermissive BOOLEAN, polroles TEXT, polqual TEXT, polwithcheck TEXT);
CREATE TABLE pg_catalog.pg_rewrite(oid INTEGER, rulename TEXT, ev_class INTEGER, ev_type TEXT,
  ev_enabled TEXT, is_instead BOOLEAN, ev_qual TEXT, ev_action TEXT);
CREATE TABLE pg_catalog.pg_statistic_ext(oid INTEGER, stxrelid INTEGER, stxname TEXT, stxnamespace INTEGER,
  stxowner INTEGER, stxstattarget INTEGER, stxkeys TEXT, stxkind TEXT, stxexprs TEXT);
CREATE TABLE pg_catalog.pg_publication(oid INTEGER, pubname TEXT, pubowner INTEGER, puballtables BOOLEAN,
  pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN);
CREATE TABLE pg_catalog.pg_publication_rel(oid INTEGER, prpubid INTEGER, prrelid INTEGER, prqual TEXT, prattrs TEXT);
CREATE TABLE pg_catalog.pg_publication_namespace(oid INTEGER, pnpubid INTEGER, pnnspid INTEGER);
CREATE TABLE pg_catalog.pg_foreign_table(ftrelid INTEGER, ftserver INTEGER, ftoptions TEXT);
CREATE TABLE pg_catalog.pg_partitioned_table(partrelid INTEGER, partstrat TEXT, partnatts INTEGER,
  partdefid INTEGER, partattrs TEXT, partclass TEXT, partcollation TEXT, partexprs TEXT);
CREATE TABLE pg_catalog.pg_attrdef(oid INTEGER, adrelid INTEGER, adnum INTEGER, adbin TEXT);
CREATE TABLE pg_catalog.pg_collation(oid INTEGER, collname TEXT, collnamespace INTEGER, collowner INTEGER,
  collprovider TEXT, collisdeterministic BOOLEAN, collencoding INTEGER, collcollate TEXT, collctype TEXT);
CREATE TABLE pg_catalog.pg_proc(oid INTEGER, proname TEXT, pronamespace INTEGER, proowner INTEGER,
  prokind TEXT, prorettype INTEGER, proargtypes TEXT, prosrc TEXT);
CREATE TABLE pg_catalog.pg_extension(oid INTEGER, extname TEXT, extowner INTEGER, extnamespace INTEGER,
  extrelocatable BOOLEAN, extversion TEXT, extconfig TEXT, extcondition TEXT);
CREATE TABLE pg_catalog.pg_tablespace(oid INTEGER, spcname TEXT, spcowner INTEGER, spcacl TEXT, spcoptions TEXT);
CREATE TABLE pg_catalog.pg_sequence(seqrelid INTEGER, seqtypid INTEGER, seqstart INTEGER, seqincrement INTEGER,
  seqmax INTEGER, seqmin INTEGER, seqcache INTEGER, seqcycle BOOLEAN);
CREATE VIEW pg_catalog.pg_tables AS SELECT n.nspname AS schemaname, c.relname AS tablename,
  'edu_rtdw' AS tableowner, NULL AS tablespace, 0 AS hasindexes, 0 AS hasrules, 0 AS hastriggers,
  0 AS rowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r';
CREATE VIEW pg_catalog.pg_views AS SELECT n.nspname AS schemaname, c.relname AS viewname,
  'edu_rtdw' AS viewowner, NULL AS definition FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'v';
CREATE TABLE information_schema.schemata(catalog_name TEXT, schema_name TEXT, schema_owner TEXT);
CREATE TABLE information_schema.tables(table_catalog TEXT, table_schema TEXT, table_name TEXT, table_type TEXT,
  self_referencing_column_name TEXT, reference_generation TEXT, user_defined_type_catalog TEXT,
  user_defined_type_schema TEXT, user_defined_type_name TEXT, is_insertable_into TEXT, is_typed TEXT,
  commit_action TEXT);
CREATE TABLE information_schema.views(table_catalog TEXT, table_schema TEXT, table_name TEXT,
  view_definition TEXT, check_option TEXT, is_updatable TEXT, is_insertable_into TEXT);
CREATE TABLE information_schema.columns(table_catalog TEXT, table_schema TEXT, table_name TEXT,
  column_name TEXT, ordinal_position INTEGER, column_default TEXT, is_nullable TEXT, data_type TEXT,
  character_maximum_length INTEGER, character_octet_length INTEGER, numeric_precision INTEGER,
  numeric_precision_radix INTEGER, numeric_scale INTEGER, datetime_precision INTEGER, udt_catalog TEXT,
  udt_schema TEXT, udt_name TEXT, is_identity TEXT, is_generated TEXT, is_updatable TEXT);
";

/// Fills the catalog tables from the served relations.
fn fill(conn: &Connection) -> rusqlite::Result<()> {
    let namespaces = [(PG_CATALOG, "pg_catalog"), (PUBLIC, "public"), (INFORMATION_SCHEMA, "information_schema")];
    for (oid, name) in namespaces {
        conn.execute("INSERT INTO pg_namespace VALUES (?1, ?2, ?3, NULL)", params![oid, name, OWNER])?;
        conn.execute("INSERT INTO information_schema.schemata VALUES (?1, ?2, ?1)", params![DATABASE, name])?;
    }
    for t in TYPES {
        conn.execute(
            "INSERT INTO pg_type (oid, typname, typnamespace, typowner, typlen, typbyval, typtype, typisdefined,
               typdelim, typrelid, typelem, typarray, typbasetype, typtypmod, typndims, typcollation, typnotnull)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'b', 1, ',', 0, 0, 0, 0, -1, 0, 0, 0)",
            params![t.oid, t.name, PG_CATALOG, OWNER, t.len, t.len > 0],
        )?;
    }
    conn.execute_batch(&format!(
        "INSERT INTO pg_database (oid, datname, datdba, encoding, datlocprovider, datcollate, datctype,
           datistemplate, datallowconn, datconnlimit) VALUES (16383, '{DATABASE}', {OWNER}, 6, 'c', 'C.UTF-8',
           'C.UTF-8', 0, 1, -1);
         INSERT INTO pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't');"
    ))?;
    for relation in relations() {
        relation_rows(conn, &relation)?;
    }
    Ok(())
}

/// The catalog rows of one relation: `pg_class`, `pg_attribute`, `information_schema`.
fn relation_rows(conn: &Connection, relation: &Relation) -> rusqlite::Result<()> {
    let table = relation.output.table();
    let (kind, table_type) = if relation.view { ("v", "VIEW") } else { ("r", "BASE TABLE") };
    conn.execute(
        "INSERT INTO pg_class (oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode,
           reltablespace, relpages, reltuples, relallvisible, reltoastrelid, relhasindex, relisshared,
           relpersistence, relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass,
           relrowsecurity, relforcerowsecurity, relispopulated, relreplident, relispartition, relrewrite)
         VALUES (?1, ?2, ?3, 0, 0, ?4, ?5, 0, 0, 0, -1, 0, 0, 0, 0, 'p', ?6, ?7, 0, ?8, 0, 0, 0, 0, 1, 'd', 0, 0)",
        params![
            relation.oid,
            relation.name,
            PUBLIC,
            OWNER,
            if relation.view { 0 } else { 2 },
            kind,
            table.columns.len() as i64,
            relation.view
        ],
    )?;
    conn.execute(
        "INSERT INTO information_schema.tables (table_catalog, table_schema, table_name, table_type,
           is_insertable_into, is_typed) VALUES (?1, 'public', ?2, ?3, 'NO', 'NO')",
        params![DATABASE, relation.name, table_type],
    )?;
    if relation.view {
        conn.execute(
            "INSERT INTO information_schema.views VALUES (?1, 'public', ?2, ?3, 'NONE', 'NO', 'NO')",
            params![DATABASE, relation.name, view_definition(relation)],
        )?;
    }
    for (i, (name, t)) in table.columns.iter().enumerate() {
        let pg = column_type(*t);
        let not_null = table.key.contains(&i);
        conn.execute(
            "INSERT INTO pg_attribute (attrelid, attname, atttypid, attstattarget, attlen, attnum, attndims,
               attcacheoff, atttypmod, attbyval, attalign, attstorage, attcompression, attnotnull, atthasdef,
               atthasmissing, attidentity, attgenerated, attisdropped, attislocal, attinhcount, attcollation)
             VALUES (?1, ?2, ?3, -1, ?4, ?5, 0, -1, -1, ?6, 'd', 'p', '', ?7, 0, 0, '', '', 0, 1, 0, 0)",
            params![relation.oid, name, pg.oid, pg.len, i as i64 + 1, pg.len > 0, not_null],
        )?;
        conn.execute(
            "INSERT INTO information_schema.columns (table_catalog, table_schema, table_name, column_name,
               ordinal_position, is_nullable, data_type, numeric_precision, udt_catalog, udt_schema, udt_name,
               is_identity, is_generated, is_updatable)
             VALUES (?1, 'public', ?2, ?3, ?4, ?5, ?6, ?7, ?1, 'pg_catalog', ?8, 'NO', 'NEVER', 'NO')",
            params![
                DATABASE,
                relation.name,
                name,
                i as i64 + 1,
                if not_null { "NO" } else { "YES" },
                pg.sql_name,
                (pg.oid == 20).then_some(64).or((pg.oid == 701).then_some(53)),
                pg.name
            ],
        )?;
    }
    Ok(())
}
