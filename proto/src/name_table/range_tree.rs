//! The service-range index of the name table: an AVL tree per service type, augmented with the
//! largest upper bound of every subtree, stored in one arena shared by all types.
//!
//! Why a hand-written tree: anycast needs "the *first* range that contains the instance", and
//! ranges may overlap. A `BTreeMap` keyed by the lower bound finds the candidates in order but
//! cannot skip the ones whose upper bound is too small, so a lookup could walk every range below
//! the instance. With the subtree maximum every whole subtree that cannot reach the instance is
//! skipped, which makes the first-overlap search O(log n) and an overlap enumeration
//! O(log n + matches). AVL (not a randomised treap) because its height bound is a worst case:
//! peers choose the ranges, and the recursive operations below must never see a degenerate tree.
//!
//! Order: by lower bound, and among equal lower bounds the *newer* range first. That is the
//! order in which the kernel's tree (which descends left on `lower <=`) lists ranges, so "first
//! matching range" picks the same range as a kernel would. Keys are unique because every range
//! gets a distinct creation number.

use core::ops::ControlFlow;

/// "No node": the empty subtree.
pub(super) const NIL: u32 = u32::MAX;

/// One service range and its payload.
#[derive(Debug, Default)]
pub(super) struct Node<T> {
    /// Lower bound of the range.
    pub(super) lower: u32,
    /// Upper bound of the range.
    pub(super) upper: u32,
    /// Creation number: ties on `lower` put the larger (newer) number first.
    order: u64,
    /// Largest `upper` in this subtree.
    max: u32,
    /// Height of this subtree (a leaf is 1).
    height: u8,
    left: u32,
    right: u32,
    /// What the name table keeps per range.
    pub(super) value: T,
}

/// The arena of all ranges of all service types; each type has its own root.
#[derive(Debug, Default)]
pub(super) struct Forest<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
}

