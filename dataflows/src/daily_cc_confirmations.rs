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

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::ops::fold::fold_by_key;
use crate::timefmt::{day_text, parse_datetime};
use crate::topics::{LastValue, Order};
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

/// Checks one order record for unreadable fields; `Ok(id)` when it can be folded.
pub fn check(o: &Order) -> Result<String, Rejection> {
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
    let confirmed = parse_datetime(o.confirm_date_time.as_str()?)?;
    let cc_id = *o.cc_id.val()?;
    (o.status.val() == Some(&3)).then(|| (day_text(&confirmed), cc_id))
}

/// Daily confirmations per consultant, from the order log (records keyed by id).
pub fn dataflow<'s>(orders: StreamVec<'s, Time, (String, Pos, Order)>) -> VecCollection<'s, Time, StaffIndexRow, Diff> {
    fold_by_key(orders, "OrderLastValue", Order::merge_last)
        .flat_map(|(_, order)| attribution(&order))
        .count()
        .map(|((attribution_time, cc_id), count)| StaffIndexRow { cc_id, attribution_time, cc_index: count as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(raw: &str) -> Order {
        Order::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn attribution_rules() {
        assert_eq!(attribution(&order(r#"{"id":"1","cc_id":"7","status":"3","confirm_date_time":"2025-12-02 23:59:59"}"#)), Some(("2025-12-02".into(), 7)));
        assert_eq!(attribution(&order(r#"{"id":"1","cc_id":7,"status":4,"confirm_date_time":"2025-12-02 10:00:00"}"#)), None);
        assert_eq!(attribution(&order(r#"{"id":"1","status":3,"confirm_date_time":"2025-12-02 10:00:00"}"#)), None);
        assert_eq!(attribution(&order(r#"{"id":"1","cc_id":7,"status":3,"confirm_date_time":"2025-12-02"}"#)), None);
        assert_eq!(check(&order(r#"{"id":"1","cc_id":"x"}"#)), Err(Rejection::BadField("cc_id")));
        assert_eq!(check(&order(r#"{"cc_id":1}"#)), Err(Rejection::BadField("id")));
    }
}
