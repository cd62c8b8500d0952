//! The node's name table (spec §7): every service binding this node knows, its own and those
//! learned from peers, and the lookups that turn a service address into sockets.
//!
//! Read spec §7 (and §8 for the topology-server hooks) first. The semantics follow the Linux
//! kernel's `name_table.c`:
//!
//! * Bindings are grouped by service type, then by **exact** service range `(lower, upper)`.
//!   Different ranges of one type may overlap freely; publications live under their exact range.
//! * A binding is identified by (type, lower, upper, node, key); the port is payload. A second
//!   binding with the same identity is refused as a duplicate, whatever its port (the kernel's
//!   duplicate check compares the key and the node only).
//! * Each range keeps two round-robin lists, like the kernel's `all_publ` and `local_publ`: a new
//!   publication goes to the **head** (it is the next one picked), a picked one moves to the tail.
//! * Node address 0 in a binding means "this node", as in the kernel (`in_own_node`).
//!
//! # Structure and cost
//!
//! * `ranges`: `BTreeMap<(type, lower, upper), slot>` — exact-range lookups and the stable
//!   iteration order (type, lower, upper, node, key).
//! * `forest`: per type, an AVL interval tree of the ranges (see `range_tree`) — the first range
//!   containing an instance in O(log n), overlap enumeration in O(log n + matches).
//! * `by_node` / `by_port`: insertion-ordered indexes for node loss, socket close and the bulk.
//!
//! Lookups (`lookup_anycast`, `multicast_local_ports_into`) do not allocate.
//!
//! # Events
//!
//! Every successful change returns a [`TableChange`]: the binding and whether its exact range
//! went 0→1 (insert) or 1→0 (removal), which is what TIPC_SUB_SERVICE subscribers are told
//! about (spec §8.4). [`matches_subscription`], [`NameTable::count_exact_range`] and
//! [`NameTable::subscription_snapshot`] cover the rest of the topology server's needs.

mod range_tree;

use core::fmt;
use core::ops::ControlFlow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use self::range_tree::{Forest, NIL};
use crate::wire::name_distr::Publication;

/// TIPC_MAX_PUBL: the kernel refuses a local binding once the node holds this many. The node's
/// own `{0, addr, addr}` binding counts, so 65,534 remain for users (spec §7.2).
pub const TIPC_MAX_PUBL: usize = 65_535;

/// Binding scope (spec §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// TIPC_CLUSTER_SCOPE (2): distributed to every node.
    Cluster,
    /// TIPC_NODE_SCOPE (3): this node only, never distributed.
    Node,
}

impl Scope {
    /// The scope of a `bind()` call: 3 is node scope; 0, 1 (deprecated zone) and every other
    /// non-negative value map to cluster scope, as the kernel does. A negative scope asks for an
    /// unbind, so it is no scope at all: `None`.
    pub const fn from_raw(raw: i8) -> Option<Self> {
        match raw {
            i8::MIN..=-1 => None,
            3 => Some(Self::Node),
            _ => Some(Self::Cluster),
        }
    }

    /// The lookup scope carried in a data header (`w1[19:20]`): 3 is node scope, anything else
    /// cluster scope (the kernel only tests for node scope).
    pub const fn from_lookup_scope(bits: u8) -> Self {
        if bits == 3 { Self::Node } else { Self::Cluster }
    }

    /// The UAPI value: 2 for cluster, 3 for node.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Cluster => 2,
            Self::Node => 3,
        }
    }
}

/// One service binding: socket `port` on `node` bound to `{service_type, lower..=upper}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Service type.
    pub service_type: u32,
    /// Lower bound of the bound range.
    pub lower: u32,
    /// Upper bound of the bound range (≥ `lower`).
    pub upper: u32,
    /// Port (socket reference) of the binder. 0 for the node's own `{0, addr, addr}`.
    pub port: u32,
    /// Node of the binder.
    pub node: u32,
    /// Publication key, unique per (node, range); the kernel uses port + pub_count + 1.
    pub key: u32,
    /// Scope. Bindings learned from peers are always cluster scope.
    pub scope: Scope,
}

impl Binding {
    /// The 20-byte distribution item for this binding (spec §7.1; the node is not in it).
    pub const fn item(&self) -> Publication {
        Publication {
            service_type: self.service_type,
            lower: self.lower,
            upper: self.upper,
            port: self.port,
            key: self.key,
        }
    }

    /// The binding a peer's item stands for: published by `node`, cluster scope.
    pub const fn from_item(item: &Publication, node: u32) -> Self {
        Self {
            service_type: item.service_type,
            lower: item.lower,
            upper: item.upper,
            port: item.port,
            node,
            key: item.key,
            scope: Scope::Cluster,
        }
    }

    /// Whether the binding's range overlaps `[lower, upper]` for the same service type.
    pub const fn overlaps(&self, service_type: u32, lower: u32, upper: u32) -> bool {
        self.service_type == service_type && self.lower <= upper && self.upper >= lower
    }
}

/// Why [`NameTable::insert`] refused a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// `lower > upper`: such a range could never be matched or withdrawn.
    InvalidRange {
        /// The lower bound given.
        lower: u32,
        /// The upper bound given.
        upper: u32,
    },
    /// A binding with the same type, range, node and key exists ("duplicate binding").
    Duplicate,
    /// The node already holds [`TIPC_MAX_PUBL`] bindings. For the own node this is the kernel's
    /// bind limit; for a peer it means the peer is sending more than any kernel could publish.
    LimitReached,
    /// A node-scope binding claimed to belong to another node; node scope is never distributed.
    RemoteNodeScope,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidRange { lower, upper } => {
                write!(f, "illegal service range: lower {lower} > upper {upper}")
            }
            Self::Duplicate => f.write_str("duplicate binding"),
            Self::LimitReached => write!(f, "binding limit of {TIPC_MAX_PUBL} per node reached"),
            Self::RemoteNodeScope => f.write_str("node-scope binding from another node"),
        }
    }
}

impl std::error::Error for BindError {}

/// A successful change of the table, as the topology server needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableChange {
    /// The binding added or removed (node 0 already replaced by the own address).
    pub binding: Binding,
    /// Insert: the exact range had no binding before (0→1). Removal: it has none left (1→0).
    /// TIPC_SUB_SERVICE subscribers hear only of changes with this flag (spec §8.4).
    pub range_edge: bool,
}

/// Result of an anycast lookup (spec §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnycastResult {
    /// A socket on this node.
    Local(u32),
    /// A socket on another node.
    Remote {
        /// The socket's port.
        port: u32,
        /// Its node.
        node: u32,
    },
    /// The lookup domain is another node: send the message there unresolved (destination port
    /// 0), to be looked up by that node.
    Forward {
        /// The domain, i.e. the destination node.
        node: u32,
    },
    /// No binding matches: the send fails with EHOSTUNREACH (or the message is rejected with
    /// TIPC_ERR_NO_NAME after a secondary lookup).
    NoMatch,
}

