//! The query protocols: simple (each statement of a text in turn, a notice before each
//! answer that read data) and extended (`Describe` runs a statement it can, so drivers learn
//! the true column types; the `Execute` that follows sends that answer).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, stream};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_query_response};
use pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse, QueryResponse, Response, Tag};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use rusqlite::types::Value;

use super::connection::{Connection, Encoded, client_error, encode, notice, single, user_of};
use super::engine::{Outcome, SqlError};
use super::{rewrite, wire};

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match rewrite::statements(query) {
            Ok(statements) => statements,
            Err(message) => return Ok(vec![Response::Error(Box::new(error_info(SqlError::new("42601", message))))]),
        };
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let user = user_of(client);
        for statement in statements {
            match self.run(user.clone(), statement, Vec::new(), Format::UnifiedText).await {
                Ok(Encoded::Rows { fields, rows, upper }) => {
                    notice(client, upper).await?;
                    let response = QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok)));
                    send_query_response(client, response, true).await?;
                }
                Ok(Encoded::Command(tag)) => send_execution_response(client, Tag::new(tag)).await?,
                Err(e) => return Ok(vec![Response::Error(Box::new(error_info(e)))]),
            }
        }
        Ok(Vec::new())
    }
}

fn error_info(e: SqlError) -> ErrorInfo {
    ErrorInfo::new("ERROR".into(), e.code.into(), e.message)
}

/// The parameters of a bound portal as SQLite values.
fn parameters(portal: &Portal<String>) -> Result<Vec<Value>, SqlError> {
    let types = &portal.statement.parameter_types;
    (0..portal.parameter_len())
        .map(|i| {
            let t = types.get(i).cloned().flatten().unwrap_or(Type::TEXT);
            let raw = portal.parameters.get(i).and_then(|p| p.as_deref());
            wire::parameter(raw, &t, &portal.parameter_format, i)
        })
        .collect()
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (count, columns, types, upper) =
            self.describe(user_of(client), &target.statement, None).await.map_err(client_error)?;
        notice(client, upper).await?;
        let parameter_types = (0..count.max(target.parameter_types.len()))
            .map(|i| target.parameter_types.get(i).cloned().flatten().unwrap_or(Type::TEXT))
            .collect();
        Ok(DescribeStatementResponse::new(parameter_types, wire::fields(&columns, &types, &Format::UnifiedText)))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let values = parameters(portal).map_err(client_error)?;
        let sql = &portal.statement.statement;
        let (_, columns, types, upper) =
            self.describe(user_of(client), sql, Some(values)).await.map_err(client_error)?;
        notice(client, upper).await?;
        Ok(DescribePortalResponse::new(wire::fields(&columns, &types, &portal.result_column_format)))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = &portal.statement.statement;
        let values = parameters(portal).map_err(client_error)?;
        let format = portal.result_column_format.clone();
        let encoded = match self.take_described(sql, &values) {
            Some(rows) => {
                let types = self.types_of(sql);
                tokio::task::spawn_blocking(move || encode(Outcome::Rows(rows), types, &format))
                    .await
                    .unwrap_or_else(|_| Err(SqlError::new("XX000", "the encoding failed")))
            }
            None => {
                let statement = single(sql).map_err(client_error)?;
                let encoded = self.run(user_of(client), statement, values, format).await;
                if let Ok(Encoded::Rows { upper, .. }) = &encoded {
                    notice(client, *upper).await?;
                }
                encoded
            }
        };
        match encoded.map_err(client_error)? {
            Encoded::Rows { fields, rows, .. } => {
                Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok)))))
            }
            Encoded::Command(tag) => Ok(Response::Execution(Tag::new(tag))),
        }
    }
}
