//! Where nf_tables objects come from: the kernel ([`Reader`], one socket
//! and one deadline for a whole reading) or objects decoded before
//! ([`Recorded`]); [`consistent`] makes several dumps one state of the
//! rules.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, GenAttribute, GenMessage, ListAttribute,
    NfTablesMessage, RuleAttribute, RuleMessage, SetAttribute, SetElementAttribute, SetElementList,
    SetElementMessage, SetMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::{NetfilterMessageInner, NetfilterProtoFamily};

use super::decode::{
    decode, decode_elements, decode_rule, message_type, raw_chain_name, raw_rule_chain, set_from,
    unexpected,
};
use super::{
    Family, NftElement, NftError, NftRule, NftSet, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE,
    NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, SNAPSHOT_ATTEMPTS,
};
use crate::netfilter::{DumpEvent, NetfilterError, NfnetlinkSocket, DUMP_DEADLINE};

/// A `NETLINK_NETFILTER` socket asking nf_tables, in the network namespace
/// of the thread that opened it, with one deadline for everything it is
/// asked.
#[derive(Debug)]
pub struct Reader {
    socket: NfnetlinkSocket,
    /// When every dump must be over.
    deadline: Instant,
    /// The whole budget, for the error message.
    budget: Duration,
}

impl Reader {
    /// Opens a socket in the calling thread's network namespace; all it
    /// reads must be read within the listing tools' deadline
    /// ([`crate::process::listing_deadline`], 10 s unless
    /// `CTDIAG_LISTING_DEADLINE_MS` says otherwise). Why one deadline: a
    /// reading is many dumps (one per map in nftables mode), and each
    /// dump's own deadline alone would not bound their sum.
    pub fn open() -> Result<Self, NftError> {
        Self::with_budget(crate::process::listing_deadline())
    }

    /// [`Self::open`] with another budget.
    pub fn with_budget(budget: Duration) -> Result<Self, NftError> {
        Ok(Reader { socket: NfnetlinkSocket::open()?, deadline: Instant::now() + budget, budget })
    }

    /// What is left of the deadline for the next dump (at most
    /// [`DUMP_DEADLINE`]); an error once it has passed.
    fn time_left(&self, request: &'static str) -> Result<Duration, NftError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NftError::Netlink(NetfilterError::Deadline {
                request,
                after: self.budget,
            }));
        }
        Ok(left.min(DUMP_DEADLINE))
    }
}

/// Where the readers of kube-proxy's rules get nf_tables objects: the
/// kernel ([`Reader`]), or objects decoded before ([`Recorded`]: captured
/// bytes in tests, arbitrary ones in property tests).
pub trait Source {
    /// The ruleset's generation: it changes with every committed
    /// transaction.
    fn generation(&mut self) -> Result<u32, NftError>;
    /// Whether chain `chain` exists in table `table` of `family` (a missing
    /// table answers the same as a missing chain: no).
    fn chain_exists(&mut self, family: Family, table: &str, chain: &str) -> Result<bool, NftError>;
    /// The sets and maps of table `table`; `None` when there is no such
    /// table.
    fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError>;
    /// The elements of set `set` of table `table`.
    fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError>;
    /// The rules of table `table` (of its chain `chain` only, when given),
    /// in the chains `keep` accepts, in the kernel's order.
    fn rules(
        &mut self,
        family: Family,
        table: &str,
        chain: Option<&str>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NftRule>, NftError>;

    /// The names of the chains of table `table`, in the table's order
    /// (the order a whole-table rule dump walks them in); `None` when the
    /// source cannot list them (then the caller dumps the whole table).
    /// An empty list when there is no such table.
    fn chain_names(
        &mut self,
        family: Family,
        table: &str,
    ) -> Result<Option<Vec<String>>, NftError> {
        let _ = (family, table);
        Ok(None)
    }

    /// Whether table `table` of `family` exists.
    fn table_exists(&mut self, family: Family, table: &str) -> Result<bool, NftError> {
        Ok(self.sets(family, table)?.is_some())
    }

    /// Set or map `name` of table `table`; `None` when it (or the table)
    /// does not exist.
    fn set(&mut self, family: Family, table: &str, name: &str) -> Result<Option<NftSet>, NftError> {
        Ok(self.sets(family, table)?.and_then(|sets| sets.into_iter().find(|s| s.name == name)))
    }

    /// The element of set `set` whose key is `key` (as stored: each field
    /// of a concatenation padded to 4 bytes); `None` when it is not in the
    /// set (or there is no such set).
    fn element(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> Result<Option<NftElement>, NftError> {
        Ok(self.elements(family, table, set)?.into_iter().find(|e| e.key == key))
    }

    /// The rules of chain `chain` of table `table`, in order (none when
    /// the chain does not exist). With `mentioning`, a source may leave
    /// out every rule whose kernel message does not contain those bytes (a
    /// rule of another Service, when they are a Service's name): a cheap
    /// first cut, so callers still check each rule they get.
    fn chain_rules(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        mentioning: Option<&[u8]>,
    ) -> Result<Vec<NftRule>, NftError> {
        let _ = mentioning;
        self.rules(family, table, Some(chain), &|_| true)
    }
}

/// Runs `read` (several dumps) until the ruleset generation is the same
/// before and after it, at most [`SNAPSHOT_ATTEMPTS`] times: what it
/// returns then is one consistent state of the rules, never a mix of two.
pub fn consistent<S: Source + ?Sized, T>(
    source: &mut S,
    mut read: impl FnMut(&mut S) -> Result<T, NftError>,
) -> Result<T, NftError> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let before = source.generation()?;
        let value = read(source)?;
        if source.generation()? == before {
            return Ok(value);
        }
    }
    Err(NftError::Changing { attempts: SNAPSHOT_ATTEMPTS })
}