/// Whether a binding is reported to a topology subscription for `{sub_type, sub_lower,
/// sub_upper}`: same type and overlapping ranges (spec §8.4). Scope filters (the internal
/// TIPC_SUB_NODE_SCOPE / TIPC_SUB_CLUSTER_SCOPE bits) are the server's business.
pub const fn matches_subscription(
    binding: &Binding,
    sub_type: u32,
    sub_lower: u32,
    sub_upper: u32,
) -> bool {
    binding.overlaps(sub_type, sub_lower, sub_upper)
}

/// `tipc_in_scope`: whether node `addr` lies in lookup `domain` (spec §3.3).
const fn in_scope(legacy: bool, domain: u32, addr: u32) -> bool {
    if domain == 0 || domain == addr {
        return true;
    }
    legacy && (domain == addr & 0xffff_f000 || domain == addr & 0xff00_0000)
}

/// One binding inside a range, with its insertion number.
#[derive(Debug, Clone, Copy)]
struct Entry {
    binding: Binding,
    /// Table-wide insertion number: publication order for subscriptions and the indexes.
    seq: u64,
}

/// A round-robin slot of the all-bindings list.
#[derive(Debug, Clone, Copy)]
struct RrAll {
    node: u32,
    port: u32,
    key: u32,
}

/// A round-robin slot of the local-bindings list.
#[derive(Debug, Clone, Copy)]
struct RrLocal {
    port: u32,
    key: u32,
}

/// Everything bound to one exact range.
#[derive(Debug, Default)]
struct RangeData {
    /// Sorted by (node, key): iteration order and duplicate detection.
    entries: Vec<Entry>,
    /// Round-robin order over all bindings (the kernel's `all_publ`).
    rr_all: VecDeque<RrAll>,
    /// Round-robin order over this node's bindings (the kernel's `local_publ`).
    rr_local: VecDeque<RrLocal>,
}

impl RangeData {
    /// The entries of `node`: a contiguous run of the sorted entries.
    fn node_entries(&self, node: u32) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.binding.node < node);
        let end = self.entries.partition_point(|e| e.binding.node <= node);
        self.entries.get(start..end).unwrap_or(&[])
    }
}

/// The name table of one node. See the module documentation.
#[derive(Debug)]
pub struct NameTable {
    own_addr: u32,
    legacy: bool,
    forest: Forest<RangeData>,
    /// Interval-tree root per service type (types without bindings are absent).
    roots: BTreeMap<u32, u32>,
    /// Exact range → arena slot.
    ranges: BTreeMap<(u32, u32, u32), u32>,
    /// (node, insertion number) → binding: node loss, the bulk, insertion order.
    by_node: BTreeMap<(u32, u64), Binding>,
    /// (node, port, insertion number): socket close.
    by_port: BTreeSet<(u32, u32, u64)>,
    /// Bindings per node, for the limits.
    node_counts: BTreeMap<u32, usize>,
    next_seq: u64,
    len: usize,
}

impl NameTable {
    /// An empty table for a node with address `own_addr` (0 before the address is committed).
    pub fn new(own_addr: u32) -> Self {
        Self {
            own_addr,
            legacy: false,
            forest: Forest::new(),
            roots: BTreeMap::new(),
            ranges: BTreeMap::new(),
            by_node: BTreeMap::new(),
            by_port: BTreeSet::new(),
            node_counts: BTreeMap::new(),
            next_seq: 0,
            len: 0,
        }
    }

    /// The own node address.
    pub fn own_addr(&self) -> u32 {
        self.own_addr
    }

    /// Sets the own node address (address commit, spec §3.2). Bindings made under the previous
    /// address (0 before the commit) are re-homed to the new one, as the kernel's
    /// `tipc_named_reinit` does; their publication order is kept. The node layer must have
    /// purged any bindings learned from a peer that used `addr`.
    pub fn set_own_addr(&mut self, addr: u32) {
        let old = self.own_addr;
        self.own_addr = addr;
        if old == addr {
            return;
        }
        let moved: Vec<(u64, Binding)> = self
            .by_node
            .range((old, 0)..=(old, u64::MAX))
            .map(|(&(_, seq), b)| (seq, *b))
            .collect();
        for (seq, b) in moved {
            let mut nb = b;
            nb.node = addr;
            self.by_node.remove(&(old, seq));
            self.by_node.insert((addr, seq), nb);
            self.by_port.remove(&(old, b.port, seq));
            self.by_port.insert((addr, b.port, seq));
            if let Some(&idx) = self.ranges.get(&(b.service_type, b.lower, b.upper)) {
                let data = &mut self.forest.get_mut(idx).value;
                for e in data.entries.iter_mut().filter(|e| e.seq == seq) {
                    e.binding.node = addr;
                }
                for r in data
                    .rr_all
                    .iter_mut()
                    .filter(|r| r.node == old && r.key == b.key)
                {
                    r.node = addr;
                }
                data.entries
                    .sort_by_key(|e| (e.binding.node, e.binding.key));
            }
        }
        if let Some(n) = self.node_counts.remove(&old) {
            *self.node_counts.entry(addr).or_insert(0) += n;
        }
    }

    /// Legacy (`<Z.C.N>`) address mode (spec §3.3): domains may name a zone or cluster, and an
    /// anycast lookup with domain 0 prefers bindings on this node.
    pub fn set_legacy_addr_mode(&mut self, legacy: bool) {
        self.legacy = legacy;
    }

