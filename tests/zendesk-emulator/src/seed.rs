//! The seeded account: deterministic for a seed and a clock reading.
//!
//! `scale` tickets over the 20 days before an hour ago (so all of them are past the
//! export's hold-back), one or more comments each (the first is the description, as on
//! Zendesk), about a quarter as many users as tickets. Shapes a connector must survive:
//! about one ticket in ten shares its `generated_timestamp` with another (a page boundary
//! can fall inside such a run), one in ten had a system update
//! (`generated_timestamp` later than `updated_at`), one in fifty is deleted.

use crate::data::{Comment, Status, Store, Ticket, User};

const SPAN_S: i64 = 20 * 86_400;
const STATUSES: &[Status] = &[Status::New, Status::Open, Status::Pending, Status::Solved];
const PRIORITIES: &[Option<&str>] = &[None, Some("low"), Some("normal"), Some("high")];

/// The agent the API token and OAuth grants act as.
pub const ADMIN_EMAIL: &str = "admin@sluice-emulator.example";

/// splitmix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A store with the admin user, `scale` tickets and their users and comments, with
/// timestamps ending an hour before `now`.
pub fn account(scale: usize, seed: u64, now: i64) -> Store {
    let mut rng = Rng(seed);
    let mut store = Store::new();
    let end = now - 3_600;
    let start = end - SPAN_S;
    let admin = add_user(&mut store, "Integration Admin", ADMIN_EMAIL, "admin", start);
    let user_count = (scale / 4).max(5);
    let mut people = vec![admin];
    for n in 0..user_count {
        let role = if n % 5 == 0 { "agent" } else { "end-user" };
        let created = start + rng.below(SPAN_S as u64 / 2) as i64;
        let id = add_user(
            &mut store,
            &format!("Customer {n}"),
            &format!("customer{n}@example.com"),
            role,
            created,
        );
        people.push(id);
    }
    let mut previous_generated = start;
    for n in 0..scale {
        let created = start + rng.below(SPAN_S as u64 - 7_200) as i64;
        let requester = *rng.pick(&people[1..]);
        let id = store.next_ticket_id();
        let comment_count = 1 + rng.below(3);
        let mut last = created;
        for c in 0..comment_count {
            let at = if c == 0 {
                created
            } else {
                last + 1 + rng.below(3_000) as i64
            };
            last = at;
            let author = if c % 2 == 0 { requester } else { admin };
            let comment_id = store.next_comment_id();
            store.comments.insert(
                (id, comment_id),
                Comment {
                    id: comment_id,
                    ticket_id: id,
                    author_id: author,
                    body: format!("Message {c} on ticket {id}: printer {n} is on fire."),
                    public: c == 0 || !rng.one_in(4),
                    created_at: at,
                },
            );
        }
        let updated = last.min(end);
        let mut generated = if rng.one_in(10) {
            updated + 1 + rng.below(600) as i64
        } else {
            updated
        };
        if rng.one_in(5) && previous_generated >= generated {
            generated = previous_generated;
        }
        generated = generated.min(end);
        previous_generated = generated;
        let description = store
            .comments_of(id)
            .next()
            .map(|c| c.body.clone())
            .unwrap_or_default();
        store.put_ticket(Ticket {
            id,
            subject: format!("Printer {n} is on fire"),
            description,
            status: if rng.one_in(50) {
                Status::Deleted
            } else {
                *rng.pick(STATUSES)
            },
            priority: rng.pick(PRIORITIES).map(str::to_string),
            requester_id: requester,
            assignee_id: rng.one_in(3).then_some(admin),
            tags: vec![format!("seed{}", n % 7)],
            created_at: created,
            updated_at: updated,
            generated_timestamp: generated,
        });
    }
    store
}

fn add_user(store: &mut Store, name: &str, email: &str, role: &str, at: i64) -> u64 {
    let id = store.next_user_id();
    store.put_user(User {
        id,
        name: name.to_string(),
        email: email.to_string(),
        role: role.to_string(),
        active: true,
        created_at: at,
        updated_at: at,
    });
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ticket_json;

    fn tickets(store: &Store) -> Vec<serde_json::Value> {
        store
            .tickets
            .values()
            .map(|t| ticket_json("o", t))
            .collect()
    }

    #[test]
    fn the_same_seed_and_clock_give_the_same_account() {
        let now = 1_800_000_000;
        assert_eq!(tickets(&account(50, 7, now)), tickets(&account(50, 7, now)));
        assert_ne!(tickets(&account(50, 7, now)), tickets(&account(50, 8, now)));
    }

    #[test]
    fn the_seed_has_the_shapes_a_connector_must_survive() {
        let now = 1_800_000_000;
        let store = account(300, 42, now);
        let all: Vec<&Ticket> = store.tickets.values().collect();
        assert!(all.iter().any(|t| t.status == Status::Deleted));
        assert!(all.iter().any(|t| t.generated_timestamp > t.updated_at));
        let mut stamps: Vec<i64> = all.iter().map(|t| t.generated_timestamp).collect();
        stamps.sort();
        assert!(stamps.windows(2).any(|w| w[0] == w[1]), "shared seconds");
        assert!(
            stamps.iter().all(|s| *s <= now - 3_600),
            "all past the hold-back"
        );
        for t in &all {
            let first = store.comments_of(t.id).next().expect("a first comment");
            assert_eq!(first.body, t.description);
            assert!(
                store
                    .comments_of(t.id)
                    .all(|c| c.created_at <= t.updated_at)
            );
        }
    }
}