impl Source for Reader {
    /// The ruleset's generation: it changes with every committed
    /// transaction.
    fn generation(&mut self) -> Result<u32, NftError> {
        self.time_left("nf_tables generation")?;
        let replies = self.socket.request(
            "nf_tables generation",
            NetfilterProtoFamily::Unspec,
            NfTablesMessage::GetGen(GenMessage { attributes: Vec::new() }),
        )?;
        replies
            .into_iter()
            .find_map(|reply| match reply.message.inner {
                NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(gen)) => {
                    gen.attributes.into_iter().find_map(|a| match a {
                        GenAttribute::Id(id) => Some(id),
                        _ => None,
                    })
                }
                _ => None,
            })
            .ok_or(NftError::Decode {
                what: "the generation",
                detail: "no NFTA_GEN_ID in the reply".into(),
            })
    }

    /// Whether chain `chain` exists in table `table` of `family` (a missing
    /// table answers the same as a missing chain: no).
    fn chain_exists(&mut self, family: Family, table: &str, chain: &str) -> Result<bool, NftError> {
        self.time_left("nf_tables chain")?;
        let message = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(table.into()),
                ChainAttribute::Name(chain.into()),
            ],
        });
        match self.socket.request("nf_tables chain", family.proto(), message) {
            Ok(_) => Ok(true),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// The sets and maps of table `table`; `None` when there is no such
    /// table.
    fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError> {
        let message = NfTablesMessage::GetSet(SetMessage {
            attributes: vec![SetAttribute::Table(table.into())],
        });
        let mut sets = Vec::new();
        let left = self.time_left("nf_tables set dump")?;
        let result =
            self.socket.dump_each("nf_tables set dump", family.proto(), &message, left, |event| {
                match event {
                    DumpEvent::Restart { .. } => sets.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWSET) {
                            return Err(unexpected("nf_tables set dump", raw.message_type));
                        }
                        let message = decode("nf_tables set dump", raw.bytes)?;
                        if let NfTablesMessage::NewSet(set) = message {
                            sets.push(set_from(&set).map_err(|detail| {
                                NetfilterError::Malformed { request: "nf_tables set dump", detail }
                            })?);
                        }
                    }
                }
                Ok(())
            });
        match result {
            Ok(_) => Ok(Some(sets)),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// The elements of set `set` of table `table`.
    fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError> {
        let message = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![SetElementList::Table(table.into()), SetElementList::Set(set.into())],
        });
        let mut elements = Vec::new();
        let left = self.time_left("nf_tables set element dump")?;
        let result = self.socket.dump_each(
            "nf_tables set element dump",
            family.proto(),
            &message,
            left,
            |event| {
                match event {
                    DumpEvent::Restart { .. } => elements.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWSETELEM) {
                            return Err(unexpected("nf_tables set element dump", raw.message_type));
                        }
                        decode_elements(raw.attributes, &mut elements).map_err(|detail| {
                            NetfilterError::Malformed {
                                request: "nf_tables set element dump",
                                detail: format!("set {set}: {detail}"),
                            }
                        })?;
                    }
                }
                Ok(())
            },
        );
        match result {
            Ok(_) => Ok(elements),
            // The set went away since the set dump: the generation moved,
            // and `consistent` reads again.
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(Vec::new()),
            Err(other) => Err(other.into()),
        }
    }

    /// The rules of table `table` (of its chain `chain` only, when given:
    /// the kernel filters), in the chains `keep` accepts, in the kernel's
    /// order. Why `keep`: the chain is read from the raw message first, so
    /// rules of chains nobody looks at (Docker's, a CNI's) are never
    /// decoded.
    fn rules(
        &mut self,
        family: Family,
        table: &str,
        chain: Option<&str>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NftRule>, NftError> {
        let mut attributes = vec![RuleAttribute::Table(table.into())];
        if let Some(chain) = chain {
            attributes.push(RuleAttribute::Chain(chain.into()));
        }
        let message = NfTablesMessage::GetRule(RuleMessage { attributes });
        let mut rules = Vec::new();
        let left = self.time_left("nf_tables rule dump")?;
        let result = self.socket.dump_each(
            "nf_tables rule dump",
            family.proto(),
            &message,
            left,
            rule_consumer(&mut rules, keep),
        );
        match result {
            Ok(_) => Ok(rules),
            // The chain went away since it was looked up: the generation
            // moved, and `consistent` reads again.
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) if chain.is_some() => {
                Ok(Vec::new())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// One chain dump of the table (`NFT_MSG_GETCHAIN` with
    /// `NFTA_CHAIN_TABLE`: the kernel filters), names only.
    fn chain_names(
        &mut self,
        family: Family,
        table: &str,
    ) -> Result<Option<Vec<String>>, NftError> {
        let message = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![ChainAttribute::Table(table.into())],
        });
        let mut names = Vec::new();
        let left = self.time_left("nf_tables chain dump")?;
        let result = self.socket.dump_each(
            "nf_tables chain dump",
            family.proto(),
            &message,
            left,
            |event| match event {
                DumpEvent::Restart { .. } => {
                    names.clear();
                    Ok(())
                }
                DumpEvent::Message(raw) => {
                    if raw.message_type != message_type(NFT_MSG_NEWCHAIN) {
                        return Err(unexpected("nf_tables chain dump", raw.message_type));
                    }
                    let name = raw_chain_name(raw.attributes).ok_or(NetfilterError::Malformed {
                        request: "nf_tables chain dump",
                        detail: "a chain without a name".into(),
                    })?;
                    names.push(name.to_string());
                    Ok(())
                }
            },
        );
        match result {
            Ok(_) => Ok(Some(names)),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(Some(Vec::new())),
            Err(other) => Err(other.into()),
        }
    }

    /// One GET of the table (not a dump).
    fn table_exists(&mut self, family: Family, table: &str) -> Result<bool, NftError> {
        self.time_left("nf_tables table")?;
        let message = NfTablesMessage::GetTable(TableMessage {
            attributes: vec![TableAttribute::Name(table.into())],
        });
        match self.socket.request_each("nf_tables table", family.proto(), message, &mut |_| Ok(()))
        {
            Ok(()) => Ok(true),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// One GET of the set by name (not a dump of the table's sets, which
    /// on a big node holds one anonymous map per Service).
    fn set(&mut self, family: Family, table: &str, name: &str) -> Result<Option<NftSet>, NftError> {
        self.time_left("nf_tables set")?;
        let message = NfTablesMessage::GetSet(SetMessage {
            attributes: vec![SetAttribute::Table(table.into()), SetAttribute::Name(name.into())],
        });
        let mut found = None;
        let result =
            self.socket.request_each("nf_tables set", family.proto(), message, &mut |raw| {
                if raw.message_type != message_type(NFT_MSG_NEWSET) {
                    return Err(unexpected("nf_tables set", raw.message_type));
                }
                if let NfTablesMessage::NewSet(set) = decode("nf_tables set", raw.bytes)? {
                    found = Some(set_from(&set).map_err(|detail| NetfilterError::Malformed {
                        request: "nf_tables set",
                        detail,
                    })?);
                }
                Ok(())
            });
        match result {
            Ok(()) => Ok(found),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// One GET of the element by its key (`NFT_MSG_GETSETELEM` without
    /// `NLM_F_DUMP`): the kernel looks it up in the set and answers with
    /// it alone, `ENOENT` when it is not there.
    fn element(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        key: &[u8],
    ) -> Result<Option<NftElement>, NftError> {
        self.time_left("nf_tables set element")?;
        let message = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Table(table.into()),
                SetElementList::Set(set.into()),
                SetElementList::Elements(vec![ListAttribute::Element(vec![
                    SetElementAttribute::Key(DataAttribute::Value(key.to_vec())),
                ])]),
            ],
        });
        let mut found = Vec::new();
        let result = self.socket.request_each(
            "nf_tables set element",
            family.proto(),
            message,
            &mut |raw| {
                if raw.message_type != message_type(NFT_MSG_NEWSETELEM) {
                    return Err(unexpected("nf_tables set element", raw.message_type));
                }
                decode_elements(raw.attributes, &mut found).map_err(|detail| {
                    NetfilterError::Malformed {
                        request: "nf_tables set element",
                        detail: format!("set {set}: {detail}"),
                    }
                })
            },
        );
        match result {
            Ok(()) => Ok(found.into_iter().find(|e| e.key == key)),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// One rule dump of the chain, filtered by the kernel
    /// (`NFTA_RULE_TABLE` and `NFTA_RULE_CHAIN` in the request); with
    /// `mentioning`, a message without those bytes is dropped before it
    /// is decoded.
    fn chain_rules(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        mentioning: Option<&[u8]>,
    ) -> Result<Vec<NftRule>, NftError> {
        let Some(needle) = mentioning.filter(|n| !n.is_empty()) else {
            return self.rules(family, table, Some(chain), &|_| true);
        };
        let message = NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.into()),
                RuleAttribute::Chain(chain.into()),
            ],
        });
        let mut rules = Vec::new();
        let left = self.time_left("nf_tables rule dump")?;
        let result =
            self.socket.dump_each("nf_tables rule dump", family.proto(), &message, left, |event| {
                match event {
                    DumpEvent::Restart { .. } => {
                        rules.clear();
                        Ok(())
                    }
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWRULE) {
                            return Err(unexpected("nf_tables rule dump", raw.message_type));
                        }
                        if !contains(raw.attributes, needle) {
                            return Ok(());
                        }
                        rules.push(decode_rule(raw.attributes).map_err(|detail| {
                            NetfilterError::Malformed { request: "nf_tables rule dump", detail }
                        })?);
                        Ok(())
                    }
                }
            });
        match result {
            Ok(_) => Ok(rules),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(Vec::new()),
            Err(other) => Err(other.into()),
        }
    }
}