    /// Whether legacy address mode is on.
    pub fn legacy_addr_mode(&self) -> bool {
        self.legacy
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no binding.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of bindings of `node` (0 = this node).
    pub fn node_binding_count(&self, node: u32) -> usize {
        let node = self.node_or_own(node);
        self.node_counts.get(&node).copied().unwrap_or(0)
    }

    /// Number of this node's bindings, both scopes (what the bind limit counts).
    pub fn local_count(&self) -> usize {
        self.node_binding_count(self.own_addr)
    }

    fn node_or_own(&self, node: u32) -> u32 {
        if node == 0 { self.own_addr } else { node }
    }

    /// Adds a binding: a local bind, or an item learned from a peer (spec §7.3).
    ///
    /// Refused: `lower > upper`; an existing binding with the same type, range, node and key;
    /// a node already holding [`TIPC_MAX_PUBL`] bindings; node scope on another node.
    /// Node 0 is replaced by the own address.
    pub fn insert(&mut self, binding: Binding) -> Result<TableChange, BindError> {
        let mut b = binding;
        b.node = self.node_or_own(b.node);
        if b.lower > b.upper {
            return Err(BindError::InvalidRange {
                lower: b.lower,
                upper: b.upper,
            });
        }
        let local = b.node == self.own_addr;
        if !local && b.scope == Scope::Node {
            return Err(BindError::RemoteNodeScope);
        }
        if self.node_binding_count(b.node) >= TIPC_MAX_PUBL {
            return Err(BindError::LimitReached);
        }
        let seq = self.next_seq;
        let range_key = (b.service_type, b.lower, b.upper);
        let existing = self.ranges.get(&range_key).copied();
        let pos = match existing {
            Some(idx) => self
                .forest
                .get(idx)
                .value
                .entries
                .binary_search_by_key(&(b.node, b.key), |e| (e.binding.node, e.binding.key))
                .err()
                .ok_or(BindError::Duplicate)?,
            None => 0,
        };
        let idx = match existing {
            Some(idx) => idx,
            None => {
                let idx = self
                    .forest
                    .alloc(b.lower, b.upper, seq, RangeData::default())
                    .ok_or(BindError::LimitReached)?;
                let root = self.roots.get(&b.service_type).copied().unwrap_or(NIL);
                let root = self.forest.insert(root, idx);
                self.roots.insert(b.service_type, root);
                self.ranges.insert(range_key, idx);
                idx
            }
        };
        let data = &mut self.forest.get_mut(idx).value;
        data.entries.insert(pos, Entry { binding: b, seq });
        data.rr_all.push_front(RrAll {
            node: b.node,
            port: b.port,
            key: b.key,
        });
        if local {
            data.rr_local.push_front(RrLocal {
                port: b.port,
                key: b.key,
            });
        }
        self.by_node.insert((b.node, seq), b);
        self.by_port.insert((b.node, b.port, seq));
        *self.node_counts.entry(b.node).or_insert(0) += 1;
        self.next_seq += 1;
        self.len += 1;
        Ok(TableChange {
            binding: b,
            range_edge: existing.is_none(),
        })
    }

    /// Removes the binding identified by type, exact range, node (0 = this node) and key
    /// (the port is not compared, as in the kernel). `None` if there is no such binding.
    pub fn remove(
        &mut self,
        service_type: u32,
        lower: u32,
        upper: u32,
        node: u32,
        key: u32,
    ) -> Option<TableChange> {
        let node = self.node_or_own(node);
        let idx = *self.ranges.get(&(service_type, lower, upper))?;
        let own = self.own_addr;
        let data = &mut self.forest.get_mut(idx).value;
        let pos = data
            .entries
            .binary_search_by_key(&(node, key), |e| (e.binding.node, e.binding.key))
            .ok()?;
        let Entry { binding, seq } = data.entries.remove(pos);
        if let Some(p) = data
            .rr_all
            .iter()
            .position(|r| r.node == node && r.key == key)
        {
            data.rr_all.remove(p);
        }
        if node == own
            && let Some(p) = data
                .rr_local
                .iter()
                .position(|r| r.key == key && r.port == binding.port)
        {
            data.rr_local.remove(p);
        }
        let now_empty = data.entries.is_empty();
        if now_empty {
            let root = self.roots.get(&service_type).copied().unwrap_or(NIL);
            let root = self.forest.remove(root, idx);
            self.forest.free(idx);
            if root == NIL {
                self.roots.remove(&service_type);
            } else {
                self.roots.insert(service_type, root);
            }
            self.ranges.remove(&(service_type, lower, upper));
        }
        self.by_node.remove(&(node, seq));
        self.by_port.remove(&(node, binding.port, seq));
        if let Some(n) = self.node_counts.get_mut(&node) {
            *n -= 1;
            if *n == 0 {
                self.node_counts.remove(&node);
            }
        }
        self.len -= 1;
        Some(TableChange {
            binding,
            range_edge: now_empty,
        })
    }

    /// Removes every binding of socket `port` on `node` (0 = this node): the socket closed.
    /// Newest binding first, the order in which the kernel withdraws a closing socket's
    /// bindings (and so the order of the WITHDRAWAL seqnos).
    pub fn remove_port(&mut self, node: u32, port: u32) -> Vec<TableChange> {
        let node = self.node_or_own(node);
        let doomed: Vec<Binding> = self
            .by_port
            .range((node, port, 0)..=(node, port, u64::MAX))
            .rev()
            .filter_map(|&(n, _, seq)| self.by_node.get(&(n, seq)).copied())
            .collect();
        self.remove_all(&doomed)
    }

    /// Removes every binding learned from `node`: contact with it was lost (spec §7.3). In
    /// publication order, as the kernel purges them. Nothing goes on the wire.
    pub fn purge_node(&mut self, node: u32) -> Vec<TableChange> {
        let node = self.node_or_own(node);
        let doomed: Vec<Binding> = self
            .by_node
            .range((node, 0)..=(node, u64::MAX))
            .map(|(_, b)| *b)
            .collect();
        self.remove_all(&doomed)
    }

    fn remove_all(&mut self, doomed: &[Binding]) -> Vec<TableChange> {
        doomed
            .iter()
            .filter_map(|b| self.remove(b.service_type, b.lower, b.upper, b.node, b.key))
            .collect()
    }

    /// Anycast lookup of `{service_type, instance}` in lookup `domain` (spec §7.4):
    ///
    /// * domain outside this node's scope (another node) → [`AnycastResult::Forward`];
    /// * else the first range containing the instance (lowest lower bound; on equal lower
    ///   bounds the newer range), and in it, round-robin (the picked binding moves to the tail):
    ///   * domain = own node: this node's bindings only; ranges without one are skipped;
    ///   * legacy address mode and domain 0: this node's bindings if the range has any;
    ///   * otherwise all bindings of the range.
    ///
    /// O(log n), no allocation.
    pub fn lookup_anycast(
        &mut self,
        service_type: u32,
        instance: u32,
        domain: u32,
    ) -> AnycastResult {
        if !in_scope(self.legacy, domain, self.own_addr) {
            return AnycastResult::Forward { node: domain };
        }
        let Some(&root) = self.roots.get(&service_type) else {
            return AnycastResult::NoMatch;
        };
        let local_only = domain == self.own_addr;
        let found = self
            .forest
            .visit_overlaps(root, instance, instance, &mut |idx, node| {
                if local_only && node.value.rr_local.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(idx)
                }
            });
        let ControlFlow::Break(idx) = found else {
            return AnycastResult::NoMatch;
        };
        let prefer_local = self.legacy && domain == 0;
        let data = &mut self.forest.get_mut(idx).value;
        if local_only || (prefer_local && !data.rr_local.is_empty()) {
            let Some(pick) = data.rr_local.front().copied() else {
                return AnycastResult::NoMatch;
            };
            data.rr_local.rotate_left(1);
            return AnycastResult::Local(pick.port);
        }
        let Some(pick) = data.rr_all.front().copied() else {
            return AnycastResult::NoMatch;
        };
        data.rr_all.rotate_left(1);
        if pick.node == self.own_addr {
            AnycastResult::Local(pick.port)
        } else {
            AnycastResult::Remote {
                port: pick.port,
                node: pick.node,
            }
        }
    }

