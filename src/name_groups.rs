//! Grouping the names of an ordered list of (name, value) pairs: each name once, in the
//! order names first appear, with the positions of its values in order.
//!
//! Owns: the grouping, exact or ignoring ASCII letter case, in one pass over the names and
//! linear in their number (names seen so far are scanned while there are few, hashed
//! beyond). Must not: copy names or values, or know what the pairs are (headers, query
//! parameters).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Up to this many names, a name is looked up among the names seen so far (cheaper than
/// hashing it); beyond, a hash map keeps the grouping linear.
const SCAN_NAMES: usize = 32;

/// No further value of the name.
const END: usize = usize::MAX;

/// A name as a hash key, equal to another when they match under the grouping's rule.
#[derive(Clone, Copy)]
struct Key<'a> {
    name: &'a str,
    fold_case: bool,
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        same(self.name, other.name, self.fold_case)
    }
}

impl Eq for Key<'_> {}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.name.bytes() {
            state.write_u8(if self.fold_case {
                b.to_ascii_lowercase()
            } else {
                b
            });
        }
        state.write_u8(0xff);
    }
}

fn same(a: &str, b: &str, fold_case: bool) -> bool {
    if fold_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// The names of a list of pairs, grouped.
pub struct NameGroups<'a> {
    /// Each name as first written, with the position of its first and last value.
    names: Vec<(&'a str, usize, usize)>,
    /// `next[i]`: the position of the value after pair `i`'s of the same name.
    next: Vec<usize>,
    fold_case: bool,
    /// Name to group, once there are more names than a scan is cheap for.
    index: Option<HashMap<Key<'a>, usize>>,
}

impl<'a> NameGroups<'a> {
    /// Groups `names` (one per pair, in order); `fold_case`: names that differ only in
    /// ASCII letter case are one name.
    pub fn of<I>(names: I, fold_case: bool) -> Self
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: ExactSizeIterator,
    {
        let names = names.into_iter();
        let count = names.len();
        let mut groups = NameGroups {
            names: Vec::with_capacity(count),
            next: vec![END; count],
            fold_case,
            index: (count > SCAN_NAMES).then(|| HashMap::with_capacity(count)),
        };
        for (i, name) in names.enumerate() {
            match groups.find(name).and_then(|g| groups.names.get_mut(g)) {
                Some((_, _, last)) => {
                    if let Some(link) = groups.next.get_mut(*last) {
                        *link = i;
                    }
                    *last = i;
                }
                None => {
                    let g = groups.names.len();
                    if let Some(index) = &mut groups.index {
                        index.insert(Key { name, fold_case }, g);
                    }
                    groups.names.push((name, i, i));
                }
            }
        }
        groups
    }

    /// The group of `name`, if it is one of the names.
    fn find(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index
                .get(&Key {
                    name,
                    fold_case: self.fold_case,
                })
                .copied(),
            None => self
                .names
                .iter()
                .position(|(n, _, _)| same(n, name, self.fold_case)),
        }
    }

    /// Each name's group, in the order names first appear.
    pub fn groups(&self) -> impl Iterator<Item = Group<'a>> + '_ {
        self.names
            .iter()
            .map(|&(name, first, last)| Group { name, first, last })
    }

    /// The group of `name`, if it is one of the names.
    pub fn group(&self, name: &str) -> Option<Group<'a>> {
        let &(name, first, last) = self.names.get(self.find(name)?)?;
        Some(Group { name, first, last })
    }

    /// The positions of a group's values, in order.
    pub fn positions(&self, group: Group<'_>) -> impl Iterator<Item = usize> + Clone + '_ {
        std::iter::successors(Some(group.first), |&i| {
            self.next.get(i).copied().filter(|&n| n != END)
        })
    }
}

/// One name and where its values are.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// The name as first written.
    pub name: &'a str,
    first: usize,
    /// The position of its last value.
    pub last: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of looking names up (a scan for few, a hash map for many) give what a plain
    /// reading of the rule gives, exact and ignoring letter case.
    #[test]
    fn groups_match_the_rule_for_few_and_many_names() {
        for fold_case in [false, true] {
            for (count, distinct) in [
                (0, 1),
                (1, 1),
                (5, 2),
                (32, 32),
                (32, 3),
                (33, 5),
                (200, 7),
                (200, 200),
            ] {
                let names: Vec<String> = (0..count)
                    .map(|i| {
                        let n = format!("n{}", (i * 7) % distinct);
                        if i % 2 == 0 {
                            n.to_uppercase()
                        } else {
                            n
                        }
                    })
                    .collect();
                let groups = NameGroups::of(names.iter().map(String::as_str), fold_case);
                let same = |a: &str, b: &str| same(a, b, fold_case);
                let mut want: Vec<&str> = Vec::new();
                for n in &names {
                    if !want.iter().any(|w| same(w, n)) {
                        want.push(n);
                    }
                }
                let got: Vec<&str> = groups.groups().map(|g| g.name).collect();
                assert_eq!(got, want, "{count}/{distinct}/{fold_case}");
                for g in groups.groups() {
                    let at: Vec<usize> = (0..names.len())
                        .filter(|&i| same(&names[i], g.name))
                        .collect();
                    assert_eq!(groups.positions(g).collect::<Vec<_>>(), at, "{}", g.name);
                    assert_eq!(at.last(), Some(&g.last), "{}", g.name);
                    let other_case = g.name.to_lowercase();
                    assert_eq!(
                        groups.group(&other_case).map(|h| h.name),
                        want.iter().copied().find(|w| same(w, &other_case)),
                        "{}",
                        g.name
                    );
                }
                assert!(groups.group("absent").is_none());
            }
        }
    }
}
