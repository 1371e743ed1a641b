//! A topic's whole state in pages, for a topic that moves to another
//! queue group (resharding): the source pages out a frozen topic, the
//! target stages the pages and installs the topic at once.

use dsync_api::shards::route_name;

use super::*;

/// One piece of a topic's state. A `Topic` part starts each topic; the
/// parts after it belong to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TopicPart {
    Topic {
        name: String,
        settings: Settings,
        next_id: u64,
        enqueued_total: u64,
        acked_total: u64,
        redelivered_total: u64,
    },
    Ready(Message),
    /// Visible at, message.
    Delayed(u64, Message),
    InFlight(InFlight),
    /// Dedup id, message id, forgotten at.
    Dedup(String, u64, u64),
}

impl TopicPart {
    /// Rough size in bytes, to bound a page.
    pub fn size_hint(&self) -> usize {
        match self {
            TopicPart::Topic { name, .. } => name.len() + 64,
            TopicPart::Ready(m) | TopicPart::Delayed(_, m) => m.payload.len() + 48,
            TopicPart::InFlight(f) => f.msg.payload.len() + f.consumer.len() + 64,
            TopicPart::Dedup(d, ..) => d.len() + 24,
        }
    }
}

/// A part of a topic, borrowed: pages skip parts without copying them.
enum PartRef<'a> {
    Topic(&'a str, &'a Topic),
    Ready(&'a Message),
    Delayed(u64, &'a Message),
    InFlight(&'a InFlight),
    Dedup(&'a str, u64, u64),
}

impl PartRef<'_> {
    fn to_part(&self) -> TopicPart {
        match *self {
            PartRef::Topic(name, t) => TopicPart::Topic {
                name: name.to_string(),
                settings: t.settings.clone(),
                next_id: t.next_id,
                enqueued_total: t.enqueued_total,
                acked_total: t.acked_total,
                redelivered_total: t.redelivered_total,
            },
            PartRef::Ready(m) => TopicPart::Ready(m.clone()),
            PartRef::Delayed(at, m) => TopicPart::Delayed(at, m.clone()),
            PartRef::InFlight(f) => TopicPart::InFlight(f.clone()),
            PartRef::Dedup(d, id, until) => TopicPart::Dedup(d.to_string(), id, until),
        }
    }
}

impl Topic {
    fn parts<'a>(&'a self, name: &'a str) -> impl Iterator<Item = PartRef<'a>> + 'a {
        std::iter::once(PartRef::Topic(name, self))
            .chain(self.ready.values().map(PartRef::Ready))
            .chain(
                self.delayed
                    .iter()
                    .map(|((at, _), m)| PartRef::Delayed(*at, m)),
            )
            .chain(self.in_flight.values().map(PartRef::InFlight))
            .chain(
                self.dedup
                    .iter()
                    .map(|(d, (id, until))| PartRef::Dedup(d, *id, *until)),
            )
    }

    /// Takes in one part of a topic being staged.
    fn absorb(&mut self, part: TopicPart) {
        match part {
            TopicPart::Topic { .. } => {}
            TopicPart::Ready(m) => {
                self.ready.insert(m.id, m);
            }
            TopicPart::Delayed(at, m) => {
                self.delayed.insert((at, m.id), m);
            }
            TopicPart::InFlight(f) => {
                self.in_flight.insert(f.msg.id, f);
            }
            TopicPart::Dedup(d, id, until) => {
                self.dedup.insert(d, (id, until));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty() && self.in_flight.is_empty()
    }
}

/// Topics being staged from their parts, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Staging {
    pub topics: BTreeMap<String, Topic>,
    current: Option<String>,
}

impl Staging {
    pub fn absorb(&mut self, part: TopicPart) {
        if let TopicPart::Topic {
            name,
            settings,
            next_id,
            enqueued_total,
            acked_total,
            redelivered_total,
        } = &part
        {
            let t = Topic {
                settings: settings.clone(),
                next_id: *next_id,
                enqueued_total: *enqueued_total,
                acked_total: *acked_total,
                redelivered_total: *redelivered_total,
                ..Default::default()
            };
            self.topics.insert(name.clone(), t);
            self.current = Some(name.clone());
            return;
        }
        if let Some(t) = self.current.as_ref().and_then(|n| self.topics.get_mut(n)) {
            t.absorb(part);
        }
    }

    pub fn held(&self) -> usize {
        self.topics
            .values()
            .map(|t| t.ready.len() + t.delayed.len() + t.in_flight.len())
            .sum()
    }
}

impl QueueTable {
    /// The topics routed by `base` (it and its dead letters), in name order.
    pub fn names_of(&self, base: &str) -> Vec<String> {
        self.topics
            .keys()
            .filter(|n| route_name(n) == base)
            .cloned()
            .collect()
    }

    /// Every route name with a topic here.
    pub fn route_names(&self) -> std::collections::BTreeSet<String> {
        self.topics
            .keys()
            .map(|n| route_name(n).to_string())
            .collect()
    }

    /// Parts `from..` of the topics routed by `base`, up to about
    /// `max_bytes`, and where the next page starts (`None`: that was all).
    /// Pages of a topic that does not change (a frozen one) fit together.
    pub fn export_page(
        &self,
        base: &str,
        from: usize,
        max_bytes: usize,
    ) -> (Vec<TopicPart>, Option<usize>) {
        let names = self.names_of(base);
        let mut all = names
            .iter()
            .filter_map(|n| self.topics.get(n).map(|t| t.parts(n)))
            .flatten()
            .skip(from);
        let mut page = Vec::new();
        let mut bytes = 0;
        for part in all.by_ref() {
            let part = part.to_part();
            bytes += part.size_hint();
            page.push(part);
            if bytes >= max_bytes {
                let more = all.next().is_some();
                let next = from + page.len();
                return (page, more.then_some(next));
            }
        }
        (page, None)
    }

    /// Removes the topics routed by `base`; returns how many there were.
    pub fn remove_route(&mut self, base: &str) -> usize {
        let names = self.names_of(base);
        for n in &names {
            self.topics.remove(n);
        }
        names.len()
    }

    /// Installs staged topics. A name that already holds messages here (a
    /// dead-letter topic that a release before this one kept under its
    /// own hash, meeting its topic's) takes the staged messages in after
    /// its own, with new ids: nothing is lost, receipts of the merged
    /// deliveries go stale and those messages are delivered again.
    pub fn install(&mut self, staged: BTreeMap<String, Topic>) {
        for (name, t) in staged {
            match self.topics.get_mut(&name) {
                Some(have) if !have.is_empty() => have.merge(t),
                _ => {
                    self.topics.insert(name, t);
                }
            }
        }
    }
}

impl Topic {
    fn merge(&mut self, other: Topic) {
        let in_flight = other.in_flight.into_values().map(|f| f.msg);
        for m in other.ready.into_values().chain(in_flight) {
            self.push_ready(m, false);
        }
        for ((at, _), mut m) in other.delayed {
            self.next_id += 1;
            m.id = self.next_id;
            self.delayed.insert((at, m.id), m);
        }
        for (d, v) in other.dedup {
            self.dedup.entry(d).or_insert(v);
        }
        self.enqueued_total += other.enqueued_total;
        self.acked_total += other.acked_total;
        self.redelivered_total += other.redelivered_total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(n: usize, delay_ms: u64) -> Vec<Incoming> {
        (0..n)
            .map(|i| Incoming {
                payload: format!("\"m{i}\""),
                delay_ms,
                dedup_id: Some(format!("d{i}-{delay_ms}")),
            })
            .collect()
    }

    #[test]
    fn a_topic_and_its_dead_letters_survive_paging_whole() {
        let mut q = QueueTable::default();
        q.configure(
            "t",
            &TopicSettings {
                max_attempts: Some(1),
                ..Default::default()
            },
        );
        q.enqueue("t", incoming(50, 0), 1_000).unwrap();
        q.enqueue("t", incoming(5, 60_000), 1_000).unwrap();
        q.enqueue("other", incoming(3, 0), 1_000).unwrap();
        let mut rev = 0;
        let f = q.consume("t", "c", 10, Some(100), 1_000, &mut rev);
        let receipts: Vec<String> = f[..2]
            .iter()
            .map(|f| receipt(f.msg.id, f.delivery))
            .collect();
        q.nack("t", &receipts, 0, 1_001).unwrap(); // dead-lettered: max 1 attempt
        assert_eq!(q.names_of("t"), vec!["t".to_string(), "t.dlq".to_string()]);

        let mut staging = Staging::default();
        let mut from = Some(0);
        let mut pages = 0;
        while let Some(f) = from {
            let (page, next) = q.export_page("t", f, 300);
            assert!(!page.is_empty());
            page.into_iter().for_each(|p| staging.absorb(p));
            from = next;
            pages += 1;
        }
        assert!(pages > 5, "small pages: {pages}");
        let mut target = QueueTable::default();
        target.install(staging.topics);
        assert_eq!(target.get("t"), q.get("t"));
        assert_eq!(target.get("t.dlq"), q.get("t.dlq"));
        assert!(target.get("other").is_none());
        // The receipts of the deliveries still in flight work in the target.
        let live = receipt(f[5].msg.id, f[5].delivery);
        assert_eq!(target.ack("t", &[live]).unwrap(), 1);
        assert_eq!(q.remove_route("t"), 2);
        assert!(q.get("t").is_none() && q.get("other").is_some());
    }

    #[test]
    fn installing_over_messages_merges_them() {
        let mut q = QueueTable::default();
        q.enqueue("t.dlq", incoming(2, 0), 1).unwrap();
        let mut other = QueueTable::default();
        other.enqueue("t.dlq", incoming(3, 0), 1).unwrap();
        other.enqueue("t.dlq", incoming(1, 50), 1).unwrap();
        let mut rev = 0;
        other.consume("t.dlq", "c", 1, None, 1, &mut rev);
        let mut staging = Staging::default();
        let (page, _) = other.export_page("t", 0, 1 << 20);
        page.into_iter().for_each(|p| staging.absorb(p));
        q.install(staging.topics);
        let s = q.stats("t.dlq", 1).unwrap();
        assert_eq!((s.ready, s.delayed, s.in_flight), (5, 1, 0), "{s:?}");
        assert_eq!(s.enqueued_total, 6);
        let mut rev = 0;
        let ids: Vec<u64> = q
            .consume("t.dlq", "c", 10, None, 2, &mut rev)
            .iter()
            .map(|f| f.msg.id)
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5], "theirs after ours, renumbered");
    }
}