    /// Secondary lookup at a receiving node (spec §7.4): a named message found no socket at
    /// its destination port (reroute count 0, no error), so it is looked up again here with its
    /// lookup scope: node scope searches this node's bindings only, cluster scope all of them
    /// (domain 0). [`AnycastResult::Local`]: deliver to that port. [`AnycastResult::Remote`]:
    /// re-address and forward (reroute count + 1, prevnode = self). [`AnycastResult::NoMatch`]:
    /// reject with TIPC_ERR_NO_NAME. Never [`AnycastResult::Forward`].
    pub fn lookup_local_secondary(
        &mut self,
        service_type: u32,
        instance: u32,
        lookup_scope: Scope,
    ) -> AnycastResult {
        let domain = match lookup_scope {
            Scope::Node => self.own_addr,
            Scope::Cluster => 0,
        };
        self.lookup_anycast(service_type, instance, domain)
    }

    /// The nodes a multicast to `{service_type, lower..=upper}` must reach (spec §7.4): every
    /// node with a binding overlapping the range, the own node included if it has one. Empty if
    /// `lower > upper`.
    pub fn multicast_dest_nodes(&self, service_type: u32, lower: u32, upper: u32) -> BTreeSet<u32> {
        let mut nodes = BTreeSet::new();
        self.for_each_overlap(service_type, lower, upper, |data| {
            for e in &data.entries {
                nodes.insert(e.binding.node);
            }
        });
        nodes
    }

    /// The local sockets that receive a copy of a multicast to `{service_type, lower..=upper}`
    /// (spec §7.4): every socket of this node bound to an overlapping range, each port once,
    /// in ascending port order. `include_node_scope`: the message originated on this node
    /// (then node-scope bindings count too; from another node only cluster scope counts).
    pub fn multicast_local_ports(
        &self,
        service_type: u32,
        lower: u32,
        upper: u32,
        include_node_scope: bool,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        self.multicast_local_ports_into(service_type, lower, upper, include_node_scope, &mut out);
        out
    }

    /// [`Self::multicast_local_ports`] into a caller's buffer (cleared first), so that a warm
    /// buffer makes the lookup allocation-free.
    pub fn multicast_local_ports_into(
        &self,
        service_type: u32,
        lower: u32,
        upper: u32,
        include_node_scope: bool,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        let own = self.own_addr;
        self.for_each_overlap(service_type, lower, upper, |data| {
            out.extend(
                data.node_entries(own)
                    .iter()
                    .filter(|e| include_node_scope || e.binding.scope == Scope::Cluster)
                    .map(|e| e.binding.port),
            );
        });
        out.sort_unstable();
        out.dedup();
    }

    fn for_each_overlap(
        &self,
        service_type: u32,
        lower: u32,
        upper: u32,
        mut f: impl FnMut(&RangeData),
    ) {
        if lower > upper {
            return;
        }
        let Some(&root) = self.roots.get(&service_type) else {
            return;
        };
        let _ = self
            .forest
            .visit_overlaps::<()>(root, lower, upper, &mut |_, node| {
                f(&node.value);
                ControlFlow::Continue(())
            });
    }