/// What a rule dump's events do: each `NFT_MSG_NEWRULE` of a kept chain is
/// decoded into `rules`; a restart (`NLM_F_DUMP_INTR`, an overrun) empties
/// it, so a restarted dump never leaves rules of the abandoned attempt.
pub(crate) fn rule_consumer<'a>(
    rules: &'a mut Vec<NftRule>,
    keep: &'a dyn Fn(&str) -> bool,
) -> impl FnMut(DumpEvent<'_>) -> Result<(), NetfilterError> + 'a {
    move |event| {
        match event {
            DumpEvent::Restart { .. } => rules.clear(),
            DumpEvent::Message(raw) => {
                if raw.message_type != message_type(NFT_MSG_NEWRULE) {
                    return Err(unexpected("nf_tables rule dump", raw.message_type));
                }
                if raw_rule_chain(raw.attributes).is_some_and(|chain| !keep(chain)) {
                    return Ok(());
                }
                rules.push(decode_rule(raw.attributes).map_err(|detail| {
                    NetfilterError::Malformed { request: "nf_tables rule dump", detail }
                })?);
            }
        }
        Ok(())
    }
}

/// nf_tables objects decoded before, served as a [`Source`]: the captures
/// of the tests, or arbitrary objects in property tests. A table exists
/// when it has an entry in `sets`.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// What [`Source::generation`] answers.
    pub generation: u32,
    /// The chains that exist: (family, table, chain).
    pub chains: Vec<(Family, String, String)>,
    /// The sets per (family, table).
    pub sets: HashMap<(Family, String), Vec<NftSet>>,
    /// The elements per (family, table, set).
    pub elements: HashMap<(Family, String, String), Vec<NftElement>>,
    /// The rules per (family, table), in order.
    pub rules: HashMap<(Family, String), Vec<NftRule>>,
}