impl<T: Default> Forest<T> {
    /// An empty arena.
    pub(super) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Allocates a detached node. `None` only when the arena has run out of u32 indices.
    pub(super) fn alloc(&mut self, lower: u32, upper: u32, order: u64, value: T) -> Option<u32> {
        let node = Node {
            lower,
            upper,
            order,
            max: upper,
            height: 1,
            left: NIL,
            right: NIL,
            value,
        };
        if let Some(idx) = self.free.pop() {
            self.nodes[idx as usize] = node;
            return Some(idx);
        }
        let idx = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NIL)?;
        self.nodes.push(node);
        Some(idx)
    }

    /// Returns a detached node's slot to the arena, handing back its payload.
    pub(super) fn free(&mut self, idx: u32) -> T {
        let node = &mut self.nodes[idx as usize];
        node.left = NIL;
        node.right = NIL;
        self.free.push(idx);
        core::mem::take(&mut node.value)
    }

    /// The node at `idx`.
    pub(super) fn get(&self, idx: u32) -> &Node<T> {
        &self.nodes[idx as usize]
    }

    /// The node at `idx`, mutably (the range bounds must not be changed through it).
    pub(super) fn get_mut(&mut self, idx: u32) -> &mut Node<T> {
        &mut self.nodes[idx as usize]
    }

    /// Links the detached node `n` into the tree rooted at `root`; returns the new root.
    pub(super) fn insert(&mut self, root: u32, n: u32) -> u32 {
        if root == NIL {
            return n;
        }
        if self.before(n, root) {
            let l = self.nodes[root as usize].left;
            let l = self.insert(l, n);
            self.nodes[root as usize].left = l;
        } else {
            let r = self.nodes[root as usize].right;
            let r = self.insert(r, n);
            self.nodes[root as usize].right = r;
        }
        self.rebalance(root)
    }

    /// Unlinks node `n` from the tree rooted at `root` (the node stays allocated); returns the
    /// new root. A node that is not in the tree leaves it unchanged.
    pub(super) fn remove(&mut self, root: u32, n: u32) -> u32 {
        if root == NIL {
            return NIL;
        }
        if root == n {
            let Node { left, right, .. } = self.nodes[n as usize];
            self.nodes[n as usize].left = NIL;
            self.nodes[n as usize].right = NIL;
            if left == NIL {
                return right;
            }
            if right == NIL {
                return left;
            }
            let (rest, min) = self.take_min(right);
            self.nodes[min as usize].left = left;
            self.nodes[min as usize].right = rest;
            return self.rebalance(min);
        }
        if self.before(n, root) {
            let l = self.nodes[root as usize].left;
            let l = self.remove(l, n);
            self.nodes[root as usize].left = l;
        } else {
            let r = self.nodes[root as usize].right;
            let r = self.remove(r, n);
            self.nodes[root as usize].right = r;
        }
        self.rebalance(root)
    }

    /// Calls `f` on every range of the tree that overlaps `[start, end]`, in tree order, until
    /// `f` breaks. Subtrees whose largest upper bound is below `start` are skipped, and the walk
    /// stops at the first range whose lower bound is above `end`. No allocation.
    pub(super) fn visit_overlaps<B>(
        &self,
        root: u32,
        start: u32,
        end: u32,
        f: &mut impl FnMut(u32, &Node<T>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.visit(root, start, end, f).map_continue(|_| ())
    }

    /// The walk behind [`Self::visit_overlaps`]. `Continue(false)` means "a range beyond `end`
    /// was seen: stop walking right".
    fn visit<B>(
        &self,
        t: u32,
        start: u32,
        end: u32,
        f: &mut impl FnMut(u32, &Node<T>) -> ControlFlow<B>,
    ) -> ControlFlow<B, bool> {
        if t == NIL {
            return ControlFlow::Continue(true);
        }
        let node = &self.nodes[t as usize];
        if node.max < start {
            return ControlFlow::Continue(true);
        }
        if !self.visit(node.left, start, end, f)? {
            return ControlFlow::Continue(false);
        }
        if node.lower > end {
            return ControlFlow::Continue(false);
        }
        if node.upper >= start {
            f(t, node)?;
        }
        self.visit(node.right, start, end, f)
    }

    /// Whether node `a` sorts before node `b`: lower bound ascending, newer first on ties.
    fn before(&self, a: u32, b: u32) -> bool {
        let (a, b) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        a.lower < b.lower || (a.lower == b.lower && a.order > b.order)
    }

    fn height(&self, t: u32) -> u8 {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].height
        }
    }

    fn max_of(&self, t: u32) -> Option<u32> {
        (t != NIL).then(|| self.nodes[t as usize].max)
    }

    /// Recomputes the height and subtree maximum of `t` from its children.
    fn update(&mut self, t: u32) {
        let Node {
            left, right, upper, ..
        } = self.nodes[t as usize];
        let height = 1 + self.height(left).max(self.height(right));
        let max = [self.max_of(left), self.max_of(right)]
            .into_iter()
            .flatten()
            .fold(upper, u32::max);
        let node = &mut self.nodes[t as usize];
        node.height = height;
        node.max = max;
    }

    fn rotate_right(&mut self, t: u32) -> u32 {
        let l = self.nodes[t as usize].left;
        self.nodes[t as usize].left = self.nodes[l as usize].right;
        self.nodes[l as usize].right = t;
        self.update(t);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, t: u32) -> u32 {
        let r = self.nodes[t as usize].right;
        self.nodes[t as usize].right = self.nodes[r as usize].left;
        self.nodes[r as usize].left = t;
        self.update(t);
        self.update(r);
        r
    }

    /// Restores the AVL balance at `t` (children already balanced); returns the subtree root.
    fn rebalance(&mut self, t: u32) -> u32 {
        self.update(t);
        let Node { left, right, .. } = self.nodes[t as usize];
        let (hl, hr) = (self.height(left), self.height(right));
        if hl > hr + 1 {
            let Node {
                left: ll,
                right: lr,
                ..
            } = self.nodes[left as usize];
            if self.height(ll) < self.height(lr) {
                let nl = self.rotate_left(left);
                self.nodes[t as usize].left = nl;
            }
            return self.rotate_right(t);
        }
        if hr > hl + 1 {
            let Node {
                left: rl,
                right: rr,
                ..
            } = self.nodes[right as usize];
            if self.height(rr) < self.height(rl) {
                let nr = self.rotate_right(right);
                self.nodes[t as usize].right = nr;
            }
            return self.rotate_left(t);
        }
        t
    }

    /// Detaches the first node of the non-empty subtree `t`: (new subtree root, detached node).
    fn take_min(&mut self, t: u32) -> (u32, u32) {
        let Node { left, right, .. } = self.nodes[t as usize];
        if left == NIL {
            self.nodes[t as usize].right = NIL;
            return (right, t);
        }
        let (rest, min) = self.take_min(left);
        self.nodes[t as usize].left = rest;
        (self.rebalance(t), min)
    }

    /// Checks order, balance, heights and subtree maxima; returns the number of nodes.
    #[cfg(test)]
    pub(super) fn check(&self, root: u32) -> usize {
        let mut prev: Option<u32> = None;
        let mut count = 0;
        self.check_node(root, &mut prev, &mut count);
        count
    }

    #[cfg(test)]
    fn check_node(&self, t: u32, prev: &mut Option<u32>, count: &mut usize) -> (u8, Option<u32>) {
        if t == NIL {
            return (0, None);
        }
        let node = &self.nodes[t as usize];
        let (hl, ml) = self.check_node(node.left, prev, count);
        if let Some(p) = *prev {
            assert!(self.before(p, t), "tree order broken at {t}");
        }
        *prev = Some(t);
        *count += 1;
        let (hr, mr) = self.check_node(node.right, prev, count);
        assert!(hl.abs_diff(hr) <= 1, "unbalanced at {t}");
        assert_eq!(node.height, 1 + hl.max(hr), "height at {t}");
        let max = [ml, mr].into_iter().flatten().fold(node.upper, u32::max);
        assert_eq!(node.max, max, "max at {t}");
        (node.height, Some(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tree from (lower, upper) pairs in insertion order.
    fn build(ranges: &[(u32, u32)]) -> (Forest<()>, u32, Vec<u32>) {
        let mut f = Forest::new();
        let mut root = NIL;
        let mut ids = Vec::new();
        for (i, &(lo, up)) in ranges.iter().enumerate() {
            let n = f.alloc(lo, up, i as u64, ()).expect("index");
            root = f.insert(root, n);
            ids.push(n);
        }
        (f, root, ids)
    }

    fn overlaps(f: &Forest<()>, root: u32, start: u32, end: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let _ = f.visit_overlaps::<()>(root, start, end, &mut |_, n| {
            out.push((n.lower, n.upper));
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn sequential_inserts_stay_balanced() {
        let ranges: Vec<(u32, u32)> = (0..1000).map(|i| (i, i)).collect();
        let (f, root, _) = build(&ranges);
        assert_eq!(f.check(root), 1000);
        assert!(f.get(root).height <= 15);
    }

    #[test]
    fn overlap_walk_is_in_order_and_complete() {
        let (f, root, _) = build(&[(10, 20), (0, 5), (3, 30), (25, 25), (40, 50), (3, 3)]);
        f.check(root);
        // Equal lower bounds: the newer range (3, 3) comes before (3, 30).
        assert_eq!(overlaps(&f, root, 4, 12), vec![(0, 5), (3, 30), (10, 20)]);
        assert_eq!(overlaps(&f, root, 3, 3), vec![(0, 5), (3, 3), (3, 30)]);
        assert_eq!(overlaps(&f, root, 31, 39), Vec::<(u32, u32)>::new());
        assert_eq!(overlaps(&f, root, 0, u32::MAX).len(), 6);
    }

    #[test]
    fn remove_keeps_invariants_and_reuses_slots() {
        let ranges: Vec<(u32, u32)> = (0..200).map(|i| (i % 17, i % 17 + i % 5)).collect();
        let (mut f, mut root, ids) = build(&ranges);
        for (k, &n) in ids.iter().enumerate().filter(|(k, _)| k % 3 != 0) {
            root = f.remove(root, n);
            f.free(n);
            assert_eq!(f.check(root), 200 - (k - k / 3));
        }
        let n = f.alloc(7, 9, 1000, ()).expect("slot");
        assert!(ids.contains(&n), "freed slot reused");
        root = f.insert(root, n);
        f.check(root);
    }
}