    /// Every binding, ordered by (type, lower, upper, node, key).
    pub fn iter(&self) -> impl Iterator<Item = &Binding> + '_ {
        self.ranges.values().flat_map(move |&idx| {
            self.forest
                .get(idx)
                .value
                .entries
                .iter()
                .map(|e| &e.binding)
        })
    }

    /// This node's cluster-scope bindings in publication order: what the bulk carries at node
    /// up (spec §7.3), the node's own `{0, addr, addr}` included. Bindings made before the
    /// address commit come first, as in the kernel's bulk (`eth-02-link-setup` frame 12).
    pub fn local_cluster_bindings(&self) -> impl Iterator<Item = &Binding> + '_ {
        let own = self.own_addr;
        self.by_node
            .range((own, 0)..=(own, u64::MAX))
            .map(|(_, b)| b)
            .filter(|b| b.scope == Scope::Cluster)
    }

    /// The bindings of socket `port` on `node` (0 = this node), newest first — the order the
    /// kernel's per-socket list has, which `unbind` of one range searches.
    pub fn port_bindings(&self, node: u32, port: u32) -> impl Iterator<Item = &Binding> + '_ {
        let node = self.node_or_own(node);
        self.by_port
            .range((node, port, 0)..=(node, port, u64::MAX))
            .rev()
            .filter_map(move |&(n, _, seq)| self.by_node.get(&(n, seq)))
    }

    /// Number of bindings on exactly `{service_type, lower, upper}`: TIPC_SUB_SERVICE reports a
    /// range only when this goes 0→1 or 1→0 (spec §8.4; see also [`TableChange::range_edge`]).
    pub fn count_exact_range(&self, service_type: u32, lower: u32, upper: u32) -> usize {
        self.ranges
            .get(&(service_type, lower, upper))
            .map_or(0, |&idx| self.forest.get(idx).value.entries.len())
    }

    /// The initial report of a new topology subscription on `{service_type, lower..=upper}`
    /// (spec §8.4), in publication order: with `all_ports` (TIPC_SUB_PORTS) every overlapping
    /// binding, otherwise (TIPC_SUB_SERVICE) the oldest binding of each overlapping range.
    pub fn subscription_snapshot(
        &self,
        service_type: u32,
        lower: u32,
        upper: u32,
        all_ports: bool,
    ) -> Vec<Binding> {
        let mut found: Vec<Entry> = Vec::new();
        self.for_each_overlap(service_type, lower, upper, |data| {
            if all_ports {
                found.extend_from_slice(&data.entries);
            } else if let Some(oldest) = data.entries.iter().min_by_key(|e| e.seq) {
                found.push(*oldest);
            }
        });
        found.sort_unstable_by_key(|e| e.seq);
        found.into_iter().map(|e| e.binding).collect()
    }

    /// Checks every internal invariant against the bindings (tests only).
    #[cfg(test)]
    fn check(&self) {
        let mut total = 0;
        for (&ty, &root) in &self.roots {
            let n = self.forest.check(root);
            let in_map = self.ranges.keys().filter(|k| k.0 == ty).count();
            assert_eq!(n, in_map, "tree of type {ty} vs range map");
        }
        assert_eq!(
            self.roots.len(),
            self.ranges
                .keys()
                .map(|k| k.0)
                .collect::<BTreeSet<_>>()
                .len()
        );
        for (&(ty, lo, up), &idx) in &self.ranges {
            let node = self.forest.get(idx);
            assert_eq!((node.lower, node.upper), (lo, up));
            let d = &node.value;
            assert!(!d.entries.is_empty(), "empty range kept");
            assert!(
                d.entries
                    .windows(2)
                    .all(|w| (w[0].binding.node, w[0].binding.key)
                        < (w[1].binding.node, w[1].binding.key))
            );
            assert_eq!(d.rr_all.len(), d.entries.len());
            let locals = d.node_entries(self.own_addr).len();
            assert_eq!(d.rr_local.len(), locals);
            for e in &d.entries {
                let b = e.binding;
                assert_eq!((b.service_type, b.lower, b.upper), (ty, lo, up));
                assert_eq!(self.by_node.get(&(b.node, e.seq)), Some(&b));
                assert!(self.by_port.contains(&(b.node, b.port, e.seq)));
            }
            total += d.entries.len();
        }
        assert_eq!(total, self.len);
        assert_eq!(self.by_node.len(), self.len);
        assert_eq!(self.by_port.len(), self.len);
        assert_eq!(self.node_counts.values().sum::<usize>(), self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    const OWN: u32 = 0x0f11_5f6f;
    const PEER: u32 = 0x0f11_5c6f;
    const PEER2: u32 = 0x0f11_0001;
    const T: u32 = 18888;

    fn bind(service_type: u32, lower: u32, upper: u32, node: u32, port: u32) -> Binding {
        Binding {
            service_type,
            lower,
            upper,
            port,
            node,
            key: port.wrapping_add(1),
            scope: Scope::Cluster,
        }
    }

    fn node_scope(mut b: Binding) -> Binding {
        b.scope = Scope::Node;
        b
    }

    #[test]
    fn scope_from_raw_maps_like_bind() {
        assert_eq!(Scope::from_raw(3), Some(Scope::Node));
        assert_eq!(Scope::from_raw(2), Some(Scope::Cluster));
        assert_eq!(Scope::from_raw(1), Some(Scope::Cluster));
        assert_eq!(Scope::from_raw(0), Some(Scope::Cluster));
        assert_eq!(Scope::from_raw(-2), None);
        assert_eq!(Scope::from_lookup_scope(3), Scope::Node);
        assert_eq!(Scope::from_lookup_scope(2), Scope::Cluster);
        assert_eq!((Scope::Cluster.raw(), Scope::Node.raw()), (2, 3));
    }

    #[test]
    fn insert_remove_and_edges() {
        let mut t = NameTable::new(OWN);
        let a = bind(T, 1, 10, OWN, 100);
        let b = bind(T, 1, 10, PEER, 200);
        assert!(t.insert(a).expect("a").range_edge);
        assert!(!t.insert(b).expect("b").range_edge);
        assert_eq!(t.count_exact_range(T, 1, 10), 2);
        assert_eq!(t.len(), 2);
        t.check();
        let r = t.remove(T, 1, 10, OWN, a.key).expect("removed");
        assert_eq!((r.binding, r.range_edge), (a, false));
        assert_eq!(t.remove(T, 1, 10, OWN, a.key), None);
        let r = t.remove(T, 1, 10, PEER, b.key).expect("removed");
        assert!(r.range_edge);
        assert!(t.is_empty());
        assert_eq!(t.count_exact_range(T, 1, 10), 0);
        t.check();
    }

    #[test]
    fn rejects_invalid_range_and_duplicates() {
        let mut t = NameTable::new(OWN);
        assert_eq!(
            t.insert(bind(T, 5, 4, OWN, 1)),
            Err(BindError::InvalidRange { lower: 5, upper: 4 })
        );
        let a = bind(T, 5, 9, OWN, 1);
        t.insert(a).expect("first");
        // Same identity, different port: still a duplicate (the kernel compares key and node).
        let mut dup = a;
        dup.port = 77;
        assert_eq!(t.insert(dup), Err(BindError::Duplicate));
        // Node 0 means the own node.
        let mut dup0 = a;
        dup0.node = 0;
        assert_eq!(t.insert(dup0), Err(BindError::Duplicate));
        // Same key on another node, or on another range, is fine.
        let mut other_node = a;
        other_node.node = PEER;
        t.insert(other_node).expect("other node");
        let mut other_range = a;
        other_range.upper = 10;
        t.insert(other_range).expect("other range");
        // Several bindings per socket, several sockets per address.
        t.insert(bind(T, 5, 9, OWN, 2)).expect("second socket");
        let mut second_key = a;
        second_key.key = 99;
        t.insert(second_key).expect("same socket, second binding");
        assert_eq!(t.count_exact_range(T, 5, 9), 4);
        assert_eq!(t.insert(dup), Err(BindError::Duplicate));
        t.check();
    }

    #[test]
    fn node_scope_only_on_own_node() {
        let mut t = NameTable::new(OWN);
        assert_eq!(
            t.insert(node_scope(bind(T, 1, 1, PEER, 5))),
            Err(BindError::RemoteNodeScope)
        );
        t.insert(node_scope(bind(T, 1, 1, OWN, 5))).expect("local");
    }

    #[test]
    fn local_limit_is_tipc_max_publ() {
        let mut t = NameTable::new(OWN);
        t.insert(bind(0, OWN, OWN, OWN, 0)).expect("node binding");
        for i in 0..(TIPC_MAX_PUBL as u32 - 1) {
            t.insert(bind(T, i, i, OWN, 1000)).expect("user binding");
        }
        assert_eq!(t.local_count(), TIPC_MAX_PUBL);
        let extra = bind(T + 1, 0, 0, OWN, 1);
        assert_eq!(t.insert(extra), Err(BindError::LimitReached));
        // Peers are counted on their own.
        t.insert(bind(T, 0, 0, PEER, 1)).expect("peer binding");
        t.remove(T, 7, 7, OWN, 1001).expect("one removed");
        t.insert(extra).expect("room again");
        assert_eq!(
            t.insert(bind(T + 2, 0, 0, OWN, 1)),
            Err(BindError::LimitReached)
        );
    }

    #[test]
    fn anycast_round_robin_spreads_evenly() {
        let mut t = NameTable::new(OWN);
        let ports = [11u32, 12, 13, 14, 15];
        for &p in &ports {
            t.insert(bind(T, 0, 100, PEER, p)).expect("bind");
        }
        let mut hits = BTreeMap::new();
        let mut order = Vec::new();
        for _ in 0..(ports.len() * 20) {
            match t.lookup_anycast(T, 42, 0) {
                AnycastResult::Remote { port, node } => {
                    assert_eq!(node, PEER);
                    *hits.entry(port).or_insert(0) += 1;
                    order.push(port);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(hits.values().all(|&n| n == 20), "{hits:?}");
        // The newest binding is picked first (head insertion), then in turn.
        assert_eq!(&order[..5], &[15, 14, 13, 12, 11]);
        assert_eq!(&order[5..10], &[15, 14, 13, 12, 11]);
    }

    #[test]
    fn anycast_uses_first_matching_range_only() {
        let mut t = NameTable::new(OWN);
        t.insert(bind(T, 10, 20, PEER, 1)).expect("bind");
        t.insert(bind(T, 5, 15, PEER, 2)).expect("bind");
        t.insert(bind(T, 12, 12, PEER, 3)).expect("bind");
        for _ in 0..4 {
            assert_eq!(
                t.lookup_anycast(T, 12, 0),
                AnycastResult::Remote {
                    port: 2,
                    node: PEER
                }
            );
        }
        assert_eq!(
            t.lookup_anycast(T, 18, 0),
            AnycastResult::Remote {
                port: 1,
                node: PEER
            }
        );
        assert_eq!(t.lookup_anycast(T, 21, 0), AnycastResult::NoMatch);
        assert_eq!(t.lookup_anycast(T + 1, 12, 0), AnycastResult::NoMatch);
        // Equal lower bounds: the newer range comes first, as in the kernel's tree.
        t.insert(bind(T, 5, 30, PEER, 4)).expect("bind");
        assert_eq!(
            t.lookup_anycast(T, 12, 0),
            AnycastResult::Remote {
                port: 4,
                node: PEER
            }
        );
    }

    #[test]
    fn anycast_domain_own_node_is_local_only() {
        let mut t = NameTable::new(OWN);
        // The first range has only a remote binding: it is skipped for domain = own.
        t.insert(bind(T, 0, 50, PEER, 1)).expect("bind");
        t.insert(bind(T, 10, 20, OWN, 2)).expect("bind");
        t.insert(bind(T, 10, 20, PEER, 3)).expect("bind");
        t.insert(node_scope(bind(T, 10, 20, OWN, 4))).expect("bind");
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            match t.lookup_anycast(T, 15, OWN) {
                AnycastResult::Local(p) => {
                    seen.insert(p);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, BTreeSet::from([2, 4]));
        // Domain 0 (non-legacy): the first range, all bindings.
        assert_eq!(
            t.lookup_anycast(T, 15, 0),
            AnycastResult::Remote {
                port: 1,
                node: PEER
            }
        );
        assert_eq!(t.lookup_anycast(T, 40, OWN), AnycastResult::NoMatch);
    }

    #[test]
    fn anycast_domain_other_node_forwards() {
        let mut t = NameTable::new(OWN);
        t.insert(bind(T, 0, 50, OWN, 1)).expect("bind");
        assert_eq!(
            t.lookup_anycast(T, 5, PEER),
            AnycastResult::Forward { node: PEER }
        );
        // Without legacy mode a cluster domain is just another address.
        assert_eq!(
            t.lookup_anycast(T, 5, OWN & 0xffff_f000),
            AnycastResult::Forward {
                node: OWN & 0xffff_f000
            }
        );
    }

    #[test]
    fn legacy_mode_prefers_local_with_domain_zero() {
        let own = (1 << 24) | (1 << 12) | 10; // <1.1.10>
        let peer = (1 << 24) | (1 << 12) | 20;
        let mut t = NameTable::new(own);
        t.insert(bind(T, 0, 9, peer, 1)).expect("bind");
        t.insert(bind(T, 0, 9, own, 2)).expect("bind");
        t.insert(bind(T, 0, 9, peer, 3)).expect("bind");
        // Non-legacy: round-robin over all three.
        let mut seen = BTreeSet::new();
        for _ in 0..3 {
            seen.insert(t.lookup_anycast(T, 1, 0));
        }
        assert_eq!(seen.len(), 3);
        t.set_legacy_addr_mode(true);
        for _ in 0..5 {
            assert_eq!(t.lookup_anycast(T, 1, 0), AnycastResult::Local(2));
        }
        // A <Z.C.0> or <Z.0.0> domain containing this node is looked up here, over all.
        let mut seen = BTreeSet::new();
        for _ in 0..3 {
            seen.insert(t.lookup_anycast(T, 1, own & 0xffff_f000));
        }
        assert_eq!(seen.len(), 3);
        assert_ne!(
            t.lookup_anycast(T, 1, own & 0xff00_0000),
            AnycastResult::Forward {
                node: own & 0xff00_0000
            }
        );
        assert_eq!(
            t.lookup_anycast(T, 1, 2 << 24),
            AnycastResult::Forward { node: 2 << 24 }
        );
        // No local binding in the range: all of them.
        t.remove(T, 0, 9, own, 3).expect("removed");
        assert!(matches!(
            t.lookup_anycast(T, 1, 0),
            AnycastResult::Remote { .. }
        ));
    }

    #[test]
    fn secondary_lookup_follows_lookup_scope() {
        let mut t = NameTable::new(OWN);
        t.insert(bind(T, 7, 7, PEER, 1)).expect("bind");
        assert_eq!(
            t.lookup_local_secondary(T, 7, Scope::Cluster),
            AnycastResult::Remote {
                port: 1,
                node: PEER
            }
        );
        assert_eq!(
            t.lookup_local_secondary(T, 7, Scope::Node),
            AnycastResult::NoMatch
        );
        t.insert(bind(T, 7, 7, OWN, 2)).expect("bind");
        assert_eq!(
            t.lookup_local_secondary(T, 7, Scope::Node),
            AnycastResult::Local(2)
        );
        assert_eq!(
            t.lookup_local_secondary(T, 8, Scope::Cluster),
            AnycastResult::NoMatch
        );
    }

    #[test]
    fn multicast_nodes_and_ports() {
        let mut t = NameTable::new(OWN);
        t.insert(bind(T, 0, 10, PEER, 1)).expect("bind");
        t.insert(bind(T, 20, 30, PEER2, 2)).expect("bind");
        t.insert(bind(T, 5, 25, OWN, 30)).expect("bind");
        t.insert(bind(T, 8, 8, OWN, 10)).expect("bind");
        t.insert(node_scope(bind(T, 9, 40, OWN, 20))).expect("bind");
        t.insert(bind(T + 1, 0, 100, OWN, 40)).expect("bind");
        // The same socket twice in overlapping ranges: one copy.
        let mut again = bind(T, 0, 100, OWN, 30);
        again.key = 1234;
        t.insert(again).expect("bind");
        assert_eq!(
            t.multicast_dest_nodes(T, 0, 100),
            BTreeSet::from([OWN, PEER, PEER2])
        );
        assert_eq!(
            t.multicast_dest_nodes(T, 26, 100),
            BTreeSet::from([OWN, PEER2])
        );
        assert_eq!(t.multicast_dest_nodes(T, 11, 19), BTreeSet::from([OWN]));
        assert_eq!(t.multicast_dest_nodes(T, 101, 200), BTreeSet::new());
        assert_eq!(t.multicast_dest_nodes(T, 10, 0), BTreeSet::new());
        assert_eq!(t.multicast_local_ports(T, 0, 100, true), vec![10, 20, 30]);
        assert_eq!(t.multicast_local_ports(T, 0, 100, false), vec![10, 30]);
        assert_eq!(t.multicast_local_ports(T, 31, 40, true), vec![20, 30]);
        assert_eq!(t.multicast_local_ports(T, 31, 40, false), vec![30]);
        let mut buf = vec![999];
        t.multicast_local_ports_into(T, 101, 200, true, &mut buf);
        assert!(buf.is_empty());
    }

    #[test]
    fn remove_port_and_purge_node() {
        let mut t = NameTable::new(OWN);
        let b1 = bind(T, 1, 1, OWN, 5);
        let mut b2 = bind(T, 2, 3, OWN, 5);
        b2.key = 7;
        let b3 = bind(T, 1, 1, OWN, 6);
        for b in [b1, b2, b3] {
            t.insert(b).expect("bind");
        }
        assert_eq!(
            t.port_bindings(0, 5).copied().collect::<Vec<_>>(),
            vec![b2, b1]
        );
        let gone = t.remove_port(OWN, 5);
        assert_eq!(
            gone.iter().map(|c| c.binding).collect::<Vec<_>>(),
            vec![b2, b1]
        );
        assert_eq!(
            gone.iter().map(|c| c.range_edge).collect::<Vec<_>>(),
            vec![true, false]
        );
        assert_eq!(t.len(), 1);

        let p: Vec<Binding> = (0..5).map(|i| bind(T, i, i + 1, PEER, 100 + i)).collect();
        for b in &p {
            t.insert(*b).expect("bind");
        }
        t.insert(bind(T, 1, 1, PEER2, 9)).expect("bind");
        let purged = t.purge_node(PEER);
        assert_eq!(purged.iter().map(|c| c.binding).collect::<Vec<_>>(), p);
        assert!(purged.iter().all(|c| c.range_edge));
        assert_eq!(t.node_binding_count(PEER), 0);
        assert_eq!(t.len(), 2);
        assert!(t.purge_node(PEER).is_empty());
        t.check();
    }

    #[test]
    fn iteration_orders() {
        let mut t = NameTable::new(0);
        let user1 = bind(T, 17, 17, 0, 0x46cf_5d62);
        let user2 = bind(T, 18, 18, 0, 0xaabd_d869);
        t.insert(user1).expect("bind");
        t.insert(bind(T, 17, 17, PEER, 3)).expect("bind");
        t.insert(node_scope(bind(T, 1, 1, 0, 4))).expect("bind");
        t.insert(user2).expect("bind");
        t.set_own_addr(OWN);
        t.check();
        t.insert(bind(0, OWN, OWN, OWN, 0)).expect("node binding");
        t.insert(bind(T, 5, 5, PEER, 3)).expect("bind");
        let all: Vec<(u32, u32, u32, u32, u32)> = t
            .iter()
            .map(|b| (b.service_type, b.lower, b.upper, b.node, b.key))
            .collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(all, sorted);
        assert_eq!(all.len(), 6);
        // Bulk order: publication order, cluster scope, re-homed to the committed address.
        let bulk: Vec<(u32, u32, u32)> = t
            .local_cluster_bindings()
            .map(|b| (b.service_type, b.lower, b.node))
            .collect();
        assert_eq!(bulk, vec![(T, 17, OWN), (T, 18, OWN), (0, OWN, OWN)]);
        assert_eq!(t.local_count(), 4);
        assert_eq!(t.node_binding_count(0), 4);
        // The re-homed bindings stay local.
        assert_eq!(
            t.lookup_anycast(T, 18, OWN),
            AnycastResult::Local(user2.port)
        );
        assert!(t.remove(T, 17, 17, OWN, user1.key).is_some());
        t.check();
    }

    #[test]
    fn subscription_helpers() {
        let mut t = NameTable::new(OWN);
        let a = bind(T, 10, 20, PEER, 1);
        let b = bind(T, 0, 5, OWN, 2);
        let c = bind(T, 10, 20, OWN, 3);
        let d = bind(T, 30, 40, PEER, 4);
        for x in [a, b, c, d] {
            t.insert(x).expect("bind");
        }
        assert!(matches_subscription(&a, T, 20, 25));
        assert!(!matches_subscription(&a, T, 21, 25));
        assert!(!matches_subscription(&a, T + 1, 0, 100));
        assert_eq!(t.subscription_snapshot(T, 0, 35, true), vec![a, b, c, d]);
        assert_eq!(t.subscription_snapshot(T, 0, 35, false), vec![a, b, d]);
        assert_eq!(t.subscription_snapshot(T, 6, 9, true), vec![]);
        t.remove(T, 10, 20, PEER, a.key).expect("removed");
        assert_eq!(t.subscription_snapshot(T, 15, 15, false), vec![c]);
    }

    /// A naive model: a list of bindings plus the creation number of each live range.
    #[derive(Debug, Default)]
    struct Model {
        bindings: Vec<Binding>,
        range_order: BTreeMap<(u32, u32, u32), u64>,
        next: u64,
    }

    impl Model {
        fn insert(&mut self, b: Binding) -> bool {
            if b.lower > b.upper
                || self.bindings.iter().any(|x| {
                    (x.service_type, x.lower, x.upper, x.node, x.key)
                        == (b.service_type, b.lower, b.upper, b.node, b.key)
                })
            {
                return false;
            }
            self.range_order
                .entry((b.service_type, b.lower, b.upper))
                .or_insert(self.next);
            self.next += 1;
            self.bindings.push(b);
            true
        }

        fn remove_where(&mut self, f: impl Fn(&Binding) -> bool) -> Vec<Binding> {
            let (gone, keep): (Vec<_>, Vec<_>) = self.bindings.drain(..).partition(|b| f(b));
            self.bindings = keep;
            let live: BTreeSet<_> = self
                .bindings
                .iter()
                .map(|b| (b.service_type, b.lower, b.upper))
                .collect();
            self.range_order.retain(|k, _| live.contains(k));
            gone
        }

        /// The candidates of an anycast lookup with domain 0 or own; `legacy`: closest first.
        fn anycast_candidates(
            &self,
            ty: u32,
            inst: u32,
            local_only: bool,
            legacy: bool,
        ) -> Vec<Binding> {
            let first = self
                .range_order
                .iter()
                .filter(|((t, lo, up), _)| *t == ty && *lo <= inst && inst <= *up)
                .filter(|(k, _)| {
                    !local_only
                        || self
                            .bindings
                            .iter()
                            .any(|b| (b.service_type, b.lower, b.upper) == **k && b.node == OWN)
                })
                .min_by_key(|((_, lo, _), order)| (*lo, u64::MAX - **order));
            let Some((k, _)) = first else {
                return Vec::new();
            };
            let in_range = self
                .bindings
                .iter()
                .filter(|b| (b.service_type, b.lower, b.upper) == *k);
            let has_local = in_range.clone().any(|b| b.node == OWN);
            let only_local = local_only || (legacy && has_local);
            in_range
                .filter(|b| !only_local || b.node == OWN)
                .copied()
                .collect()
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Binding),
        Remove(usize),
        RemovePort(u32, u32),
        Purge(u32),
        Anycast(u32, u32, bool, bool),
        Multicast(u32, u32, u32),
    }

    fn arb_binding() -> impl Strategy<Value = Binding> {
        (
            0u32..3,
            0u32..12,
            prop::sample::select(vec![0u32, 0, 3, 10, 14]),
            prop::sample::select(vec![OWN, PEER, PEER2]),
            0u32..4,
            0u32..3,
            any::<bool>(),
        )
            .prop_map(|(ty, lower, len, node, port, key, ns)| Binding {
                service_type: ty,
                lower,
                upper: if len == 14 {
                    lower.wrapping_sub(1)
                } else {
                    lower + len
                },
                port,
                node,
                key,
                scope: if ns && node == OWN {
                    Scope::Node
                } else {
                    Scope::Cluster
                },
            })
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => arb_binding().prop_map(Op::Insert),
            3 => any::<usize>().prop_map(Op::Remove),
            1 => (prop::sample::select(vec![OWN, PEER]), 0u32..4)
                .prop_map(|(n, p)| Op::RemovePort(n, p)),
            1 => prop::sample::select(vec![PEER, PEER2]).prop_map(Op::Purge),
            3 => (0u32..3, 0u32..25, any::<bool>(), any::<bool>())
                .prop_map(|(t, i, l, g)| Op::Anycast(t, i, l, g)),
            2 => (0u32..3, 0u32..25, 0u32..12).prop_map(|(t, l, n)| Op::Multicast(t, l, l + n)),
        ]
    }

    fn as_set(v: &[Binding]) -> BTreeSet<(u32, u32, u32, u32, u32, u32, u8)> {
        v.iter()
            .map(|b| {
                (
                    b.service_type,
                    b.lower,
                    b.upper,
                    b.node,
                    b.key,
                    b.port,
                    b.scope.raw(),
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn table_agrees_with_naive_model(ops in prop::collection::vec(arb_op(), 1..120)) {
            let mut t = NameTable::new(OWN);
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::Insert(b) => {
                        let ok = t.insert(b).is_ok();
                        prop_assert_eq!(ok, m.insert(b));
                    }
                    Op::Remove(i) => {
                        if m.bindings.is_empty() {
                            continue;
                        }
                        let b = m.bindings[i % m.bindings.len()];
                        let c = t.remove(b.service_type, b.lower, b.upper, b.node, b.key);
                        prop_assert_eq!(c.map(|c| c.binding), Some(b));
                        m.remove_where(|x| *x == b);
                        prop_assert_eq!(
                            c.map(|c| c.range_edge),
                            Some(t.count_exact_range(b.service_type, b.lower, b.upper) == 0)
                        );
                    }
                    Op::RemovePort(n, p) => {
                        let got: Vec<Binding> =
                            t.remove_port(n, p).into_iter().map(|c| c.binding).collect();
                        let want = m.remove_where(|x| x.node == n && x.port == p);
                        prop_assert_eq!(as_set(&got), as_set(&want));
                    }
                    Op::Purge(n) => {
                        let got: Vec<Binding> =
                            t.purge_node(n).into_iter().map(|c| c.binding).collect();
                        let want = m.remove_where(|x| x.node == n);
                        prop_assert_eq!(as_set(&got), as_set(&want));
                    }
                    Op::Anycast(ty, inst, local, legacy) => {
                        let domain = if local { OWN } else { 0 };
                        t.set_legacy_addr_mode(legacy);
                        let cands = m.anycast_candidates(ty, inst, local, legacy);
                        match t.lookup_anycast(ty, inst, domain) {
                            AnycastResult::NoMatch => prop_assert!(cands.is_empty()),
                            AnycastResult::Local(port) => prop_assert!(
                                cands.iter().any(|b| b.node == OWN && b.port == port)
                            ),
                            AnycastResult::Remote { port, node } => prop_assert!(
                                node != OWN
                                    && cands.iter().any(|b| b.node == node && b.port == port)
                            ),
                            AnycastResult::Forward { node } => {
                                return Err(TestCaseError::fail(
                                    format!("unexpected forward to {node}"),
                                ));
                            }
                        }
                    }
                    Op::Multicast(ty, lo, up) => {
                        let hit: Vec<Binding> = m
                            .bindings
                            .iter()
                            .filter(|b| b.overlaps(ty, lo, up))
                            .copied()
                            .collect();
                        let nodes: BTreeSet<u32> = hit.iter().map(|b| b.node).collect();
                        prop_assert_eq!(t.multicast_dest_nodes(ty, lo, up), nodes);
                        for include_node in [false, true] {
                            let ports: BTreeSet<u32> = hit
                                .iter()
                                .filter(|b| b.node == OWN)
                                .filter(|b| include_node || b.scope == Scope::Cluster)
                                .map(|b| b.port)
                                .collect();
                            let got = t.multicast_local_ports(ty, lo, up, include_node);
                            prop_assert_eq!(got, ports.into_iter().collect::<Vec<_>>());
                        }
                        let snap = t.subscription_snapshot(ty, lo, up, true);
                        prop_assert_eq!(as_set(&snap), as_set(&hit));
                    }
                }
                prop_assert_eq!(t.len(), m.bindings.len());
                t.check();
            }
            let all: Vec<Binding> = t.iter().copied().collect();
            prop_assert_eq!(as_set(&all), as_set(&m.bindings));
        }
    }
}