impl Source for Recorded {
    fn generation(&mut self) -> Result<u32, NftError> {
        Ok(self.generation)
    }

    /// The chains of the table's rules, in the order they first appear.
    fn chain_names(
        &mut self,
        family: Family,
        table: &str,
    ) -> Result<Option<Vec<String>>, NftError> {
        let mut names: Vec<String> = Vec::new();
        for rule in self.rules.get(&(family, table.to_string())).into_iter().flatten() {
            if !names.contains(&rule.chain) {
                names.push(rule.chain.clone());
            }
        }
        Ok(Some(names))
    }

    fn chain_exists(&mut self, family: Family, table: &str, chain: &str) -> Result<bool, NftError> {
        Ok(self.chains.iter().any(|(f, t, c)| *f == family && t == table && c == chain))
    }

    fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError> {
        Ok(self.sets.get(&(family, table.to_string())).cloned())
    }

    fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError> {
        let key = (family, table.to_string(), set.to_string());
        Ok(self.elements.get(&key).cloned().unwrap_or_default())
    }

    fn rules(
        &mut self,
        family: Family,
        table: &str,
        chain: Option<&str>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NftRule>, NftError> {
        let all = self.rules.get(&(family, table.to_string()));
        Ok(all
            .into_iter()
            .flatten()
            .filter(|r| chain.is_none_or(|c| r.chain == c) && keep(&r.chain))
            .cloned()
            .collect())
    }
}

/// Whether `needle` occurs in `haystack` (a rule message's bytes).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((first, rest)) = needle.split_first() else { return true };
    haystack.iter().enumerate().any(|(i, b)| {
        b == first && haystack.get(i + 1..i + 1 + rest.len()).is_some_and(|tail| tail == rest)
    })
}
