//! 2.7 `daily_cc_confirmations` — daily course-consultant follow-ups (seed: 每日课程顾问追踪统计).
//!
//! `data_pack_order_info` is deduplicated by `id` with Flink LAST_VALUE
//! semantics (per column, the last non-NULL value in offset order); orders
//! with a parseable `confirm_date_time`, a non-NULL `cc_id` and `status = 3`
//! are counted per `(attribution_time = yyyy-MM-dd of confirm_date_time,
//! cc_id)`. Table `staff_index (cc_id, cc_index, type = 1, attribution_time,
//! update_time)`: a changed count updates the row, a count reaching zero
//! deletes it.
//!
//! Dead letters: a record without `id` (`bad_field:id`), or with `cc_id` or
//! `status` not an integer, or any other field not text (`bad_field:<name>`);
//! such a record does not take part in the deduplication.
//!
//! Memory: the deduplicated state is one [`OrderState`] per id: only the three
//! columns the metric reads (LAST_VALUE of the others cannot change its
//! output), with `confirm_date_time` kept as its parsed day, under a compact
//! [`OrderId`] (canonical decimal ids, the common case, need no allocation).

use differential_dataflow::VecCollection;
use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Text;
use crate::ops::FoldByKey;
use chrono::Datelike;

use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::timefmt::parse_datetime;
use crate::topics::Order;
use crate::{Diff, Pos, Rejection, Time};

/// One row of `staff_index` (`type` is always 1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StaffIndexRow {
    /// Key: the consultant.
    pub cc_id: i64,
    /// Key: `yyyy-MM-dd` of the confirmation.
    pub attribution_time: String,
    /// Confirmed orders that day.
    pub cc_index: i64,
}

/// An order id: a canonical decimal number (no sign, no leading zero, at most
/// 18 digits) as that number, any other text as is. The two forms never meet,
/// so distinct ids stay distinct.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrderId {
    /// A canonical decimal id.
    Num(u64),
    /// Any other id.
    Text(Box<str>),
}

impl OrderId {
    /// The compact form of `id`.
    ///
    /// ```
    /// use dataflows::daily_cc_confirmations::OrderId;
    /// assert_eq!(OrderId::new("3000123"), OrderId::Num(3_000_123));
    /// assert_eq!(OrderId::new("0"), OrderId::Num(0));
    /// assert_eq!(OrderId::new("007"), OrderId::Text("007".into()));
    /// assert_eq!(OrderId::new("+7"), OrderId::Text("+7".into()));
    /// ```
    pub fn new(id: &str) -> Self {
        let b = id.as_bytes();
        let canonical =
            !b.is_empty() && b.len() <= 18 && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
        match canonical.then(|| id.parse::<u64>().ok()).flatten() {
            Some(n) => OrderId::Num(n),
            None => OrderId::Text(id.into()),
        }
    }
}

/// What 2.7 keeps of an order: per-column LAST_VALUE of the columns it reads,
/// packed into 24 bytes, since the dedup state holds one per live order id.
///
/// ```
/// use dataflows::daily_cc_confirmations::OrderState;
/// use dataflows::topics::Order;
/// let state = |raw: &str| OrderState::of(&Order::parse(raw.as_bytes()).unwrap());
/// let mut s = state(r#"{"cc_id": 7, "status": 3, "confirm_date_time": "2025-12-02 08:00:00"}"#);
/// assert_eq!(s.attribution(), Some(("2025-12-02".to_string(), 7)));
/// s.merge_last(state(r#"{"status": null, "confirm_date_time": "not a date"}"#));
/// assert_eq!(s.attribution(), None, "the later non-NULL confirm time wins, and does not parse");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderState {
    /// `cc_id`, when `CC_ID` is set.
    cc_id: i64,
    /// `status`, when `STATUS` is set.
    status: i64,
    /// `confirm_date_time` as its day (days from the Common Era), when `DAY_PARSED` is set.
    confirm_day: i32,
    /// Which columns had a non-NULL value, and whether the last `confirm_date_time` parsed.
    set: u8,
}

const CC_ID: u8 = 1;
const STATUS: u8 = 2;
const CONFIRMED: u8 = 4;
const DAY_PARSED: u8 = 8;

impl OrderState {
    /// The state of one (checked) record.
    pub fn of(o: &Order) -> Self {
        let mut state = OrderState::default();
        if let Some(&cc_id) = o.cc_id.val() {
            state.cc_id = cc_id;
            state.set |= CC_ID;
        }
        if let Some(&status) = o.status.val() {
            state.status = status;
            state.set |= STATUS;
        }
        if let Some(text) = o.confirm_date_time.as_str() {
            state.set |= CONFIRMED;
            if let Some(t) = parse_datetime(text) {
                state.confirm_day = t.date().num_days_from_ce();
                state.set |= DAY_PARSED;
            }
        }
        state
    }

