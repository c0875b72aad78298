//! How many distinct users an error group has hit, in a form that is
//! stored with the group, so a user seen before a restart is not counted
//! again after it, and two merged groups count a shared user once.
//!
//! The sketch holds the users' 64-bit hashes exactly while there are few
//! (most groups: the count is exact), then turns into a HyperLogLog of
//! 4096 registers (4 KiB, about 1.6 % standard error): a bug that hits
//! millions of users must not cost memory per user.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use xxhash_rust::xxh3::xxh3_64;

/// Register index bits: 2^12 registers.
const P: u32 = 12;
const M: usize = 1 << P;
/// Exact hashes kept before switching to registers (as many bytes as the
/// registers take).
const SPARSE_MAX: usize = M / 8;

const KIND_SPARSE: u8 = 1;
const KIND_DENSE: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSketch {
    /// Sorted, distinct user hashes.
    Sparse(Vec<u64>),
    /// HyperLogLog registers.
    Dense(Registers),
}

/// HyperLogLog registers with their harmonic sum kept as they change, so
/// counting after each new user costs no pass over the registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registers {
    regs: Box<[u8]>,
    /// Σ 2^(64 - register), exact.
    sum: u128,
    zeros: usize,
}

impl Registers {
    fn new(regs: Box<[u8]>) -> Registers {
        let sum = regs.iter().map(|r| 1u128 << (64 - u32::from(*r))).sum();
        let zeros = regs.iter().filter(|r| **r == 0).count();
        Registers { regs, sum, zeros }
    }

    fn raise(&mut self, i: usize, rank: u8) -> bool {
        let old = self.regs[i];
        if old >= rank {
            return false;
        }
        self.sum -= 1u128 << (64 - u32::from(old));
        self.sum += 1u128 << (64 - u32::from(rank));
        if old == 0 {
            self.zeros -= 1;
        }
        self.regs[i] = rank;
        true
    }
}

impl Default for UserSketch {
    fn default() -> Self {
        UserSketch::Sparse(Vec::new())
    }
}

/// The hash a user id is counted by.
pub fn user_hash(user: &str) -> u64 {
    xxh3_64(user.as_bytes())
}

fn register(hash: u64) -> (usize, u8) {
    let index = (hash >> (64 - P)) as usize;
    // The remaining bits with a stop bit, so the rank is at most 64 - P + 1.
    let rest = (hash << P) | (1 << (P - 1));
    (index, rest.leading_zeros() as u8 + 1)
}

impl UserSketch {
    pub fn is_empty(&self) -> bool {
        matches!(self, UserSketch::Sparse(v) if v.is_empty())
    }

    /// Adds a user; true when the sketch changed (a user not seen before,
    /// or one that moved a register).
    pub fn insert(&mut self, hash: u64) -> bool {
        match self {
            UserSketch::Sparse(v) => match v.binary_search(&hash) {
                Ok(_) => false,
                Err(at) => {
                    v.insert(at, hash);
                    if v.len() > SPARSE_MAX {
                        *self = UserSketch::dense_from(v);
                    }
                    true
                }
            },
            UserSketch::Dense(r) => {
                let (i, rank) = register(hash);
                r.raise(i, rank)
            }
        }
    }

    fn dense_from(hashes: &[u64]) -> UserSketch {
        let mut regs = vec![0u8; M].into_boxed_slice();
        for h in hashes {
            let (i, rank) = register(*h);
            regs[i] = regs[i].max(rank);
        }
        UserSketch::Dense(Registers::new(regs))
    }

    /// Distinct users: exact while sparse, estimated after.
    pub fn count(&self) -> u64 {
        match self {
            UserSketch::Sparse(v) => v.len() as u64,
            UserSketch::Dense(r) => {
                let m = M as f64;
                let alpha = 0.7213 / (1.0 + 1.079 / m);
                let sum = r.sum as f64 / 2f64.powi(64);
                let raw = alpha * m * m / sum;
                let estimate = if raw <= 2.5 * m && r.zeros > 0 {
                    // Few users for this many registers: linear counting.
                    m * (m / r.zeros as f64).ln()
                } else {
                    raw
                };
                estimate.round() as u64
            }
        }
    }

