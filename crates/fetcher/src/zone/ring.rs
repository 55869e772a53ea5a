//! The zone ring: which agent of a zone owns which object range.
//!
//! Rendezvous (highest-random-weight) hashing: every member scores every key and the
//! highest score owns it. With a good mixing function each member owns close to
//! `1/n` of the keys, and a membership change moves only the keys of the member that
//! left (or the share the new member takes) — nothing moves between members that
//! stayed. Hashes are computed with a fixed function (FNV-1a folded through
//! murmur3's finalizer), never a per-process seeded hasher, so every agent of the
//! zone, whatever its build, computes the same owner for the same key.

/// One agent of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The agent's registry id.
    pub agent_id: String,
    /// `host:port` of its peer (zone cache) service.
    pub peer_address: String,
}

/// A rendezvous-hash ring over a zone's proxy-consume agents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ring {
    // (member, hash of its id), ordered by agent id.
    members: Vec<(Member, u64)>,
}

impl Ring {
    /// A ring over `members` (duplicates by id are dropped).
    pub fn new(members: impl IntoIterator<Item = Member>) -> Self {
        let mut members: Vec<(Member, u64)> = members
            .into_iter()
            .map(|m| {
                let h = fnv1a(m.agent_id.as_bytes());
                (m, h)
            })
            .collect();
        members.sort_by(|a, b| a.0.agent_id.cmp(&b.0.agent_id));
        members.dedup_by(|a, b| a.0.agent_id == b.0.agent_id);
        Self { members }
    }

    /// The member owning `key`, `None` for an empty ring.
    pub fn owner(&self, key: &[u8]) -> Option<&Member> {
        let k = fnv1a(key);
        self.members
            .iter()
            .max_by_key(|(m, h)| (score(*h, k), &m.agent_id))
            .map(|(m, _)| m)
    }

    /// Members, ordered by agent id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().map(|(m, _)| m)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

fn score(member: u64, key: u64) -> u64 {
    fmix64(member ^ fmix64(key))
}

/// 64-bit FNV-1a.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// murmur3's 64-bit finalizer: every input bit affects every output bit.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn member(i: usize) -> Member {
        Member {
            agent_id: format!("agent-{i}-01JZ{i:04}"),
            peer_address: format!("127.0.0.1:{}", 9000 + i),
        }
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("team/batches/01K{i:020}#{}-{}", i * 4096, i * 4096 + 4000))
            .collect()
    }

    fn owners(ring: &Ring, keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|k| ring.owner(k.as_bytes()).expect("owner").agent_id.clone())
            .collect()
    }

    #[test]
    fn empty_ring_has_no_owner_and_one_member_owns_everything() {
        assert_eq!(Ring::default().owner(b"x"), None);
        let ring = Ring::new([member(1)]);
        assert!(
            keys(100)
                .iter()
                .all(|k| ring.owner(k.as_bytes()) == Some(&member(1)))
        );
    }

    #[test]
    fn keys_spread_evenly() {
        for n in [3usize, 5, 8] {
            let ring = Ring::new((0..n).map(member));
            let keys = keys(30_000);
            let mut counts: HashMap<String, usize> = HashMap::new();
            for owner in owners(&ring, &keys) {
                *counts.entry(owner).or_default() += 1;
            }
            assert_eq!(counts.len(), n, "every member owns something");
            let fair = keys.len() as f64 / n as f64;
            for (id, count) in counts {
                let ratio = count as f64 / fair;
                assert!(
                    (0.9..=1.1).contains(&ratio),
                    "{n} members: {id} owns {count} keys, {ratio:.3} of a fair share"
                );
            }
        }
    }

    #[test]
    fn membership_changes_move_only_the_changed_share() {
        let keys = keys(20_000);
        let three = Ring::new((0..3).map(member));
        let four = Ring::new((0..4).map(member));
        let before = owners(&three, &keys);
        let after = owners(&four, &keys);
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(a, &member(3).agent_id, "a key moved between old members");
                moved += 1;
            }
        }
        let share = moved as f64 / keys.len() as f64;
        assert!(
            (0.2..=0.3).contains(&share),
            "the new member took {share:.3} of the keys, about 1/4 expected"
        );

        // Removing a member moves only the keys it owned.
        let without_1 = Ring::new([member(0), member(2), member(3)]);
        for (b, a) in after.iter().zip(owners(&without_1, &keys)) {
            if *b != member(1).agent_id {
                assert_eq!(b, &a, "a key not owned by the leaver moved");
            }
        }
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let a = Ring::new([member(2), member(0), member(1), member(0)]);
        let b = Ring::new([member(0), member(1), member(2)]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
        let keys = keys(1000);
        assert_eq!(owners(&a, &keys), owners(&b, &keys));
    }

    #[test]
    fn hashes_are_fixed() {
        // The owner of a key must be the same on every agent and every build.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fmix64(0), 0);
    }
}
