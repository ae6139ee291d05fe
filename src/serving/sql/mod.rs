//! SQL over the PostgreSQL wire protocol (in progress).
