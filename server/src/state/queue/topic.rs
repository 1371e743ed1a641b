//! One topic's own bookkeeping: ready order, receipt checks, stats.

use super::*;

impl Topic {
    pub(super) fn push_ready(&mut self, mut m: Message, keep_id: bool) -> u64 {
        if !keep_id {
            self.next_id += 1;
            m.id = self.next_id;
        }
        let id = m.id;
        self.ready.insert(id, m);
        id
    }

    /// Checks every receipt before any takes effect: a batch is applied
    /// whole or not at all.
    pub(super) fn check_receipts(
        &self,
        topic: &str,
        receipts: &[String],
    ) -> Result<Vec<u64>, CmdError> {
        let mut ids = Vec::with_capacity(receipts.len());
        let mut stale = Vec::new();
        for r in receipts {
            match parse_receipt(r) {
                Some((id, d)) if self.in_flight.get(&id).is_some_and(|f| f.delivery == d) => {
                    ids.push(id)
                }
                Some(_) => stale.push(r.clone()),
                None => {
                    return Err(CmdError::new(
                        ErrorCode::InvalidArgument,
                        format!("{r:?} is not a receipt"),
                    ));
                }
            }
        }
        if !stale.is_empty() {
            return Err(CmdError::new(
                ErrorCode::StaleReceipt,
                format!("{} receipt(s) of topic {topic:?} are not current deliveries (acked, expired or redelivered)", stale.len()),
            )
            .with_details(serde_json::json!({ "stale": stale })));
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    pub(super) fn stats(&self, name: &str, dead_lettered: u64, now_ms: u64) -> TopicStats {
        let oldest = self
            .ready
            .values()
            .chain(self.delayed.values())
            .chain(self.in_flight.values().map(|f| &f.msg))
            .map(|m| m.enqueued_at_ms)
            .min();
        TopicStats {
            topic: name.to_string(),
            ready: self.ready.len() as u64,
            in_flight: self.in_flight.len() as u64,
            delayed: self.delayed.len() as u64,
            dead_lettered,
            enqueued_total: self.enqueued_total,
            acked_total: self.acked_total,
            redelivered_total: self.redelivered_total,
            oldest_age_ms: oldest.map_or(0, |t| now_ms.saturating_sub(t)),
            max_attempts: self.settings.max_attempts,
            visibility_ms: self.settings.visibility_ms,
            max_message_bytes: self.settings.max_message_bytes,
            retention_ms: self.settings.retention_ms,
            // The state machine does not know the shard map; the route fills it.
            group: 0,
        }
    }
}