    /// Per-column LAST_VALUE: each non-NULL column of `later` wins.
    pub fn merge_last(&mut self, later: OrderState) {
        if later.set & CC_ID != 0 {
            self.cc_id = later.cc_id;
            self.set |= CC_ID;
        }
        if later.set & STATUS != 0 {
            self.status = later.status;
            self.set |= STATUS;
        }
        if later.set & CONFIRMED != 0 {
            self.confirm_day = later.confirm_day;
            self.set = (self.set & !DAY_PARSED) | CONFIRMED | (later.set & DAY_PARSED);
        }
    }

    /// The `(attribution_time, cc_id)` this state counts for, if any.
    pub fn attribution(&self) -> Option<(String, i64)> {
        let needed = CC_ID | STATUS | DAY_PARSED;
        if self.set & needed != needed || self.status != 3 {
            return None;
        }
        let day = chrono::NaiveDate::from_num_days_from_ce_opt(self.confirm_day)?;
        Some((crate::timefmt::date_text(day), self.cc_id))
    }
}

/// Checks one order record for unreadable fields; `Ok(id)` when it can be folded.
pub fn check(o: &Order) -> Result<Text, Rejection> {
    let id = o.id.require("id")?.clone();
    o.cc_id.read("cc_id")?;
    o.status.read("status")?;
    for (field, name) in [
        (&o.student_id, "student_id"),
        (&o.order_id, "order_id"),
        (&o.leads_id, "leads_id"),
        (&o.confirm_date_time, "confirm_date_time"),
        (&o.create_time, "create_time"),
        (&o.update_time, "update_time"),
        (&o.order_create_time, "order_create_time"),
        (&o.canceled_date_time, "canceled_date_time"),
        (&o.apply_refund_date, "apply_refund_date"),
    ] {
        field.read(name)?;
    }
    Ok(id)
}

/// The `(attribution_time, cc_id)` an order's current state counts for, if any.
pub fn attribution(o: &Order) -> Option<(String, i64)> {
    OrderState::of(o).attribution()
}

/// Daily confirmations per consultant, from the order log (records keyed by id). The seed's
/// query over its LAST_VALUE view of the orders:
///
/// ```sql
/// SELECT cc_id, COUNT(*) AS cc_index, date_format(confirm_date_time, 'yyyy-MM-dd') AS attribution_time
/// FROM (SELECT LAST_VALUE(cc_id), LAST_VALUE(confirm_date_time), LAST_VALUE(status)
///       FROM cc_data_pack_order_info_src GROUP BY id)
/// WHERE confirm_date_time IS NOT NULL AND status = 3
/// GROUP BY date_format(confirm_date_time, 'yyyy-MM-dd'), cc_id
/// ```
pub fn dataflow<'s>(
    orders: StreamVec<'s, Time, (OrderId, Pos, OrderState)>,
) -> VecCollection<'s, Time, StaffIndexRow, Diff> {
    orders
        .fold_by_key("OrderLastValue", OrderState::merge_last)
        .flat_map(|(_, order)| order.attribution())
        .count_total()
        .map(|((attribution_time, cc_id), count)| StaffIndexRow { cc_id, attribution_time, cc_index: count as i64 })
}

/// 2.7 `staff_index` (`type` is always 1).
impl Row for StaffIndexRow {
    const TABLE: Table = Table {
        name: "staff_index",
        columns: &[("cc_id", BigInt), ("cc_index", BigInt), ("type", Int), ("attribution_time", Text)],
        key: &[0, 2, 3],
        stamp: Some(("update_time", StampKind::Timestamp)),
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Int(self.cc_id),
            SqlValue::Int(self.cc_index),
            SqlValue::Int(1),
            SqlValue::Text(self.attribution_time.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(raw: &str) -> Order {
        Order::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn attribution_rules() {
        assert_eq!(
            attribution(&order(r#"{"id":"1","cc_id":"7","status":"3","confirm_date_time":"2025-12-02 23:59:59"}"#)),
            Some(("2025-12-02".into(), 7))
        );
        assert_eq!(
            attribution(&order(r#"{"id":"1","cc_id":7,"status":4,"confirm_date_time":"2025-12-02 10:00:00"}"#)),
            None
        );
        assert_eq!(attribution(&order(r#"{"id":"1","status":3,"confirm_date_time":"2025-12-02 10:00:00"}"#)), None);
        assert_eq!(attribution(&order(r#"{"id":"1","cc_id":7,"status":3,"confirm_date_time":"2025-12-02"}"#)), None);
        assert_eq!(check(&order(r#"{"id":"1","cc_id":"x"}"#)), Err(Rejection::BadField("cc_id")));
        assert_eq!(check(&order(r#"{"cc_id":1}"#)), Err(Rejection::BadField("id")));
    }
}