    /// The users of both sketches.
    pub fn union(&self, other: &UserSketch) -> UserSketch {
        match (self, other) {
            (UserSketch::Sparse(a), UserSketch::Sparse(b)) => {
                let mut all: Vec<u64> = a.iter().chain(b).copied().collect();
                all.sort_unstable();
                all.dedup();
                if all.len() > SPARSE_MAX {
                    UserSketch::dense_from(&all)
                } else {
                    UserSketch::Sparse(all)
                }
            }
            (UserSketch::Dense(a), UserSketch::Dense(b)) => UserSketch::Dense(Registers::new(
                a.regs
                    .iter()
                    .zip(b.regs.iter())
                    .map(|(x, y)| *x.max(y))
                    .collect(),
            )),
            (UserSketch::Dense(d), UserSketch::Sparse(s))
            | (UserSketch::Sparse(s), UserSketch::Dense(d)) => {
                let mut out = UserSketch::Dense(d.clone());
                for h in s {
                    out.insert(*h);
                }
                out
            }
        }
    }

    /// The stored form: a kind byte and the hashes (little endian) or the
    /// registers, base64.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::new();
        match self {
            UserSketch::Sparse(v) => {
                bytes.reserve(1 + 8 * v.len());
                bytes.push(KIND_SPARSE);
                for h in v {
                    bytes.extend_from_slice(&h.to_le_bytes());
                }
            }
            UserSketch::Dense(r) => {
                bytes.reserve(1 + r.regs.len());
                bytes.push(KIND_DENSE);
                bytes.extend_from_slice(&r.regs);
            }
        }
        STANDARD_NO_PAD.encode(bytes)
    }

    /// Reads [`UserSketch::encode`]'s form; `None` when it is not one.
    pub fn decode(text: &str) -> Option<UserSketch> {
        let bytes = STANDARD_NO_PAD.decode(text.trim()).ok()?;
        let (kind, body) = bytes.split_first()?;
        match *kind {
            KIND_SPARSE if body.len() % 8 == 0 => {
                let mut v: Vec<u64> = body
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect();
                v.sort_unstable();
                v.dedup();
                if v.len() > SPARSE_MAX {
                    return Some(UserSketch::dense_from(&v));
                }
                Some(UserSketch::Sparse(v))
            }
            // A register holds a rank of at most 64 - P + 1.
            KIND_DENSE if body.len() == M && body.iter().all(|r| u32::from(*r) <= 65 - P) => {
                Some(UserSketch::Dense(Registers::new(body.into())))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(range: std::ops::Range<u32>) -> impl Iterator<Item = u64> {
        range.map(|i| user_hash(&format!("user-{i}")))
    }

    #[test]
    fn exact_while_small_and_a_user_counts_once() {
        let mut s = UserSketch::default();
        assert!(s.is_empty());
        for h in users(0..300) {
            assert!(s.insert(h));
        }
        for h in users(0..300) {
            assert!(!s.insert(h), "seen before");
        }
        assert_eq!(s.count(), 300);
        let back = UserSketch::decode(&s.encode()).expect("decodes");
        assert_eq!(back, s);
    }

    #[test]
    fn large_counts_are_estimated_within_a_few_percent() {
        let mut s = UserSketch::default();
        for h in users(0..200_000) {
            s.insert(h);
        }
        assert!(matches!(s, UserSketch::Dense(_)));
        let n = s.count() as f64;
        assert!((n / 200_000.0 - 1.0).abs() < 0.05, "{n}");
        // Just past the switch the estimate is still close.
        let mut t = UserSketch::default();
        for h in users(0..600) {
            t.insert(h);
        }
        let n = t.count() as f64;
        assert!((n / 600.0 - 1.0).abs() < 0.03, "{n}");
        let back = UserSketch::decode(&s.encode()).expect("decodes");
        assert_eq!(back.count(), s.count());
    }

    #[test]
    fn union_counts_shared_users_once() {
        let mut a = UserSketch::default();
        let mut b = UserSketch::default();
        users(0..100).for_each(|h| {
            a.insert(h);
        });
        users(50..150).for_each(|h| {
            b.insert(h);
        });
        assert_eq!(a.union(&b).count(), 150);
        let mut big = UserSketch::default();
        users(0..5000).for_each(|h| {
            big.insert(h);
        });
        let n = big.union(&a).count() as f64;
        assert!((n / 5000.0 - 1.0).abs() < 0.05, "{n}");
        assert_eq!(a.union(&big), big.union(&a));
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(UserSketch::decode("!!"), None);
        assert_eq!(UserSketch::decode(""), None);
        assert_eq!(
            UserSketch::decode(&STANDARD_NO_PAD.encode([1u8, 2, 3])),
            None
        );
        assert_eq!(UserSketch::decode(&STANDARD_NO_PAD.encode([9u8])), None);
    }
}
